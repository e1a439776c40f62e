"""The pipeline as users drive it: real `dvc` commands in a temporary git repository.

The repository is a copy of this one with a small slice of the demo photos, so every command
really extracts CNN features, trains CatBoost and benchmarks, in seconds rather than minutes.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from dvc_repos import DEGRADED_PHOTOS, PHOTOS, SERIES_PHOTOS, dvc, read_metrics, run, run_queue, set_params, stages_run


def test_default_run_writes_every_metric_and_plot(pipeline_repo: Path) -> None:
    train = read_metrics(pipeline_repo, "train")
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert 0 <= train[key] <= 1, key
    # On a few dozen photos validation can beat training accuracy: the gap may be negative.
    assert -100 <= train["overfitting_gap"] <= 100
    cv = train["cv"]
    assert (cv["folds"], cv["repeats"]) == (5, 1)
    for metric in ("accuracy", "balanced_accuracy", "roc_auc", "spearman", "overfitting_gap"):
        assert set(cv[metric]) == {"mean", "sd"}, metric
    assert train["overfitting_gap"] == pytest.approx(100 * (train["train_accuracy"] - train["val_accuracy"]), abs=0.01)
    assert train["overfitting_verdict"] in {"none", "moderate", "significant"}
    benchmark = read_metrics(pipeline_repo, "benchmark")
    assert benchmark["rows"] == train["rows"]["test"] > 0
    assert set(benchmark["per_class"]) == {"keep", "trash"}
    labels = read_metrics(pipeline_repo, "labels")
    assert labels["rows"] == PHOTOS + 7  # the 7 shipped AVA photos that have votes in the metadata
    assert (pipeline_repo / "metrics/benchmark_plots/plots/sklearn/roc.json").is_file()
    assert (pipeline_repo / "metrics/train_curves/plots/metrics/val/logloss.tsv").is_file()
    analysis = read_metrics(pipeline_repo, "analysis")
    assert 0 <= analysis["calibration"]["brier_score"] <= 1
    assert analysis["degradation"]["photos"] == DEGRADED_PHOTOS
    series = analysis["series"]
    assert (series["series"], series["takes_per_series"]) == (SERIES_PHOTOS, 6)
    assert 0 <= series["original_first_share"] <= 1 and 1 <= series["original_mean_rank"] <= 6
    assert series["grouping_adjusted_rand_index"] == 1.0
    assert set(pd.read_csv(pipeline_repo / "metrics/analysis/series_takes.csv")["take"]) == set(series["per_take"])
    assert set(labels["near_duplicate_series"]) == {"series_kept_together", "photos_in_series", "photos_moved"}
    assert set(analysis["baselines"]) == {"catboost", "logistic_probe", "sharpness", "unclipped"}
    assert analysis["baselines"]["catboost"]["roc_auc"] == benchmark["roc_auc"]
    assert analysis["pairs"]["pairs"] == len(pd.read_csv(pipeline_repo / "data/sample/livec/pairs.csv"))
    assert len(pd.read_csv(pipeline_repo / "metrics/analysis/training.csv")) == train["iterations_trained"]


def intervals_with_estimates(pipeline_repo: Path) -> dict[str, tuple[float, list[float]]]:
    """Every 95% interval the metrics hold, with the estimate it is about: summary.json's headline (as text),
    benchmark.json's ci95 and train.json's overfitting gap."""
    summary = read_metrics(pipeline_repo, "summary")["headline"]
    benchmark = read_metrics(pipeline_repo, "benchmark")
    train = read_metrics(pipeline_repo, "train")
    found = {
        f"summary {name}": (summary[name], [float(end) for end in summary[f"{name}_95ci"].split(" to ")])
        for name in summary if f"{name}_95ci" in summary
    }
    found.update({f"benchmark {name}": (benchmark.get(name, summary.get(f"test_{name}")), interval) for name, interval in benchmark["ci95"].items()})
    found["train overfitting_gap"] = (train["overfitting_gap"], train["overfitting_gap_ci95"])
    return found


@pytest.mark.parametrize("run", ["this test's run", "the committed default run"])
def test_every_interval_holds_its_estimate(pipeline_repo: Path, run: str) -> None:
    intervals = intervals_with_estimates(pipeline_repo if run == "this test's run" else REPO)
    assert len(intervals) >= 10
    for name, (estimate, (low, high)) in intervals.items():
        assert low <= estimate <= high, f"{name}: {estimate} outside {low} to {high}"


def test_outputs_are_linked_to_the_cache_not_copied(pipeline_repo: Path) -> None:
    # Queued experiments check outputs out of the cache the same way: links cost no space or time.
    features = pipeline_repo / "data/features.parquet"
    assert dvc(pipeline_repo, "config", "cache.type").stdout.strip() == "reflink,hardlink,copy"
    assert features.stat().st_nlink >= 2  # a hard link (this filesystem has no reflinks)


def test_second_repro_does_nothing_and_status_is_clean(pipeline_repo: Path) -> None:
    second = dvc(pipeline_repo, "repro")
    assert stages_run(second.stdout) == set()
    assert "Data and pipelines are up to date" in dvc(pipeline_repo, "status").stdout


def test_same_seed_gives_identical_metrics(pipeline_repo: Path) -> None:
    before = {name: read_metrics(pipeline_repo, name) for name in ("train", "benchmark", "analysis")}
    model, lock = (pipeline_repo / "models/model.cbm").read_bytes(), (pipeline_repo / "dvc.lock").read_text()
    forced = dvc(pipeline_repo, "repro", "--force", "--downstream", "train")
    assert stages_run(forced.stdout) == {"train", "benchmark", "analyze"}
    assert {name: read_metrics(pipeline_repo, name) for name in ("train", "benchmark", "analysis")} == before
    assert (pipeline_repo / "models/model.cbm").read_bytes() == model
    assert (pipeline_repo / "dvc.lock").read_text() == lock


def test_experiment_reruns_only_training_and_changes_metrics(pipeline_repo: Path) -> None:
    shards = sorted((pipeline_repo.parent / "feature-cache").rglob("shard-*.npz"))
    baseline = read_metrics(pipeline_repo, "train")
    experiment = dvc(pipeline_repo, "exp", "run", "-S", "train.depth=2", "-S", "train.l2_leaf_reg=30")
    assert stages_run(experiment.stdout) == {"train", "benchmark", "analyze"}
    assert sorted((pipeline_repo.parent / "feature-cache").rglob("shard-*.npz")) == shards
    changed = read_metrics(pipeline_repo, "train")
    assert changed != baseline

    diff = json.loads(dvc(pipeline_repo, "metrics", "diff", "--all", "--json").stdout)
    train_diff = diff["metrics/train.json"]
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "overfitting_gap"):
        assert key in train_diff
        assert train_diff[key]["old"] == baseline[key] and train_diff[key]["new"] == changed[key]
    analysis_diff = diff["metrics/analysis.json"]
    for key in ("calibration.brier_score", "degradation.monotonicity", "baselines.catboost.roc_auc", "training.best_val_spearman"):
        assert key in analysis_diff, sorted(analysis_diff)
    assert analysis_diff["baselines.catboost.roc_auc"]["new"] == read_metrics(pipeline_repo, "benchmark")["roc_auc"]

    plots = pipeline_repo.parent / "plots-diff"
    dvc(pipeline_repo, "plots", "diff", "HEAD", "-o", str(plots))
    page = (plots / "index.html").read_text()
    for title in (
        "Learning curve (log loss)",
        "ROC curve (test split)",
        "Confusion matrix (test split)",
        "Validation log loss and Spearman per iteration (vertical line = best iteration)",
        "Keep probability by true class (test split)",
        "Calibration (test split; diagonal = perfect)",
        "Keep probability vs own rating (test split)",
        "Accuracy per AVA tag (test split)",
        "Mean keep probability as photos degrade (severity 0 = untouched)",
        "Test ROC AUC, CatBoost vs baselines",
    ):
        assert title in page
    run(pipeline_repo, "git", "checkout", "--", ".")
    dvc(pipeline_repo, "checkout")


def test_queued_sweep_lists_the_gap_of_each_experiment(pipeline_repo: Path) -> None:
    dvc(pipeline_repo, "exp", "run", "--queue", "-S", "train.depth=3,4")  # a grid of two is a grid: each value its own experiment
    run_queue(pipeline_repo, jobs=1)
    table = pd.read_csv(pd.io.common.StringIO(dvc(pipeline_repo, "exp", "show", "--csv").stdout))
    experiments = table[table["train.depth"].isin([3, 4])]
    assert sorted(experiments["train.depth"]) == [3, 4]
    assert experiments["overfitting_gap"].notna().all()
    assert experiments["overfitting_verdict"].isin(["none", "moderate", "significant"]).all()


def test_queued_experiments_run_at_once_each_get_their_own_params_and_results(pipeline_repo: Path) -> None:
    """The way docs/experiments.md runs several experiments: queue them, then run the queue (here two at once). Each runs in
    its own copy of the workspace, so its results come from its own params and the workspace keeps the user's."""
    params_before = (pipeline_repo / "params.yaml").read_text()
    dvc(pipeline_repo, "exp", "run", "--queue", "-S", "train.iterations=17", "-n", "iterations-17")
    dvc(pipeline_repo, "exp", "run", "--queue", "-S", "train.iterations=23", "-n", "iterations-23")
    run_queue(pipeline_repo, jobs=2)
    table = pd.read_csv(pd.io.common.StringIO(dvc(pipeline_repo, "exp", "show", "--csv").stdout))
    experiments = table[table["Experiment"].isin(["iterations-17", "iterations-23"])].set_index("Experiment")
    assert experiments["train.iterations"].to_dict() == {"iterations-17": 17, "iterations-23": 23}
    assert experiments["iterations_trained"].to_dict() == {"iterations-17": 17, "iterations-23": 23}  # its own params
    assert (pipeline_repo / "params.yaml").read_text() == params_before
    assert dvc(pipeline_repo, "status").stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.parametrize(
    ("param", "value"),
    [("labels__threshold", 11), ("labels__max_ava", -5), ("train__depth", 17), ("train__depth", "deep")],
)
def test_bad_params_fail_before_any_work_with_one_line(pipeline_repo: Path, param: str, value: object) -> None:
    original = (pipeline_repo / "params.yaml").read_text()
    lock = (pipeline_repo / "dvc.lock").read_text()
    try:
        set_params(pipeline_repo, **{param: value})
        result = dvc(pipeline_repo, "repro", check=False)
    finally:
        (pipeline_repo / "params.yaml").write_text(original)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("keeptrash: error:")]
    assert len(errors) == 1 and param.replace("__", ".") in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert (pipeline_repo / "dvc.lock").read_text() == lock


