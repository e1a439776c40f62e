"""`keeptrash cull --xmp` through the real console script, read back by ExifTool: the ratings, labels and pick labels
documented in docs/culling-into-lightroom-darktable-digikam.md; sidecars as Lightroom, darktable, digiKam and Photo
Mechanic write them keep every other property and the person's own verdict; undo restores every sidecar byte for byte."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import CULL_MODEL_PHOTOS, LIVEC_IMAGES
from exiftool import exiftool_write, exiftool_xmp, needs_exiftool
from keeptrash.cli import CSV_NAME
from keeptrash.params import XmpParams
from keeptrash import xmp
from keeptrash.xmp import image_data_digest
from raw_files import write_dng

pytestmark = needs_exiftool
KEEPTRASH = str(Path(sys.executable).parent / "keeptrash")
SIDECARS = Path(__file__).parent / "xmp_sidecars"
# Real photos the module's model was not trained on.
NAMES = tuple(sorted(os.listdir(LIVEC_IMAGES))[CULL_MODEL_PHOTOS : CULL_MODEL_PHOTOS + 6])
PARAMS = XmpParams()


def run_keeptrash(*args, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([KEEPTRASH, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == expect, f"keeptrash {args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def cull(folder: Path, model: Path, threshold: float, *flags) -> subprocess.CompletedProcess:
    return run_keeptrash(
        "cull", folder, "--model", model, "--out", folder.parent / "out", "--no-contact-sheet", "--threshold", threshold, *flags
    )


def digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir()) if path.is_file()}


def lay_out_shoot(folder: Path) -> Path:
    folder.mkdir()
    for name in NAMES:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
    return folder


@pytest.fixture
def shoot(tmp_path) -> Path:
    return lay_out_shoot(tmp_path / "shoot")


@pytest.fixture(scope="module")
def threshold(model_path, cache_root, tmp_path_factory) -> float:
    """A keep threshold halfway between the third and fourth keep probability of NAMES: three keeps, three trash."""
    folder = lay_out_shoot(tmp_path_factory.mktemp("probe") / "shoot")
    run_keeptrash("cull", folder, "--model", model_path, "--out", folder.parent / "out", "--no-contact-sheet")
    probabilities = sorted(pd.read_csv(folder.parent / "out" / CSV_NAME)["keep_probability"])
    assert probabilities[2] < probabilities[3]
    return round((probabilities[2] + probabilities[3]) / 2, 6)


def expected_verdict(row: pd.Series, threshold: float) -> dict:
    """What docs/culling-into-lightroom-darktable-digikam.md says a scored photo gets, as ExifTool reads it."""
    keep = row["decision"] == "keep"
    stars = 1 + sum(row["keep_probability"] >= cutoff for cutoff in PARAMS.star_cutoffs)
    verdict = {"XMP-xmp:Rating": stars if keep else -1, "XMP-digiKam:PickLabel": 3 if keep else 1}
    if abs(row["keep_probability"] - threshold) <= PARAMS.uncertain_margin:
        verdict["XMP-xmp:Label"] = PARAMS.uncertain_label
    return verdict


def test_xmp_writes_sidecars_exiftool_reads_as_documented_and_a_dry_run_counts_them(shoot, model_path, threshold):
    dry = cull(shoot, model_path, threshold)
    assert f"--xmp would create {len(NAMES)} sidecars and change 0" in dry.stdout
    assert not list(shoot.glob("*.xmp"))
    result = cull(shoot, model_path, threshold, "--xmp")
    assert f"xmp: created {len(NAMES)} sidecars, changed 0" in result.stdout
    table = pd.read_csv(shoot.parent / "out" / CSV_NAME)
    assert sorted(table["decision"]) == ["keep"] * 3 + ["trash"] * 3
    for _, row in table.iterrows():
        sidecar = Path(row["path"]).with_suffix(".xmp")
        read = exiftool_xmp(sidecar)
        assert {key: read[key] for key in expected_verdict(row, threshold)} == expected_verdict(row, threshold)
        assert ("XMP-xmp:Label" in read) == ("XMP-xmp:Label" in expected_verdict(row, threshold))
        assert read["XMP-keeptrash:Probability"] == pytest.approx(row["keep_probability"], abs=1e-4)
        assert read["XMP-keeptrash:Decision"] == row["decision"] and read["XMP-keeptrash:Model"].startswith("model.cbm sha256:")
        assert row["xmp"] == f"created {sidecar.name}"
    again = cull(shoot, model_path, threshold)
    assert f"--xmp would create 0 sidecars and change 0 ({len(NAMES)} unchanged)" in again.stdout


def lay_out_tool_sidecars(shoot: Path) -> dict[str, Path]:
    """Each photo with a sidecar as a tool wrote it: Lightroom (rated 4 stars; picked), digiKam (rejected), darktable
    (its IMG_0001.jpg.xmp naming, 3 stars), Photo Mechanic (Trash colour class), and a Lightroom one with no verdict."""
    placed = {}
    for name, sidecar, naming in zip(NAMES, (
        "lightroom-4-stars.xmp", "lightroom-picked.xmp", "digikam-rejected-4-stars.xmp", "darktable-3-stars.xmp",
        "photomechanic-trash.xmp", "lightroom-4-stars.xmp",
    ), ("{stem}.xmp", "{stem}.xmp", "{name}.xmp", "{name}.xmp", "{stem}.xmp", "{stem}.xmp"), strict=True):
        target = shoot / naming.format(stem=Path(name).stem, name=name)
        shutil.copyfile(SIDECARS / sidecar, target)
        placed[name] = target
    exiftool_write(placed[NAMES[-1]], "-XMP-xmp:Rating=0")  # unrated: no verdict of the person's
    return placed


def test_a_merge_keeps_every_other_property_and_the_persons_verdict_unless_overwrite(shoot, model_path, threshold):
    placed = lay_out_tool_sidecars(shoot)
    before = {name: exiftool_xmp(sidecar) for name, sidecar in placed.items()}
    result = cull(shoot, model_path, threshold, "--xmp")
    assert "created 0 sidecars, changed 6" in result.stdout and "5 keep the rating or flag you set" in result.stdout
    assert sorted(path.name for path in shoot.glob("*.xmp")) == sorted(path.name for path in placed.values())
    for name, sidecar in placed.items():
        after = exiftool_xmp(sidecar)
        # Everything but the toolkit that wrote it last (and the unrated photo's rating, which keeptrash sets).
        persons = {
            key: value for key, value in before[name].items()
            if key != "XMP-x:XMPToolkit" and (key != "XMP-xmp:Rating" or name != NAMES[-1])
        }
        assert {key: after.get(key) for key in persons} == persons, name
        assert "XMP-keeptrash:Probability" in after
    assert exiftool_xmp(placed[NAMES[-1]])["XMP-xmp:Rating"] != 0  # the unrated photo got keeptrash's verdict
    overwritten = cull(shoot, model_path, threshold, "--xmp", "--xmp-overwrite")
    assert "changed 5" in overwritten.stdout
    table = pd.read_csv(shoot.parent / "out" / CSV_NAME).set_index("path")
    for name, sidecar in placed.items():
        decision = table.loc[str(shoot / name), "decision"]
        assert exiftool_xmp(sidecar)["XMP-digiKam:PickLabel"] == (3 if decision == "keep" else 1)


def test_a_second_run_keeps_the_persons_edit_and_undo_restores_every_sidecar_byte_for_byte(shoot, model_path, threshold):
    placed = lay_out_tool_sidecars(shoot)
    original = digests(shoot)
    first = cull(shoot, model_path, threshold, "--xmp")
    fresh = shoot / Path(NAMES[-1]).with_suffix(".xmp").name
    exiftool_write(fresh, "-XMP-xmp:Rating=2")  # the person rates the photo in Lightroom after keeptrash wrote its verdict
    second = cull(shoot, model_path, threshold, "--xmp")
    # Only keeptrash's own pick label beside the person's new rating goes (it would contradict their rating).
    assert "changed 1, unchanged 5; 6 keep the rating or flag you set" in second.stdout
    assert exiftool_xmp(fresh)["XMP-xmp:Rating"] == 2
    assert "changed 0, unchanged 6" in cull(shoot, model_path, threshold, "--xmp").stdout
    journal = next(line.split("keeptrash undo ")[1] for line in first.stdout.splitlines() if "keeptrash undo" in line)
    result = run_keeptrash("undo", journal, expect=2)
    assert f"{fresh}: changed since keeptrash wrote it" in result.stdout  # the person's later edit stays
    assert "sidecars restored 5" in result.stdout
    assert {name: digest for name, digest in digests(shoot).items() if name != fresh.name} == {
        name: digest for name, digest in original.items() if name != fresh.name
    }
    assert exiftool_xmp(fresh)["XMP-xmp:Rating"] == 2
    assert all(sidecar.name in original for sidecar in placed.values())


def test_undo_removes_the_sidecars_keeptrash_created_and_restores_the_ones_it_changed(shoot, model_path, threshold):
    shutil.copyfile(SIDECARS / "darktable-rejected.xmp", shoot / f"{NAMES[0]}.xmp")
    original = digests(shoot)
    result = cull(shoot, model_path, threshold, "--xmp", "--xmp-naming", "darktable")
    assert sorted(path.name for path in shoot.glob("*.xmp")) == sorted(f"{name}.xmp" for name in NAMES)
    assert digests(shoot) != original
    journal = next(line.split("keeptrash undo ")[1] for line in result.stdout.splitlines() if "keeptrash undo" in line)
    undone = run_keeptrash("undo", journal)
    assert f"sidecars restored {len(NAMES)}" in undone.stdout
    assert digests(shoot) == original
    assert "already as they were 6" in run_keeptrash("undo", journal).stdout


def test_xmp_with_move_writes_beside_the_moved_photo_and_leaves_the_old_sidecar(shoot, model_path, threshold):
    shutil.copyfile(SIDECARS / "lightroom-4-stars.xmp", shoot / Path(NAMES[0]).with_suffix(".xmp").name)
    original = digests(shoot)
    result = cull(shoot, model_path, threshold, "--move", "--xmp")
    out = shoot.parent / "out"
    moved = {path.name: path for path in out.glob("*/*") if path.suffix == ".jpg"}
    assert sorted(moved) == sorted(NAMES)
    for name, photo in moved.items():
        assert exiftool_xmp(photo.with_suffix(".xmp"))["XMP-keeptrash:Decision"] == photo.parent.name
    beside = moved[NAMES[0]].with_suffix(".xmp")
    assert exiftool_xmp(beside)["XMP-crs:ProcessVersion"] == 15.4  # started from the photo's own sidecar
    assert (shoot / Path(NAMES[0]).with_suffix(".xmp").name).read_bytes() == (SIDECARS / "lightroom-4-stars.xmp").read_bytes()
    journal = next(line.split("keeptrash undo ")[1] for line in result.stdout.splitlines() if "keeptrash undo" in line)
    run_keeptrash("undo", journal)
    assert digests(shoot) == original
    assert not list(out.glob("*/*"))


def test_photos_sharing_one_sidecar_are_warned_about_and_get_the_first_ones_decision(shoot, model_path, threshold):
    shutil.copyfile(LIVEC_IMAGES / NAMES[0], shoot / f"{Path(NAMES[1]).stem}.png")  # the same stem as NAMES[1]
    result = cull(shoot, model_path, threshold, "--xmp")
    assert f"{NAMES[1]}, {Path(NAMES[1]).stem}.png share the sidecar" in result.stdout
    assert "--xmp-naming darktable gives each photo its own" in result.stdout
    table = pd.read_csv(shoot.parent / "out" / CSV_NAME).set_index("path")
    shared = exiftool_xmp(shoot / Path(NAMES[1]).with_suffix(".xmp").name)
    assert shared["XMP-keeptrash:Decision"] == table.loc[str(shoot / NAMES[1]), "decision"]


def test_a_broken_symlinked_or_read_only_sidecar_is_one_line_and_left_as_it_is(shoot, model_path, threshold, tmp_path):
    broken = shoot / Path(NAMES[0]).with_suffix(".xmp").name
    shutil.copyfile(SIDECARS / "malformed-cut-short.xmp", broken)
    elsewhere = tmp_path / "elsewhere.xmp"
    shutil.copyfile(SIDECARS / "lightroom-4-stars.xmp", elsewhere)
    linked = shoot / Path(NAMES[1]).with_suffix(".xmp").name
    linked.symlink_to(elsewhere)
    read_only = shoot / Path(NAMES[2]).with_suffix(".xmp").name
    shutil.copyfile(SIDECARS / "darktable-3-stars.xmp", read_only)
    read_only.chmod(0o444)
    before = {path: path.read_bytes() for path in (broken, elsewhere, read_only)}
    killed_runs_partial = shoot / f".{Path(NAMES[3]).stem}.xmp.0123456789abcdef.keeptrash-partial"
    killed_runs_partial.write_bytes(b"<x:xmpmeta")
    result = cull(shoot, model_path, threshold, "--xmp", "--xmp-overwrite")
    assert not killed_runs_partial.exists()
    lines = [line for line in result.stdout.splitlines() if line.startswith("cull: xmp: ")]
    assert any(f"{broken}: " in line and "not well-formed" in line for line in lines)
    assert any(f"{linked}: " in line and "symlink" in line for line in lines)
    assert any(f"{read_only}: " in line and "read-only" in line for line in lines)
    assert {path: path.read_bytes() for path in before} == before and linked.is_symlink()
    assert "created 3 sidecars" in result.stdout


def test_xmp_embed_writes_into_jpegs_with_their_image_data_unchanged_and_undo_restores_them(shoot, model_path, threshold):
    png = shoot / "scan.png"
    Image.open(LIVEC_IMAGES / NAMES[0]).save(png)
    original = digests(shoot)
    result = cull(shoot, model_path, threshold, "--xmp", "embed")
    assert "created 1 sidecars, changed 6 (into 6 photos themselves)" in result.stdout
    assert [path.name for path in shoot.glob("*.xmp")] == ["scan.xmp"]  # a PNG gets a sidecar
    table = pd.read_csv(shoot.parent / "out" / CSV_NAME).set_index("path")
    for name in NAMES:
        photo = shoot / name
        assert exiftool_xmp(photo)["XMP-keeptrash:Decision"] == table.loc[str(photo), "decision"]
        assert table.loc[str(photo), "xmp"] == "wrote into the photo"
        assert np.array_equal(np.asarray(Image.open(photo)), np.asarray(Image.open(LIVEC_IMAGES / name)))
        assert image_data_digest(photo.read_bytes(), ".jpg") == image_data_digest((LIVEC_IMAGES / name).read_bytes(), ".jpg")
    journal = next(line.split("keeptrash undo ")[1] for line in result.stdout.splitlines() if "keeptrash undo" in line)
    assert "sidecars restored 7" in run_keeptrash("undo", journal).stdout
    assert digests(shoot) == original
    assert not list((shoot.parent / "out" / "xmp-originals").iterdir())


def add_raw_jpeg_pair(shoot: Path) -> tuple[Path, Path]:
    """IMG_0001.dng with its camera JPEG IMG_0001.jpg: one shot (keeptrash.cull.pairs)."""
    raw, jpeg = shoot / "IMG_0001.dng", shoot / "IMG_0001.jpg"
    shutil.copyfile(LIVEC_IMAGES / NAMES[0], jpeg)
    with Image.open(jpeg) as photo:
        write_dng(photo, raw, preview_side=256)
    return raw, jpeg


def test_a_raw_jpeg_pair_shares_the_lightroom_sidecar_with_a_warning(shoot, model_path, threshold):
    add_raw_jpeg_pair(shoot)
    result = cull(shoot, model_path, threshold, "--xmp")
    assert f"IMG_0001.dng, IMG_0001.jpg share the sidecar {shoot / 'IMG_0001.xmp'}: it holds the decision on IMG_0001.dng" in result.stdout
    table = pd.read_csv(shoot.parent / "out" / CSV_NAME).set_index("path")
    assert exiftool_xmp(shoot / "IMG_0001.xmp")["XMP-keeptrash:Decision"] == table.loc[str(shoot / "IMG_0001.jpg"), "decision"]
    assert not list(shoot.glob("IMG_0001.*.xmp"))


def test_a_moved_raw_jpeg_pair_gets_a_sidecar_each_in_darktable_naming_and_undo_puts_all_back(shoot, model_path, threshold):
    add_raw_jpeg_pair(shoot)
    original = digests(shoot)
    result = cull(shoot, model_path, threshold, "--move", "--xmp", "--xmp-naming", "darktable")
    assert "share the sidecar" not in result.stdout
    moved = {path.name: path for path in (shoot.parent / "out").glob("*/IMG_0001.*")}
    assert sorted(moved) == ["IMG_0001.dng", "IMG_0001.dng.xmp", "IMG_0001.jpg", "IMG_0001.jpg.xmp"]
    assert moved["IMG_0001.dng"].parent == moved["IMG_0001.jpg"].parent == moved["IMG_0001.dng.xmp"].parent
    decision = moved["IMG_0001.jpg"].parent.name
    assert {exiftool_xmp(moved[name])["XMP-keeptrash:Decision"] for name in ("IMG_0001.dng.xmp", "IMG_0001.jpg.xmp")} == {decision}
    journal = next(line.split("keeptrash undo ")[1] for line in result.stdout.splitlines() if "keeptrash undo" in line)
    run_keeptrash("undo", journal)
    assert digests(shoot) == original


@pytest.mark.parametrize("naming", ["{stem}.xmp", "{name}.xmp"])
def test_xmp_embed_keeps_a_rating_the_person_set_in_the_photos_sidecar(shoot, model_path, threshold, naming):
    photo = shoot / NAMES[0]
    shutil.copyfile(SIDECARS / "lightroom-4-stars.xmp", shoot / naming.format(stem=photo.stem, name=photo.name))
    result = cull(shoot, model_path, threshold, "--xmp", "embed")
    assert "1 keep the rating or flag you set" in result.stdout
    assert "XMP-xmp:Rating" not in exiftool_xmp(photo)  # keeptrash's record only: the sidecar's 4 stars stand
    assert exiftool_xmp(photo)["XMP-keeptrash:Decision"] in ("keep", "trash")


def test_a_sidecar_larger_than_any_real_one_is_refused_before_it_is_read_by_cull_and_the_labels_reader(shoot, model_path, threshold):
    photo = shoot / NAMES[0]
    huge = shoot / f"{photo.stem}.xmp"
    huge.touch()
    os.truncate(huge, 16 * 2**20 + 1)  # sparse: a real sidecar at its start would not change the refusal
    with pytest.raises(xmp.XmpError, match=f"{huge}: the sidecar is 16 MiB, over the 16 MiB"):
        xmp.read_properties(photo)
    result = cull(shoot, model_path, threshold, "--xmp")
    assert any(line.startswith("cull: xmp: ") and f"{huge}: the sidecar is 16 MiB, over" in line and "left as it is" in line
               for line in result.stdout.splitlines()), result.stdout
    assert huge.stat().st_size == 16 * 2**20 + 1 and huge.stat().st_blocks == 0


def test_a_sidecar_name_taken_by_a_folder_is_refused_and_undo_restores_everything_else(shoot, model_path, threshold):
    taken = shoot / f"{Path(NAMES[2]).stem}.xmp"
    taken.mkdir()
    original = digests(shoot)
    result = cull(shoot, model_path, threshold, "--xmp")
    assert f"{taken}: not written: it is not a regular file" in result.stdout
    journal = next(line.split("keeptrash undo ")[1] for line in result.stdout.splitlines() if "keeptrash undo" in line)
    undone = run_keeptrash("undo", journal)
    assert f"sidecars restored {len(NAMES) - 1}" in undone.stdout and str(taken) not in undone.stdout
    assert digests(shoot) == original and taken.is_dir()


def test_a_person_rerating_a_photo_keeptrash_rejected_removes_keeptrashs_own_reject_flag(shoot, model_path, threshold):
    cull(shoot, model_path, threshold, "--xmp")
    table = pd.read_csv(shoot.parent / "out" / CSV_NAME)
    rejected = Path(table.loc[table["decision"] == "trash", "path"].iloc[0]).with_suffix(".xmp")
    assert exiftool_xmp(rejected)["XMP-digiKam:PickLabel"] == 1
    exiftool_write(rejected, "-XMP-xmp:Rating=5")  # the person disagrees in Lightroom
    result = cull(shoot, model_path, threshold, "--xmp")
    assert "1 keep the rating or flag you set" in result.stdout
    after = exiftool_xmp(rejected)
    assert after["XMP-xmp:Rating"] == 5
    assert "XMP-digiKam:PickLabel" not in after and "XMP-keeptrash:WrotePickLabel" not in after  # no "5 stars, rejected"
    assert after["XMP-keeptrash:Decision"] == "trash"
