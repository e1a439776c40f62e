"""Temporary keeptrash repositories that real `dvc` commands drive: a copy of this repo with a small slice of the demo
photos, reproduced once, so every command really extracts CNN features, trains CatBoost and benchmarks."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import CHEAP_FEATURES, REPO
from keeptrash.features.store import CACHE_ENV

PHOTOS = 48
STAGES = tuple(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
DEGRADED_PHOTOS = 2
SERIES_PHOTOS = 2


def run(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def stages_run(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


def set_params(repo: Path, **changes: object) -> None:
    params_file = repo / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def read_metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


def build_pipeline_repo(root: Path, photos: int = PHOTOS, **param_changes: object) -> Path:
    """A committed copy of the repo (root/repo) with `photos` rated demo photos, after one `dvc repro`; the feature
    cache sits beside it (root/feature-cache). Commands run in it later need that cache: `with_its_feature_cache`."""
    repo = root / "repo"
    repo.mkdir()
    for item in ("dvc.yaml", "params.yaml", "pyproject.toml"):
        shutil.copy(REPO / item, repo / item)
    for folder in ("src", "data/ava", "data/own", "data/sample/ava"):
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    ratings = pd.read_csv(REPO / "data/sample/livec/ratings.csv").head(photos)
    (repo / "data/sample/livec/images").mkdir(parents=True)
    for path in ratings["path"]:
        shutil.copy(REPO / "data/sample/livec" / path, repo / "data/sample/livec" / path)
    ratings.to_csv(repo / "data/sample/livec/ratings.csv", index=False)
    pairs = pd.read_csv(REPO / "data/sample/livec/pairs.csv")
    copied = set(ratings["path"])
    pairs[pairs["preferred"].isin(copied) & pairs["other"].isin(copied)].to_csv(repo / "data/sample/livec/pairs.csv", index=False)
    set_params(
        repo, train__iterations=60, train__cv_repeats=1, features__batch_size=16, analyze__degradation_photos=DEGRADED_PHOTOS,
        analyze__series_photos=SERIES_PHOTOS,
        **{**{f"features__{key}": value for key, value in CHEAP_FEATURES.items()}, **param_changes},
    )
    run(repo, "git", "init", "-q")
    dvc(repo, "init", "-q")
    for item in ("config", "plots_offline.html"):  # the project's cache settings and offline plots page
        shutil.copy(REPO / ".dvc" / item, repo / ".dvc" / item)
    # Like a clone, the repo has history before the first run (dvclive 3.49 fails in a repo with no commits).
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "project")
    with with_its_feature_cache(repo):
        dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline run")
    return repo


@contextlib.contextmanager
def with_its_feature_cache(repo: Path) -> Iterator[Path]:
    """While open, the stages dvc runs in repo and the keeptrash commands a test starts use the feature cache beside it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(repo.parent / "feature-cache"))
        yield repo


def copy_pipeline_repo(repo: Path, root: Path) -> Path:
    """A copy of build_pipeline_repo's repo and its feature cache into the empty folder root; the copy of repo.
    cp -a keeps the hard links between the outputs and the DVC cache, which the original has (cache.type)."""
    subprocess.run(["cp", "-a", f"{repo.parent}/.", str(root)], check=True)
    return root / repo.name


def run_queue(repo: Path, jobs: int) -> None:
    """Start the queued experiments on `jobs` workers and wait until none is queued or running."""
    dvc(repo, "queue", "start", "-j", str(jobs))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc(repo, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    else:
        pytest.fail(f"queued experiments did not finish:\n{status}")
    assert "Failed" not in status, status
