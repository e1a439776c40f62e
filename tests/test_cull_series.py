"""`keeptrash cull` on a memory card of bursts: series found, ranked, the best of each kept, no photo changed or lost."""

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bursts import write_bursts
from conftest import LIVEC_IMAGES, REPO

TAKES = 4  # per burst (bursts.takes_of)



def well_rated(count: int) -> list[Path]:
    """Photos people rated highly, not among the model's 60 training photos: their takes mostly clear the threshold."""
    ratings = pd.read_csv(REPO / "data" / "sample" / "livec" / "labels.csv").sort_values("file").iloc[60:]
    return [LIVEC_IMAGES / name for name in ratings.sort_values("mos", ascending=False)["file"].head(count)]


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """6 bursts of 4 takes, 5 s apart, then 2 lone photos an hour later (file times: no EXIF)."""
    folder = tmp_path_factory.mktemp("card") / "DCIM"
    truth = write_bursts(folder, well_rated(8)[:6], gap_seconds=5)
    for index, photo in enumerate(well_rated(8)[6:]):
        (folder / f"lone_{index}.jpg").write_bytes(photo.read_bytes())
    return folder, truth


def digests_of(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*.jpg"))}


def keeptrash(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(Path(sys.executable).parent / "keeptrash"), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def results(out: Path, truth: pd.DataFrame) -> pd.DataFrame:
    table = pd.read_csv(out / "keeptrash.csv", keep_default_na=False)
    table["name"] = table["path"].map(lambda path: Path(path).name)
    return table.merge(truth.assign(name=truth["path"].map(lambda path: path.name)).drop(columns="path"), on="name", how="left")


def test_csv_has_a_series_and_rank_per_photo(card, tmp_path, model_path, cache_root):
    folder, truth = card
    out = tmp_path / "out"
    run = keeptrash("cull", str(folder), "--model", str(model_path), "--out", str(out))
    assert "6 series of near-identical shots (24 photos)" in run.stdout
    table = results(out, truth)
    columns = list(table.columns)
    assert columns.index("group") == columns.index("decision") + 1 and columns.index("group_rank") == columns.index("group") + 1
    bursts = table.dropna(subset=["series"])
    # One group per burst, and a group never spans two bursts; the lone photos are groups of one.
    assert (bursts.groupby("series")["group"].nunique() == 1).all() and bursts.groupby("group")["series"].nunique().eq(1).all()
    lone = table[table["name"].str.startswith("lone_")]
    assert len(lone) == 2 and lone["group"].nunique() == 2 and set(lone["group_rank"]) == {1}
    assert not set(lone["group"]) & set(bursts["group"])
    for _, shots in table.groupby("group"):
        assert shots.sort_values("group_rank")["keep_probability"].is_monotonic_decreasing
        assert sorted(shots["group_rank"]) == list(range(1, len(shots) + 1))


def test_best_of_1_keeps_the_best_take_of_each_burst_and_loses_no_photo(card, tmp_path, model_path, cache_root):
    folder, truth = tmp_path / "DCIM", card[1]
    shutil.copytree(card[0], folder)  # photos are moved: the other tests' card must stay whole even if this one fails
    before = digests_of(folder)
    keeptrash("cull", str(folder), "--model", str(model_path), "--out", str(tmp_path / "plain"))
    plain = results(tmp_path / "plain", truth)
    # The folder is worth the option: without it, bursts keep several takes of the same moment.
    assert (plain[plain["decision"] == "keep"].groupby("series").size() > 1).any()

    out = tmp_path / "sorted"
    run = keeptrash("cull", str(folder), "--model", str(model_path), "--out", str(out), "--best-of", "1", "--move")
    table = results(out, truth)
    for series, shots in table.dropna(subset=["series"]).groupby("series"):
        best = shots.loc[shots["keep_probability"].idxmax()]
        kept = shots[shots["decision"] == "keep"]
        assert list(kept["name"]) == ([best["name"]] if best["keep_probability"] >= 0.5 else []), series
        assert (shots.loc[shots["group_rank"] > 1, "decision"] == "trash").all()
    lone = table[table["name"].str.startswith("lone_")].set_index("name")
    assert (lone["decision"] == plain[plain["name"].str.startswith("lone_")].set_index("name")["decision"]).all()
    # Moved, not modified: every photo is in keep/ or trash/ as it decided, byte for byte, and undo puts it back.
    assert digests_of(out) == before and not list(folder.glob("*.jpg"))
    assert sorted(path.name for path in (out / "keep").iterdir()) == sorted(table.loc[table["decision"] == "keep", "name"])
    journal = re.search(r"keeptrash undo (\S+)", run.stdout).group(1)
    keeptrash("undo", journal)
    assert digests_of(folder) == before


def test_the_contact_sheet_shows_each_burst_together_best_first(card, tmp_path, model_path, cache_root):
    folder, truth = card
    out = tmp_path / "out"
    keeptrash("cull", str(folder), "--model", str(model_path), "--out", str(out), "--best-of", "1")
    page = (out / "contact_sheet.html").read_text(encoding="utf-8")
    table = results(out, truth)
    blocks = re.findall(r'<div class="series" data-group="(\d+)">(.*?)</div></div>', page)
    assert len(blocks) == 6
    for group, block in blocks:
        shown = re.findall(r'class="probability">([\d.]+)</span> (\S+?)<br>', block)
        expected = table[table["group"] == int(group)].sort_values("group_rank")
        assert [name for _, name in shown] == list(expected["name"])
        assert [float(p) for p, _ in shown] == sorted((float(p) for p, _ in shown), reverse=True)
    # The lone photos are in the keep and trash columns below the series.
    columns = page.split('<div class="columns">')[1]
    assert all(name in columns for name in ("lone_0.jpg", "lone_1.jpg")) and "IMG_0001.jpg" not in columns


def test_best_of_must_be_a_whole_number_above_0(card, tmp_path, model_path):
    folder, _ = card
    result = subprocess.run(
        [str(Path(sys.executable).parent / "keeptrash"), "cull", str(folder), "--model", str(model_path), "--best-of", "0"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("keeptrash: error: keeptrash cull: argument --best-of: '0' is not a whole number above 0")
