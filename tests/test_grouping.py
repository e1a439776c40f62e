"""Series of near-identical shots from real photos with real EXIF times: grouping, its params, and leakage-free splits."""

import concurrent.futures
import copy
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from bursts import START, with_exif_time, write_bursts
from conftest import LIVEC_IMAGES, PARAMS_YAML, REPO
from keeptrash.errors import KeeptrashError
from keeptrash.grouping import group_series, rank_in_groups, read_signature, read_signatures
from keeptrash.labels.labelling import build_labels, labels_summary
from keeptrash.params import GroupingParams, LabelsParams, parse_params

DEMO = sorted(LIVEC_IMAGES.glob("*.jpg"))


def test_exif_capture_time_is_read_and_file_time_stands_in_without_it(tmp_path):
    timed, untimed = tmp_path / "timed.jpg", tmp_path / "untimed.jpg"
    with Image.open(DEMO[0]) as image:
        image.save(timed, **with_exif_time(START))
        image.save(untimed)
    os.utime(untimed, (1_700_000_000, 1_700_000_000))
    assert read_signature(timed, 10**8).captured == START.replace(tzinfo=datetime.UTC).timestamp()
    assert read_signature(untimed, 10**8).captured == 1_700_000_000
    assert read_signature(untimed, 10**8, file_time=False).captured is None


def test_bursts_of_real_photos_are_found_in_a_mixed_folder(tmp_path):
    truth = write_bursts(tmp_path / "card", DEMO[:12], gap_seconds=5)
    found = group_series(read_signatures(list(truth["path"]), 10**8), GroupingParams())
    assert adjusted_rand_score(truth["series"], found) == 1.0
    # The series are 5 s apart, under the 10 s gap: capture time alone would merge them all.
    time_only = group_series(read_signatures(list(truth["path"]), 10**8), GroupingParams(10.0, 64))
    assert len(set(time_only)) == 1


def test_the_same_scene_shot_an_hour_later_is_another_series(tmp_path):
    photo = tmp_path / "a.jpg"
    later = tmp_path / "b.jpg"
    with Image.open(DEMO[0]) as image:
        image.save(photo, **with_exif_time(START))
        image.save(later, **with_exif_time(START + datetime.timedelta(hours=1)))
    groups = group_series(read_signatures([photo, later], 10**8), GroupingParams())
    assert groups[0] != groups[1]


def test_an_undecodable_photo_is_a_series_of_its_own(tmp_path):
    truth = write_bursts(tmp_path / "card", DEMO[:1])
    broken = tmp_path / "card" / "IMG_0002.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    groups = group_series(read_signatures(list(truth["path"]), 10**8), GroupingParams())
    # Its EXIF went with its bytes, so its file time puts it after the burst, which stays whole.
    assert len(set(groups)) == 2 and groups[0] == groups[2] == groups[3] != groups[1]


def test_rank_in_groups_puts_the_most_likely_keep_first():
    ranks = rank_in_groups([1, 1, 1, 2, 3, 3], [0.2, 0.9, 0.5, 0.1, 0.4, 0.6])
    assert ranks.tolist() == [3, 1, 2, 1, 2, 1]


# --- params -------------------------------------------------------------------------------------------------------


@pytest.fixture
def raw_params() -> dict:
    return yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))


def test_params_yaml_grouping_is_what_cull_uses_by_default(raw_params):
    """cull runs without params.yaml: its defaults and the labels stage's params must be the same rule."""
    assert parse_params(raw_params).grouping == GroupingParams()


@pytest.mark.parametrize(
    "key, value",
    [("max_gap_seconds", -1), ("max_gap_seconds", "10s"), ("max_gap_seconds", True), ("max_hash_distance", 65), ("max_hash_distance", 2.5)],
)
def test_bad_grouping_params_name_the_param(raw_params, key, value):
    raw = copy.deepcopy(raw_params)
    raw["grouping"][key] = value
    with pytest.raises(KeeptrashError, match=rf"^my/params.yaml: grouping\.{key} must be .*, got {value!r}$"):
        parse_params(raw, Path("my/params.yaml"))


