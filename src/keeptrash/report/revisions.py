"""What the report reads from a revision (a git commit, branch or tag, a `dvc exp` name, or the workspace):
the test predictions from DVC's cache, and the metrics files committed beside them."""

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow
from dvc.api import DVCFileSystem
from dvc.scm import RevError, resolve_rev
from scmrepo.exceptions import SCMError
from scmrepo.git import Git

from keeptrash import paths
from keeptrash.errors import KeeptrashError
from keeptrash.benchmark.evaluation import HEADLINE_METRICS, SUMMARY_SECTION

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
        commit = resolve_rev(scm, name)
    except RevError:
        raise KeeptrashError(f"{name!r}: neither a git revision nor an experiment name; see `git log` or `dvc exp show`") from None
    try:
        # A tree or a file (HEAD^{tree}, HEAD:params.yaml) resolves too, but holds no run to read.
        return scm.resolve_rev(f"{commit}^{{commit}}")
    except SCMError:
        raise KeeptrashError(
            f"{name!r}: names a git tree or file, not a commit; pass a commit, branch, tag or experiment name"
        ) from None
    finally:
        scm.close()


def _is_number(value) -> bool:
    """A JSON number, or null (NaN is written as null: a figure that could not be computed)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _train_problem(train: dict) -> str | None:
    """What is wrong with the fields of metrics/train.json the report shows, or None."""
    if not _is_number(train.get("overfitting_gap")):
        return f"overfitting_gap must be a number, got {train['overfitting_gap']!r}"
    if not isinstance(train.get("overfitting_verdict", ""), str):
        return f"overfitting_verdict must be text, got {train['overfitting_verdict']!r}"
    cross_validation = train.get("cv", {})
    if not isinstance(cross_validation, dict):
        return f"cv must be an object, got {cross_validation!r}"
    for name in (*HEADLINE_METRICS, "overfitting_gap"):
        spread = cross_validation.get(name, {"mean": None, "sd": None})
        if not (isinstance(spread, dict) and _is_number(spread.get("mean")) and _is_number(spread.get("sd"))):
            return f"cv.{name} must hold a mean and an sd, got {spread!r}"
    return None


def _predictions_problem(predictions: pd.DataFrame) -> str | None:
    """What is wrong with the test predictions' columns, or None."""
    missing = [column for column in PREDICTION_COLUMNS if column not in predictions.columns]
    if missing:
        return f"lacks {', '.join(missing)}"
    for column in ("score", "label", "keep_probability"):
        if not pd.api.types.is_numeric_dtype(predictions[column]) or pd.api.types.is_bool_dtype(predictions[column]):
            return f"column {column} must hold numbers, not {predictions[column].dtype}"
    if not predictions["label"].isin([0, 1]).all():
        return "column label must hold 0 (trash) or 1 (keep)"
    if not predictions["keep_probability"].between(0, 1).all():
        return "column keep_probability must hold probabilities from 0 to 1"
    return None


def load_revision(name: str | None) -> Revision:
    """The revision's test predictions and metrics; name None means the workspace (after `dvc repro`).
    A file that is missing, unreadable or not what the pipeline writes is one error naming the revision and file."""
    commit = resolve(name) if name else None
    label = name or WORKSPACE
    files = DVCFileSystem(".", rev=commit) if commit else None

    def malformed(path, problem: str) -> KeeptrashError:
        return KeeptrashError(f"{label}: {path}: {problem}; it is not what the pipeline writes: rerun dvc repro there")

    def read(path) -> bytes:
        try:
            return path.read_bytes() if files is None else files.read_bytes(str(path))
        except FileNotFoundError:
            if files is not None and files.exists(str(path)):
                where = "it is tracked but not in DVC's cache here: dvc pull (dvc exp pull for an experiment)"
            else:
                where = "run dvc repro there first"
            raise KeeptrashError(f"{label}: cannot read {path}; {where}") from None
        except Exception as error:
            if files is None and isinstance(error, OSError):
                raise KeeptrashError(f"{label}: cannot read {path} ({error.strerror or error}); rerun dvc repro there") from None
            if files is None:
                raise
            # Not in DVC's cache, the file is read from the DVC remote, whose client raises errors of its own kind
            # (PermissionError for S3's 403, botocore's for no connection): none of them shares a base narrower than this.
            raise KeeptrashError(
                f"{label}: cannot read {path}: it is not in DVC's cache here and the DVC remote failed ({error}); check the "
                "remote's address and credentials (dvc remote list; docs/experiments.md), or dvc pull it"
            ) from None

    def read_json(path, required: bool = True) -> dict:
        try:
            value = json.loads(read(path))
        except KeeptrashError:
            if required:
                raise
            return {}
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise malformed(path, f"not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise malformed(path, f"holds a {type(value).__name__}, not an object")
        return value

    def read_parquet(path, columns: list[str] | None = None) -> pd.DataFrame:
        try:
            return pd.read_parquet(io.BytesIO(read(path)), columns=columns)
        except (pyarrow.ArrowException, ValueError, KeyError) as error:
            raise malformed(path, f"not a readable table with columns {', '.join(columns or PREDICTION_COLUMNS)} ({error})") from None

    predictions = read_parquet(paths.PREDICTIONS)
    problem = _predictions_problem(predictions)
    if problem:
        raise malformed(paths.PREDICTIONS, problem)
    benchmark = read_json(paths.BENCHMARK_METRICS)
    if "decision_threshold" not in benchmark:
        raise malformed(paths.BENCHMARK_METRICS, "lacks decision_threshold")
    threshold = benchmark["decision_threshold"]
    if not (_is_number(threshold) and threshold is not None and 0 <= threshold <= 1):
        raise malformed(paths.BENCHMARK_METRICS, f"decision_threshold must be a number from 0 to 1, got {threshold!r}")
    train = read_json(paths.TRAIN_METRICS)
    problem = _train_problem(train)
    if problem:
        raise malformed(paths.TRAIN_METRICS, problem)
    summary = read_json(paths.SUMMARY_METRICS, required=False).get(SUMMARY_SECTION, {})
    if not isinstance(summary, dict):
        raise malformed(paths.SUMMARY_METRICS, f"{SUMMARY_SECTION} must be an object, got {summary!r}")
    manifest = read_parquet(paths.MANIFEST, columns=["key", "path"])
    return Revision(
        label, commit, predictions[PREDICTION_COLUMNS], float(threshold), train, summary,
        dict(zip(manifest["key"], manifest["path"].astype(str))),
    )
