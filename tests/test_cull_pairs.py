"""RAW+JPEG pairs (keeptrash.cull.pairs): one shot, scored once from its JPEG, one row and one card naming both files,
sorted and undone together."""

import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from keeptrash.cull.pairs import pair_shots
from keeptrash.grouping import DATE_TIME_ORIGINAL, EXIF_IFD
from keeptrash.images import file_digest
from keeptrash.raw import DECODE_CACHE_ENV
from raw_files import shared_data, write_dng

LARGE = shared_data("large")
START = datetime.datetime(2026, 6, 1, 9, 0, 0)
SUBSEC_TIME_ORIGINAL = 0x9291


def test_pairs_are_one_folder_and_one_stem_with_suffixes_of_any_case():
    names = ["a/IMG_0001.CR2", "a/IMG_0001.JPG", "a/IMG_0002.nef", "a/IMG_0002.jpeg", "a/IMG_0003.dng", "b/IMG_0003.jpg", "a/img_0004.ARW", "a/IMG_0004.jpg"]
    shots = pair_shots([Path(name) for name in names])
    assert shots.companions == {Path("a/IMG_0001.JPG"): (Path("a/IMG_0001.CR2"),), Path("a/IMG_0002.jpeg"): (Path("a/IMG_0002.nef"),)}
    assert [str(path) for path in shots.photos] == ["a/IMG_0001.JPG", "a/IMG_0002.jpeg", "a/IMG_0003.dng", "b/IMG_0003.jpg", "a/img_0004.ARW", "a/IMG_0004.jpg"]


def save_camera_jpeg(photo: Image.Image, path: Path, taken: datetime.datetime) -> None:
    """The camera's JPEG of the shot, with its capture time to the hundredth of a second."""
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif.get_ifd(EXIF_IFD)[SUBSEC_TIME_ORIGINAL] = f"{taken.microsecond // 10000:02d}"
    photo.save(path, "JPEG", quality=92, exif=exif)


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    """A memory card shot RAW+JPEG: two pairs (suffixes in either case), a RAW alone, a JPEG alone, and a pair whose
    JPEG is cut short; every shot a different real photo, 30 s apart."""
    if LARGE is None:
        pytest.skip("../shared/data/large is not beside the repository")
    folder = tmp_path_factory.mktemp("card") / "DCIM"
    folder.mkdir()
    names = ["mate_LadyBird.jpg", "plasma_Kite.jpg", "mate_Wood.jpg", "plasma_Path.jpg", "mate_Storm.jpg"]
    for index, name in enumerate(names, start=1):
        with Image.open(LARGE / name) as image:
            photo = image.convert("RGB").resize((1600, 1000), Image.Resampling.LANCZOS)
        taken = START + datetime.timedelta(seconds=30 * index, milliseconds=10 * index)
        raw, jpeg = folder / f"IMG_000{index}.{'DNG' if index % 2 else 'dng'}", folder / f"IMG_000{index}.{'JPG' if index % 2 else 'jpg'}"
        if index != 4:
            write_dng(photo, raw, preview_side=1024, taken=taken)
        if index != 3:
            save_camera_jpeg(photo, jpeg, taken)
    cut = folder / "IMG_0005.JPG"
    cut.write_bytes(cut.read_bytes()[:2000])
    return folder


def cull(card: Path, out: Path, model: Path, *options: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(card), "--model", str(model), "--out", str(out), *options]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace")
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(autouse=True)
def decode_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DECODE_CACHE_ENV, str(tmp_path / "raw-cache"))