def cached_digests(repo: Path) -> set[str]:
    """Digests of photo files in the feature cache (the cache also holds the analyze stage's degraded copies)."""
    digests = set()
    for shard in (repo.parent / "feature-cache").rglob("shard-*.npz"):
        with np.load(shard) as arrays:
            digests.update(str(digest) for digest in arrays["sha256"])
    return digests & set(pd.read_parquet(repo / "data/manifest.parquet")["sha256"])


def test_new_photos_are_the_only_features_extracted(pipeline_repo: Path) -> None:
    before = cached_digests(pipeline_repo)
    assert len(before) == PHOTOS + 7
    unused = pd.read_csv(REPO / "data/sample/livec/ratings.csv")["path"].iloc[PHOTOS : PHOTOS + 4]
    for path in unused:
        shutil.copy(REPO / "data/sample/livec" / path, pipeline_repo / "data/own/keep")
    result = dvc(pipeline_repo, "repro")
    assert "features: 59 photos (4 extracted, 55 from the cache" in result.stdout
    added = cached_digests(pipeline_repo) - before
    assert len(added) == 4
    assert read_metrics(pipeline_repo, "labels")["rows"] == PHOTOS + 7 + 4
    for path in unused:
        (pipeline_repo / "data/own/keep" / Path(path).name).unlink()
    run(pipeline_repo, "git", "checkout", "--", ".")
    dvc(pipeline_repo, "checkout")


