"""Past culls read from XMP become labels (labels.own_xmp): sidecars laid out as darktable, digiKam, Lightroom Classic and
Photo Mechanic write them (tests/xmp_sidecars), XMP embedded in a JPEG and a TIFF by ExifTool, a broken sidecar; the
labels stage maps their flags to keep/trash as docs/own-photos.md documents, and `dvc repro` trains on them."""

import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import LIVEC_IMAGES, PHOTO_NAMES, REPO, copy_photos
from dvc_repos import dvc, read_metrics, set_params, stages_run
from exiftool import exiftool_write, needs_exiftool
from keeptrash.images import max_file_bytes
from keeptrash.labels.labelling import KEEP, TRASH, build_labels, labels_summary
from keeptrash.labels.xmp_flags import verdict_of
from keeptrash.model.model_inputs import score_target
from raw_files import write_dng
from test_labelling import metadata_frame
from test_own_decisions import digests_below, params_for, write_decisions

SIDECARS = Path(__file__).parent / "xmp_sidecars"
pytestmark = needs_exiftool  # ExifTool writes the XMP embedded in photos, as another tool would


@dataclass(frozen=True)
class Shot:
    name: str
    label: int | None  # what the photo's XMP should make of it; None: unmapped
    sidecar: str | None = None  # a file of tests/xmp_sidecars
    sidecar_name: str = "{name}.xmp"  # darktable and digiKam: IMG_0001.jpg.xmp; Lightroom, Photo Mechanic: IMG_0001.xmp
    embedded: tuple[str, ...] = ()  # ExifTool assignments written into the photo itself
    folder: str = "shoot"


# A shoot culled in four tools, copied into own_dir/shoot (outside keep/ and trash/: labelled by its XMP alone).
SHOTS = (
    Shot("IMG_0001.jpg", TRASH, "darktable-rejected.xmp"),
    Shot("IMG_0002.jpg", KEEP, "darktable-3-stars.xmp"),
    Shot("IMG_0003.jpg", None, "darktable-imported-1-star.xmp"),  # darktable's import default: no verdict
    Shot("IMG_0004.jpg", KEEP, "digikam-accepted.xmp"),
    Shot("IMG_0005.jpg", TRASH, "digikam-rejected-4-stars.xmp"),  # the reject beats the stars
    Shot("IMG_0006.jpg", None, "digikam-pending.xmp"),
    Shot("IMG_0007.jpg", KEEP, "lightroom-picked.xmp", "{stem}.xmp"),
    Shot("IMG_0008.JPG", TRASH, "lightroom-rejected-2-stars.xmp", "{stem}.XMP"),  # as a Windows card names them
    Shot("IMG_0009.jpg", KEEP, "lightroom-4-stars.xmp", "{stem}.xmp"),
    Shot("IMG_0010.jpg", KEEP, "photomechanic-tagged.xmp", "{stem}.xmp"),
    Shot("IMG_0011.jpg", TRASH, "photomechanic-trash.xmp", "{stem}.xmp"),
    # digiKam writes into a JPEG itself by default; Lightroom does on "Save Metadata to File".
    Shot("IMG_0012.jpg", TRASH, embedded=("-XMP-digiKam:PickLabel=1", "-XMP-xmp:Rating=3")),
    Shot("IMG_0013.tif", KEEP, embedded=("-XMP-xmp:Rating=4",)),
    Shot("IMG_0014.jpg", None, "malformed-cut-short.xmp", "{stem}.xmp"),
    Shot("IMG_0015.jpg", None),  # never culled
    # Accepted in digiKam, then rejected in darktable, both on IMG_0016.jpg.xmp: the flags disagree.
    Shot("IMG_0016.jpg", None, "digikam-accepted.xmp", embedded=("-XMP-xmp:Rating=-1",)),
    # Sorted into keep/ by hand, rejected in darktable: the folder decides.
    Shot("IMG_0017.jpg", KEEP, "darktable-rejected.xmp", folder="keep"),
)
EXPECTED_COUNTS = {
    "photos": 17, "read": 15, "unreadable": 1, "mapped": 12, "keep": 6, "trash": 6, "unmapped": 5,
    "flag_conflicts": 1, "folder_conflicts": 1, "labelled": 11,
}


