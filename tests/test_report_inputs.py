"""`keeptrash report` on hostile input: revisions whose files are not what the pipeline writes, revisions that name
no commit, and --out folders that hold a person's files or symlinks. A small real git + DVC repo holds committed
predictions, metrics and plot data (no pipeline run: these cases are about what the report reads and writes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keeptrash.errors import KeeptrashError
from keeptrash.report.revisions import load_revision

TEST_PHOTOS = 30
# The plots the report renders (keeptrash.report.figures.KEY_PLOTS), as a top-level plots section over git-tracked data.
DVC_YAML = """plots:
- metrics/benchmark_plots/plots/sklearn/roc.json:
    template: simple
    x: fpr
    y: tpr
- Calibration (test split; diagonal = perfect):
    template: simple
    x: mean_predicted
    y:
      metrics/analysis/calibration.csv: fraction_keep
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def keeptrash(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keeptrash.cli", *args], cwd=repo, capture_output=True, text=True)


def write_run(repo: Path) -> None:
    """The files a reproduced run leaves that the report reads, with random but well-formed figures."""
    rng = np.random.default_rng(0)
    keys = [f"own:photo{index:02d}.jpg" for index in range(TEST_PHOTOS)]
    for folder in ("data", "metrics/benchmark_plots/plots/sklearn", "metrics/analysis"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"key": keys, "source": "own", "score": rng.random(TEST_PHOTOS), "label": rng.integers(0, 2, TEST_PHOTOS),
         "keep_probability": rng.random(TEST_PHOTOS)}
    ).to_parquet(repo / "data/test_predictions.parquet")
    pd.DataFrame({"key": keys, "path": [f"/not/here/{key[4:]}" for key in keys]}).to_parquet(repo / "data/manifest.parquet")
    (repo / "metrics/benchmark.json").write_text(json.dumps({"decision_threshold": 0.5}))
    (repo / "metrics/train.json").write_text(json.dumps({"overfitting_gap": 3.0, "overfitting_verdict": "none"}))
    roc = [{"fpr": x, "tpr": min(1.0, 1.4 * x)} for x in np.linspace(0, 1, 6)]
    (repo / "metrics/benchmark_plots/plots/sklearn/roc.json").write_text(json.dumps({"roc": roc}))
    pd.DataFrame({"mean_predicted": [0.1, 0.5, 0.9], "fraction_keep": [0.2, 0.5, 0.8]}).to_csv(
        repo / "metrics/analysis/calibration.csv", index=False
    )
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("labels:\n  threshold: 5.0\n")


# Tag -> files that differ from the good run in that commit, each one thing a hand edit or a broken run can leave.
BROKEN_REVISIONS = {
    "malformed-benchmark": {"metrics/benchmark.json": "{"},
    "no-threshold": {"metrics/benchmark.json": "{}"},
    "text-threshold": {"metrics/benchmark.json": '{"decision_threshold": "high"}'},
    "list-benchmark": {"metrics/benchmark.json": "[0.5]"},
    "threshold-out-of-range": {"metrics/benchmark.json": '{"decision_threshold": 5}'},
    "malformed-train": {"metrics/train.json": '{"overfitting_gap": '},
    "text-gap": {"metrics/train.json": '{"overfitting_gap": "large", "overfitting_verdict": "none"}'},
    "text-cv": {"metrics/train.json": '{"overfitting_gap": 1, "cv": {"roc_auc": {"mean": "0.8", "sd": 0.1}}}'},
    "summary-headline-text": {"metrics/summary.json": '{"headline": "fine"}'},
    "predictions-not-parquet": {"data/test_predictions.parquet": "not a table"},
    "manifest-not-parquet": {"data/manifest.parquet": "not a table"},
}
BROKEN_FILE = {tag: next(iter(files)) for tag, files in BROKEN_REVISIONS.items()}


@pytest.fixture(scope="module")
def report_repo(tmp_path_factory) -> Path:
    """A git + DVC repo: the committed run (tag good), and one tagged commit per broken revision."""
    repo = tmp_path_factory.mktemp("report") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    write_run(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "run")
    git(repo, "tag", "good")
    for tag, files in BROKEN_REVISIONS.items():
        for name, text in files.items():
            (repo / name).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", tag)
        git(repo, "tag", tag)
        git(repo, "reset", "-q", "--hard", "good")
    return repo