def test_ava_images_can_come_from_a_split_7z_archive(pipeline_repo: Path) -> None:
    import multivolumefile
    import py7zr

    archives = pipeline_repo.parent / "ava-archives"
    archives.mkdir()
    with multivolumefile.open(archives / "AVA_dataset.7z", mode="wb", volume=200_000) as volume:
        with py7zr.SevenZipFile(volume, "w") as seven_zip:
            for photo in sorted((pipeline_repo / "data/sample/ava/images").glob("*.jpg")):
                seven_zip.write(photo, f"AVA_dataset/images/{photo.name}")
    baseline = read_metrics(pipeline_repo, "download")
    images = pipeline_repo.parent / "ava-extracted"
    result = dvc(
        # Up to features: what follows reads the manifest whatever source filled it, and the default run tests that.
        pipeline_repo, "exp", "run", "features", "-S", "download.source=archives",
        "-S", f"download.archives_dir={archives}", "-S", f"download.images_dir={images}",
    )
    assert "download" in stages_run(result.stdout)
    assert "features: " in result.stdout and "(0 extracted," in result.stdout  # same bytes: all from the cache
    assert read_metrics(pipeline_repo, "download") == baseline
    manifest = pd.read_parquet(pipeline_repo / "data/manifest.parquet")
    ava = manifest[manifest["key"].str.startswith("ava:")]
    assert (ava["status"] == "ok").all() and ava["path"].str.startswith(str(images)).all()
    assert len(list(images.glob("*.jpg"))) == len(ava)  # only the labelled ids were extracted
    run(pipeline_repo, "git", "checkout", "--", ".")
    dvc(pipeline_repo, "checkout")