def lay_out_shoot(own_dir: Path, photos: list[str]) -> dict[str, Path]:
    """SHOTS under own_dir, each a copy of one of `photos` (LIVE-C names), with its sidecar or embedded XMP; name -> photo."""
    placed = {}
    for shot, source in zip(SHOTS, photos, strict=False):
        photo = own_dir / shot.folder / shot.name
        photo.parent.mkdir(parents=True, exist_ok=True)
        if photo.suffix == ".tif":
            Image.open(LIVEC_IMAGES / source).save(photo, compression="tiff_lzw")
        else:
            shutil.copyfile(LIVEC_IMAGES / source, photo)
        target = photo
        if shot.sidecar:
            target = photo.parent / shot.sidecar_name.format(name=photo.name, stem=photo.stem)
            shutil.copyfile(SIDECARS / shot.sidecar, target)
        if shot.embedded:
            exiftool_write(target, *shot.embedded)
        placed[shot.name] = photo
    return placed


def unrated_photos(count: int) -> list[str]:
    """LIVE-C photos the pipeline repo does not rate (it rates the first rows of the ratings CSV)."""
    ratings = pd.read_csv(REPO / "data/sample/livec/ratings.csv")
    return [Path(path).name for path in ratings["path"].iloc[-count:]]


def own_labels(table: pd.DataFrame) -> dict[str, int]:
    own = table[table["source"] == "own"]
    return {Path(path).name: int(label) for path, label in zip(own["path"], own["label"]) if "livec" not in path}


EXPECTED_LABELS = {shot.name: shot.label for shot in SHOTS if shot.label is not None}


@pytest.fixture
def shoot(tmp_path) -> Path:
    own_dir = tmp_path / "own"
    lay_out_shoot(own_dir, unrated_photos(len(SHOTS)))
    (own_dir / "trash").mkdir()
    return own_dir


def xmp_params(own_dir: Path, decision_files: list[Path] = (), **changes):
    return replace(params_for(own_dir, list(decision_files)), **{"rated_own_csv": "", "own_xmp": True, **changes})


def test_each_tools_flags_become_the_documented_labels_and_are_counted(shoot, capsys):
    before = digests_below(shoot)
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot))
    assert own_labels(labels.table) == EXPECTED_LABELS
    assert labels_summary(labels, metadata_frame([7.0]), 6.0)["own_xmp"] == EXPECTED_COUNTS
    notes = "\n".join(labels.xmp.notes)
    assert f"{shoot / 'shoot' / 'IMG_0014.xmp'}: " in notes  # the broken sidecar, by name
    assert "IMG_0016.jpg: XMP flags disagree (xmp:Rating -1, digiKam:PickLabel 3)" in notes
    assert f"first: {shoot / 'keep' / 'IMG_0017.jpg'}, XMP says trash" in notes
    assert digests_below(shoot) == before  # photos and sidecars are only read


def test_a_flag_value_no_tool_writes_is_one_line_naming_the_sidecar_and_the_photo_stays_unmapped(shoot):
    sidecar = shoot / "shoot" / "IMG_0002.jpg.xmp"
    sidecar.write_text(sidecar.read_text().replace('xmp:Rating="3"', 'xmp:Rating="high"'))
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot))
    assert "IMG_0002.jpg" not in own_labels(labels.table)
    assert labels.xmp.unreadable == 2
    assert f"{shoot / 'shoot' / 'IMG_0002.jpg'}: its XMP's xmp:Rating must be -1 (rejected) or 0 to 5 stars, got 'high'; it is left unmapped" in labels.xmp.notes


def test_an_empty_sidecar_left_by_an_interrupted_copy_is_one_line_and_its_photo_stays_unmapped(shoot):
    sidecar = shoot / "shoot" / "IMG_0007.xmp"  # Lightroom's pick
    sidecar.write_bytes(b"")
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot))
    assert "IMG_0007.jpg" not in own_labels(labels.table)
    assert (labels.xmp.unreadable, labels.xmp.keep) == (2, EXPECTED_COUNTS["keep"] - 1)
    assert [note for note in labels.xmp.notes if note.startswith(f"{sidecar}: ")] == [
        f"{sidecar}: the sidecar is empty; remove it or restore it from a backup; IMG_0007.jpg is left unmapped"
    ]