def test_a_pair_is_scored_once_from_its_jpeg_on_one_row_and_one_card(card, tmp_path, model_path, cache_root):
    result = cull(card, tmp_path / "out", model_path)
    table = pd.read_csv(tmp_path / "out" / "keeptrash.csv", keep_default_na=False)
    table.index = [Path(path).name for path in table["path"]]
    assert sorted(table.index) == ["IMG_0001.JPG", "IMG_0002.jpg", "IMG_0003.DNG", "IMG_0004.jpg", "IMG_0005.DNG", "IMG_0005.JPG"]
    assert table.loc["IMG_0001.JPG", "paired_with"] == str(card / "IMG_0001.DNG")
    assert table.loc["IMG_0002.jpg", "paired_with"] == str(card / "IMG_0002.dng")
    # A pair whose JPEG is cut short: its RAW is scored alone, the JPEG skipped with the reason.
    assert table.loc["IMG_0005.JPG", "decision"] == "skipped" and "not a decodable image" in table.loc["IMG_0005.JPG", "reason"]
    assert table.loc["IMG_0005.DNG", "decision"] in ("keep", "trash") and table.loc["IMG_0005.DNG", "paired_with"] == ""
    assert table.loc[["IMG_0003.DNG", "IMG_0004.jpg"], "paired_with"].eq("").all()
    assert table["group"].replace("", pd.NA).dropna().nunique() == 5  # five shots 30 s apart, by their own clocks
    assert "2 RAW+JPEG pairs, each scored once from its JPEG" in result.stdout
    sheet = (tmp_path / "out" / "contact_sheet.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<figure ", sheet)) == 5
    assert "IMG_0001.JPG + IMG_0001.DNG" in sheet and "IMG_0002.jpg + IMG_0002.dng" in sheet


def digests_of(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): file_digest(path) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def own_card(card, tmp_path) -> Path:
    """A copy of the card this test may move photos out of."""
    copy = tmp_path / "DCIM"
    copy.mkdir()
    for path in card.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def decided(out: Path) -> dict[str, str]:
    table = pd.read_csv(out / "keeptrash.csv", keep_default_na=False)
    return {Path(path).stem: decision for path, decision in zip(table["path"], table["decision"]) if decision != "skipped"}


def test_a_pair_is_moved_together_and_undone_together(own_card, tmp_path, model_path, cache_root):
    before = digests_of(own_card)
    out = tmp_path / "out"
    cull(own_card, out, model_path, "--move")
    decisions = decided(out)
    for stem, pair in (("IMG_0001", ("IMG_0001.JPG", "IMG_0001.DNG")), ("IMG_0002", ("IMG_0002.jpg", "IMG_0002.dng"))):
        for name in pair:
            assert (out / decisions[stem] / name).is_file() and not (own_card / name).exists()
            assert file_digest(out / decisions[stem] / name) == before[name]
    table = pd.read_csv(out / "keeptrash.csv", keep_default_na=False).set_index("path")
    row = table.loc[str(own_card / "IMG_0001.JPG")]
    assert row["action"] == "moved"
    assert row["sorted_to"] == f"{out / decisions['IMG_0001'] / 'IMG_0001.JPG'}; {out / decisions['IMG_0001'] / 'IMG_0001.DNG'}"
    assert sorted(os.listdir(own_card)) == ["IMG_0005.JPG"]  # the skipped, cut-short JPEG stays
    journal = next(out.glob("undo-*.jsonl"))
    undo = subprocess.run([str(Path(sys.executable).parent / "keeptrash"), "undo", str(journal)], capture_output=True, text=True)
    assert undo.returncode == 0, undo.stderr
    assert "restored 7" in undo.stdout
    assert digests_of(own_card) == before


@pytest.mark.parametrize("mode", ["--copy", "--link"])
def test_a_pair_keeps_one_stem_when_its_name_is_taken_and_a_rerun_adds_nothing(own_card, tmp_path, model_path, cache_root, mode):
    out = tmp_path / "out"
    for decision in ("keep", "trash"):  # an earlier cull's photo of the same name, but not its RAW
        (out / decision).mkdir(parents=True)
        (out / decision / "IMG_0001.JPG").write_bytes((own_card / "IMG_0004.jpg").read_bytes())
    cull(own_card, out, model_path, mode)
    folder = out / decided(out)["IMG_0001"]
    assert sorted(path.name for path in folder.glob("IMG_0001*")) == ["IMG_0001-1.DNG", "IMG_0001-1.JPG", "IMG_0001.JPG"]
    assert file_digest(folder / "IMG_0001-1.DNG") == file_digest(own_card / "IMG_0001.DNG")
    after_first = digests_of(out / "keep") | {f"trash/{name}": digest for name, digest in digests_of(out / "trash").items()}
    cull(own_card, out, model_path, mode)
    table = pd.read_csv(out / "keeptrash.csv", keep_default_na=False).set_index("path")
    assert table.loc[str(own_card / "IMG_0001.JPG"), "action"] == "already there"
    assert digests_of(out / "keep") | {f"trash/{name}": digest for name, digest in digests_of(out / "trash").items()} == after_first