def assert_ava_images_from(repo: Path, images: Path) -> None:
    manifest = pd.read_parquet(repo / "data/manifest.parquet")
    ava = manifest[manifest["key"].str.startswith("ava:")]
    assert (ava["status"] == "ok").all() and ava["path"].str.startswith(str(images)).all()
    for path in ava["path"]:
        assert Path(path).read_bytes() == (REPO / "data/sample/ava/images" / Path(path).name).read_bytes()


def test_ava_images_can_come_from_a_torrent(pipeline_repo: Path) -> None:
    from seeding import Seeder, make_torrent

    content = pipeline_repo.parent / "torrent-seed" / "AVA_dataset"
    shutil.copytree(pipeline_repo / "data/sample/ava/images", content / "images")
    torrent = pipeline_repo.parent / "ava.torrent"
    make_torrent(content, torrent)
    seeder = Seeder(torrent, content.parent)
    baseline = read_metrics(pipeline_repo, "download")
    archives, images = pipeline_repo.parent / "torrent-download", pipeline_repo.parent / "torrent-images"
    try:
        result = dvc(
            pipeline_repo, "exp", "run", "features", "-S", "download.source=torrent", "-S", f"download.torrent={torrent}",
            "-S", f"download.torrent_peers=['{seeder.peer}']", "-S", f"download.archives_dir={archives}",
            "-S", f"download.images_dir={images}",
        )
    finally:
        seeder.close()
    assert "download" in stages_run(result.stdout) and "(0 extracted," in result.stdout
    assert read_metrics(pipeline_repo, "download") == baseline
    assert_ava_images_from(pipeline_repo, archives / "AVA_dataset" / "images")  # loose images are used where they are
    run(pipeline_repo, "git", "checkout", "--", ".")
    dvc(pipeline_repo, "checkout")


def test_an_http_download_killed_with_sigkill_is_resumed_by_the_next_repro(pipeline_repo: Path) -> None:
    from mirror import Mirror

    photos = {path.name: path.read_bytes() for path in (pipeline_repo / "data/sample/ava/images").glob("*.jpg")}
    mirror = Mirror(photos, bytes_per_second=250_000)
    images = pipeline_repo.parent / "http-images"
    set_params(pipeline_repo, download__source="http", download__url_template=mirror.url("{id}.jpg"), download__images_dir=str(images))
    try:
        child = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=pipeline_repo, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(images.glob("*.jpg")):
            time.sleep(0.05)
        os.killpg(child.pid, 9)  # dvc and the stage it runs, mid-download
        child.wait()
        finished = {path.name for path in images.glob("*.jpg")}
        labelled = {f"{key.removeprefix('ava:')}.jpg" for key in pd.read_parquet(pipeline_repo / "data/labels.parquet")["key"] if key.startswith("ava:")}
        assert 0 < len(finished) < len(labelled)
        mirror.requests.clear()
        mirror.bytes_per_second = 0
        result = dvc(pipeline_repo, "repro", "features")
    finally:
        mirror.close()
    assert "download" in stages_run(result.stdout)
    assert not finished & {name for name, _ in mirror.requests}  # finished images are not fetched again
    assert {name for name, _ in mirror.requests} == labelled - finished
    assert_ava_images_from(pipeline_repo, images)
    run(pipeline_repo, "git", "checkout", "--", ".")
    dvc(pipeline_repo, "checkout")