def test_a_pipe_or_an_oversized_file_named_like_a_photo_is_not_read(shoot):
    """Reading a pipe would wait forever, reading a 30 GB sparse file whole would exhaust memory: neither is read (the
    download stage records why), though each has a sidecar that picks it."""
    os.mkfifo(shoot / "shoot" / "IMG_0018.jpg")
    with (shoot / "shoot" / "IMG_0019.jpg").open("wb") as sparse:
        sparse.truncate(max_file_bytes(1_000_000) + 1)
    for name in ("IMG_0018.xmp", "IMG_0019.xmp"):
        shutil.copyfile(SIDECARS / "lightroom-picked.xmp", shoot / "shoot" / name)
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot), max_pixels=1_000_000)
    assert own_labels(labels.table) == EXPECTED_LABELS
    assert labels.xmp.summary() == {**EXPECTED_COUNTS, "photos": 19, "unmapped": 7}


def test_raw_photos_take_their_sidecars_or_embedded_xmp_and_a_raw_jpeg_pair_shares_one_sidecar(shoot):
    photos = unrated_photos(len(SHOTS) + 2)[:2]
    # Photo Mechanic trashed IMG_0020 shot RAW+JPEG: one IMG_0020.xmp for both files.
    write_dng(Image.open(LIVEC_IMAGES / photos[0]), shoot / "shoot" / "IMG_0020.dng", preview_side=256)
    shutil.copyfile(LIVEC_IMAGES / photos[0], shoot / "shoot" / "IMG_0020.jpg")
    shutil.copyfile(SIDECARS / "photomechanic-trash.xmp", shoot / "shoot" / "IMG_0020.xmp")
    # Lightroom writes into a DNG itself.
    exiftool_write(write_dng(Image.open(LIVEC_IMAGES / photos[1]), shoot / "shoot" / "IMG_0021.dng", preview_side=256), "-XMP-xmp:Rating=5")
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot))
    assert own_labels(labels.table) == {**EXPECTED_LABELS, "IMG_0020.dng": TRASH, "IMG_0020.jpg": TRASH, "IMG_0021.dng": KEEP}
    counted = {"photos": 3, "read": 3, "mapped": 3, "keep": 1, "trash": 2, "labelled": 3}
    assert labels.xmp.summary() == {key: value + counted.get(key, 0) for key, value in EXPECTED_COUNTS.items()}


def test_without_own_xmp_the_sidecars_are_ignored(shoot):
    labels = build_labels(metadata_frame([7.0, 4.0]), replace(xmp_params(shoot), own_xmp=False))
    assert own_labels(labels.table) == {"IMG_0017.jpg": KEEP}
    assert labels.xmp.summary()["photos"] == 0


def test_the_star_threshold_decides_which_stars_keep(shoot):
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot, own_xmp_keep_stars=1))
    assert own_labels(labels.table)["IMG_0003.jpg"] == KEEP  # one star now keeps
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot, own_xmp_keep_stars=4))
    assert "IMG_0002.jpg" not in own_labels(labels.table)  # three stars no longer do
    assert own_labels(labels.table)["IMG_0009.jpg"] == KEEP


@pytest.mark.parametrize("scale", ["rank", "zscore"])
def test_an_xmp_verdict_decides_the_training_target_as_a_decision_does(shoot, scale):
    # Rated photos share the source "own" with the shoot: 80 (keep) and 20 (trash) on the ratings CSV's scale.
    rated = copy_photos(PHOTO_NAMES[:2], shoot / "rated")
    (shoot / "rated" / "ratings.csv").write_text(f"path,score\n{rated[0].name},80\n{rated[1].name},20\n", encoding="utf-8")
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot, rated_own_csv=str(shoot / "rated" / "ratings.csv")))
    table = labels.table.assign(target=score_target(labels.table, scale))
    shoot_rows = table[table["path"].str.contains("/shoot/")]
    rated_rows = table[table["path"].str.contains("/rated/")]
    assert len(shoot_rows) == labels.xmp.labelled
    # Each lies inside its decided class: no XMP trash above a rated keep, no XMP keep below a rated trash.
    assert shoot_rows.loc[shoot_rows["label"] == TRASH, "target"].max() <= rated_rows.loc[rated_rows["label"] == TRASH, "target"].max()
    assert shoot_rows.loc[shoot_rows["label"] == KEEP, "target"].min() >= rated_rows.loc[rated_rows["label"] == KEEP, "target"].min()