def test_a_missing_grouping_section_is_named(raw_params):
    del raw_params["grouping"]
    with pytest.raises(KeeptrashError, match="section 'grouping' is missing"):
        parse_params(raw_params)


def test_the_labels_stage_with_a_bad_grouping_param_exits_2_with_one_line(tmp_path, raw_params):
    raw_params["grouping"]["max_hash_distance"] = "close"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "keeptrash.stages.labels"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "keeptrash: error: params.yaml: grouping.max_hash_distance must be a whole number from 0 to 64, got 'close'"


# --- group-aware splits -------------------------------------------------------------------------------------------


def labels_params(own_dir: Path) -> LabelsParams:
    return LabelsParams(
        threshold=6.0, margin=0.0, max_ava=0, ava_pool="all", seed=42, val_fraction=0.2, test_fraction=0.2,
        own_dir=str(own_dir), rated_own_csv="", rated_own_threshold=50.0,
    )


def no_ava() -> pd.DataFrame:
    """One AVA row, which max_ava 0 leaves out: the labels are the own photos alone."""
    return pd.DataFrame(
        {
            "image_id": pd.Series(["100000"], dtype="string"),
            "mean_score": [7.0],
            "tag_1": pd.Series(["Macro"], dtype="string"),
            "tag_2": pd.Series([pd.NA], dtype="string"),
            "challenge": pd.Series(["100_Meters"], dtype="string"),
        }
    )


@pytest.mark.parametrize("exif", [True, False], ids=["exif-times", "file-order"])
def test_series_sorted_into_keep_and_trash_never_straddle_splits(tmp_path, exif):
    """Each burst's best take in keep/, the others in trash/: split by key alone, most bursts straddle splits.

    With EXIF times the series is found across the two folders; without, by name order and look within each."""
    own = tmp_path / "own"
    truth = write_bursts(tmp_path / "card", DEMO[20:40], exif=exif)
    for row in truth.itertuples():
        folder = own / ("keep" if row.take == 0 else "trash")
        folder.mkdir(parents=True, exist_ok=True)
        row.path.rename(folder / row.path.name)
    labels = build_labels(no_ava(), labels_params(own), GroupingParams())
    table = labels.table.assign(name=lambda t: t["path"].map(lambda p: Path(p).name))
    series = table.merge(truth.assign(name=truth["path"].map(lambda p: p.name)), on="name")
    # Within one folder the series is what stays together without EXIF times: keep/ holds one take per series.
    unit = ["series"] if exif else ["series", "label"]
    assert (series.groupby(unit)["split"].nunique() == 1).all()
    summary = labels_summary(labels, no_ava(), 6.0)["near_duplicate_series"]
    assert summary["series_kept_together"] == 20
    assert summary["photos_moved"] > 0  # the key's own split would have put takes of one moment on both sides
    ungrouped = build_labels(no_ava(), labels_params(own), GroupingParams(max_gap_seconds=10.0, max_hash_distance=0))
    ungrouped_series = ungrouped.table.assign(name=lambda t: t["path"].map(lambda p: Path(p).name)).merge(
        truth.assign(name=truth["path"].map(lambda p: p.name)), on="name"
    )
    assert (ungrouped_series.groupby(unit)["split"].nunique() > 1).any()


def test_a_pipe_named_like_a_photo_is_not_opened(tmp_path):
    """Opening a FIFO waits for a writer that never comes: the labels stage would hang on it."""
    pipe = tmp_path / "IMG_0001.jpg"
    os.mkfifo(pipe)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_signature, pipe, 10**8)
        try:
            signature = reading.result(timeout=20)
        except concurrent.futures.TimeoutError:
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))  # a writer comes and goes: the stuck read ends, the test fails
            pytest.fail("reading the pipe's signature blocked")
    assert signature.hash is None and signature.captured is not None
