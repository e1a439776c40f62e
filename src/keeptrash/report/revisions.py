"""What the report reads from a revision (a git commit, branch or tag, a `dvc exp` name, or the workspace):
the test predictions from DVC's cache, and the metrics files committed beside them."""

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from dvc.api import DVCFileSystem
from dvc.scm import RevError, resolve_rev
from scmrepo.exceptions import SCMError
from scmrepo.git import Git

from keeptrash import paths
from keeptrash.errors import KeeptrashError
from keeptrash.benchmark.evaluation import SUMMARY_SECTION

WORKSPACE = "workspace"
PREDICTION_COLUMNS = ["key", "source", "score", "label", "keep_probability"]


@dataclass(frozen=True)
class Revision:
    name: str  # as the user gave it ("workspace" for the files on disk)
    commit: str | None  # None for the workspace
    predictions: pd.DataFrame
    threshold: float
    train: dict  # metrics/train.json
    summary: dict  # the headline of metrics/summary.json ({} in revisions from before it existed)
    photo_paths: dict[str, str]  # key -> photo file, from the download stage's manifest


def resolve(name: str) -> str:
    """The commit a git revision or an experiment name (`dvc exp show` lists them) points at."""
    try:
        scm = Git(".")
    except SCMError:
        raise KeeptrashError(f"{Path.cwd()}: not a git repository; run keeptrash report in the keeptrash project") from None
    try:
        return resolve_rev(scm, name)
    except RevError:
        raise KeeptrashError(f"{name!r}: neither a git revision nor an experiment name; see `git log` or `dvc exp show`") from None
    finally:
        scm.close()


def load_revision(name: str | None) -> Revision:
    """The revision's test predictions and metrics; name None means the workspace (after `dvc repro`)."""
    commit = resolve(name) if name else None
    label = name or WORKSPACE
    files = DVCFileSystem(".", rev=commit) if commit else None

    def read(path) -> bytes:
        try:
            return path.read_bytes() if files is None else files.read_bytes(str(path))
        except FileNotFoundError:
            if files is not None and files.exists(str(path)):
                where = "it is tracked but not in DVC's cache here: dvc pull (dvc exp pull for an experiment)"
            else:
                where = "run dvc repro there first"
            raise KeeptrashError(f"{label}: cannot read {path}; {where}") from None

    def read_json(path, required: bool = True) -> dict:
        try:
            return json.loads(read(path))
        except KeeptrashError:
            if required:
                raise
            return {}

    predictions = pd.read_parquet(io.BytesIO(read(paths.PREDICTIONS)))
    missing = [column for column in PREDICTION_COLUMNS if column not in predictions.columns]
    if missing:
        raise KeeptrashError(f"{label}: {paths.PREDICTIONS} lacks {', '.join(missing)}; rerun dvc repro there")
    benchmark = read_json(paths.BENCHMARK_METRICS)
    manifest = pd.read_parquet(io.BytesIO(read(paths.MANIFEST)), columns=["key", "path"])
    return Revision(
        label, commit, predictions[PREDICTION_COLUMNS], float(benchmark["decision_threshold"]),
        read_json(paths.TRAIN_METRICS), read_json(paths.SUMMARY_METRICS, required=False).get(SUMMARY_SECTION, {}),
        dict(zip(manifest["key"], manifest["path"])),
    )