def test_a_decision_from_the_contact_sheet_overrides_the_xmp(shoot):
    photo = shoot / "shoot" / "IMG_0001.jpg"  # rejected in darktable
    decisions = write_decisions(shoot / "decisions" / "mine.csv", [
        (str(photo), hashlib.sha256(photo.read_bytes()).hexdigest(), "keep"),
    ])
    labels = build_labels(metadata_frame([7.0, 4.0]), xmp_params(shoot, [decisions]))
    assert own_labels(labels.table)["IMG_0001.jpg"] == KEEP
    assert labels.decisions.summary()["changed"] == 1


@pytest.mark.parametrize(
    ("properties", "decision"),
    [
        ({"xmp:Rating": "5", "xmpDM:pick": "-1"}, "trash"),  # a reject beats any stars
        ({"xmp:Rating": "-1", "photomechanic:Tagged": "True"}, None),  # picked and rejected: unmapped
        ({"xmp:Rating": "-1", "digiKam:PickLabel": "1", "xmpDM:pick": "-1"}, "trash"),  # agreeing rejects
        ({"xmp:Rating": "0", "xmpDM:pick": "0", "photomechanic:ColorClass": "3"}, None),  # unflagged, unrated
        ({"xmp:Rating": "2.0"}, "keep"),  # written as a real by some tools
        ({"photomechanic:Tagged": "False"}, None),  # untagged is no reject
    ],
)
def test_explicit_flags_beat_stars_and_disagreeing_flags_decide_nothing(properties, decision):
    assert verdict_of(properties, keep_stars=2).decision == decision


@pytest.mark.parametrize(("properties", "message"), [
    ({"xmp:Rating": "7"}, "xmp:Rating must be -1 (rejected) or 0 to 5 stars, got '7'"),
    ({"xmp:Rating": "high"}, "xmp:Rating must be -1 (rejected) or 0 to 5 stars, got 'high'"),
    ({"digiKam:PickLabel": "4"}, "digiKam:PickLabel must be one of 0, 1, 2, 3, got '4'"),
])
def test_a_value_no_tool_writes_is_refused_by_name(properties, message):
    with pytest.raises(ValueError) as error:
        verdict_of(properties, keep_stars=2)
    assert str(error.value) == message


def test_dvc_repro_trains_on_the_past_culls_and_a_sidecar_edit_reruns_the_labels(pipeline_repo):
    rows_before = sum(read_metrics(pipeline_repo, "train")["rows"].values())
    own_dir = pipeline_repo / "data/own"
    lay_out_shoot(own_dir, unrated_photos(len(SHOTS)))
    set_params(pipeline_repo, labels__own_xmp=True)
    repro = dvc(pipeline_repo, "repro")
    assert {"labels", "features", "train", "benchmark"} <= stages_run(repro.stdout)
    assert "IMG_0014.xmp: " in repro.stdout  # the broken sidecar, named in one line; the run went on
    assert read_metrics(pipeline_repo, "labels")["own_xmp"] == EXPECTED_COUNTS
    assert own_labels(pd.read_parquet(pipeline_repo / "data/labels.parquet")) == EXPECTED_LABELS
    # The train stage learnt from every labelled photo of the shoot (rows of all three splits).
    assert sum(read_metrics(pipeline_repo, "train")["rows"].values()) == rows_before + len(EXPECTED_LABELS)

    # The sidecars are dependencies (they lie in own_dir): rating IMG_0003 up in darktable reruns the labels stage.
    assert "Data and pipelines are up to date" in dvc(pipeline_repo, "status").stdout
    shutil.copyfile(SIDECARS / "darktable-3-stars.xmp", own_dir / "shoot" / "IMG_0003.jpg.xmp")
    assert "labels" in dvc(pipeline_repo, "status").stdout