@pytest.mark.parametrize("tag", BROKEN_REVISIONS)
def test_a_revision_with_a_broken_file_is_one_error_naming_it(report_repo, tag, monkeypatch):
    monkeypatch.chdir(report_repo)
    with pytest.raises(KeeptrashError) as raised:
        load_revision(tag)
    assert str(raised.value).startswith(f"{tag}: {BROKEN_FILE[tag]}: ")
    assert "\n" not in str(raised.value)


def test_the_same_broken_files_in_the_workspace_are_one_error_naming_it(report_repo, monkeypatch):
    monkeypatch.chdir(report_repo)
    benchmark = report_repo / "metrics/benchmark.json"
    try:
        benchmark.write_text('{"decision_threshold": "high"}')
        with pytest.raises(KeeptrashError, match=r"^workspace: metrics/benchmark.json: decision_threshold must be a number"):
            load_revision(None)
    finally:
        git(report_repo, "checkout", "--", ".")
    assert load_revision(None).threshold == 0.5  # the control: the good run loads


@pytest.mark.parametrize("revision", ["HEAD^{tree}", "HEAD:params.yaml", "HEAD:dvc.yaml", "good^{tree}"])
def test_a_revision_naming_a_tree_or_a_file_is_one_clear_line(report_repo, tmp_path, revision):
    result = keeptrash(report_repo, "report", "--base", revision, "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"keeptrash: error: {revision!r}: names a git tree or file, not a commit; pass a commit, branch, tag or experiment name"
    ]
    assert not (tmp_path / "r").exists()


def test_a_broken_revision_through_the_command_is_one_line(report_repo, tmp_path):
    result = keeptrash(report_repo, "report", "--base", "text-threshold", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "keeptrash: error: text-threshold: metrics/benchmark.json: decision_threshold must be a number from 0 to 1, got 'high'; "
        "it is not what the pipeline writes: rerun dvc repro there"
    ]


# --- --out: only a new, empty or report-made folder, never through a symlink -------------------------------------

def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry of folder: a file's bytes, a symlink's target."""
    return {
        entry.name: os.readlink(entry) if entry.is_symlink() else entry.read_bytes()
        for entry in sorted(folder.iterdir())
    }


def test_report_refuses_a_folder_of_a_persons_files_and_changes_none(report_repo, tmp_path, photo):
    out = tmp_path / "my-figures"
    out.mkdir()
    for name in ("calibration.png", "roc.png"):
        (out / name).write_bytes(photo.read_bytes())
    (out / "report.md").write_text("my own notes\n")
    before = snapshot(out)
    result = keeptrash(report_repo, "report", "--base", "good", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"keeptrash: error: {out}: holds files keeptrash report did not write; pass --out a new or empty folder"
    ]
    assert snapshot(out) == before


def test_report_rewrites_its_own_folder_but_never_through_a_link_or_over_an_edit(report_repo, tmp_path, photo):
    out = tmp_path / "report"
    photo_before = photo.read_bytes()
    keeptrash(report_repo, "report", "--base", "good", "--out", str(out)).check_returncode()
    assert {"report.md", "roc.png", "calibration.png"} <= set(os.listdir(out))
    (out / "notes.txt").write_text("mine")  # a person's file beside the report's: left alone by a rerun
    keeptrash(report_repo, "report", "--base", "good", "--out", str(out)).check_returncode()
    assert (out / "report.md").read_text().startswith("# keeptrash review") and (out / "notes.txt").read_text() == "mine"
    # roc.png made a link to a photo elsewhere: refused, the photo still the same JPEG, nothing created beside it.
    (out / "roc.png").unlink()
    (out / "roc.png").symlink_to(photo)
    before, beside_photo = snapshot(out), sorted(os.listdir(photo.parent))
    result = keeptrash(report_repo, "report", "--base", "good", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"keeptrash: error: {out}/roc.png: is a symlink; keeptrash writes through no link: remove it, or pass --out a new or empty folder"
    ]
    assert snapshot(out) == before and photo.read_bytes() == photo_before and sorted(os.listdir(photo.parent)) == beside_photo
    # A report file the person edited is theirs now.
    (out / "roc.png").unlink()
    with (out / "report.md").open("a") as report:
        report.write("my comment\n")
    result = keeptrash(report_repo, "report", "--base", "good", "--out", str(out))
    assert result.returncode == 2
    assert f"{out}/report.md: exists and is not a file keeptrash report wrote (or it changed since)" in result.stderr
    assert (out / "report.md").read_text().endswith("my comment\n")
