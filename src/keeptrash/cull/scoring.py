"""Score photos with a model the train stage produced, using the feature pipeline recorded in the model."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from catboost import Pool
from tqdm import tqdm

from keeptrash.cull import KEEP, TRASH
from keeptrash.cull.pairs import pair_shots, unpaired
from keeptrash.errors import KeeptrashError
from keeptrash.features.backbones import BACKBONES
from keeptrash.features.extract import cache_namespace, embedding_columns
from keeptrash.features.table import feature_table
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.features.store import FeatureStore
from keeptrash.images import file_digest
from keeptrash.model.model_inputs import EMBEDDING_PREFIX, PROJECTION_PREFIX, RIDGE_COLUMN
from keeptrash.model.trained import DEFAULT_BATCH_SIZE, TrainedModel
from keeptrash.params import PARAMS_FILE, SHIPPED_RUNTIME, load_params, replaced_settings

# The CNN embedding's columns (or their principal components) mean nothing one by one; their sum is "image content".
CONTENT = "image content"
_CONTENT_PREFIXES = (EMBEDDING_PREFIX, PROJECTION_PREFIX, RIDGE_COLUMN)  # the ridge score is the embedding's verdict
REASONS_SHOWN = 2


def configured_settings(params_file: Path = PARAMS_FILE) -> dict:
    """How to read photos here, from the features section of the repository's params.yaml when run inside one: what
    runs the backbone (else the runtime params.yaml ships) and how large a RAW file's preview must be (else auto). The
    model file does not say: every runtime gives the same features within a float16 step, and a RAW's preview is a
    rendering of the same photo."""
    if not params_file.is_file():
        return {"runtime": SHIPPED_RUNTIME}
    features = load_params(params_file).features
    return {"runtime": features.runtime, "raw_preview_side": features.raw_preview_side or "auto"}


def load_scoring_model(path: Path, batch_size: int = DEFAULT_BATCH_SIZE, device: str = "auto") -> TrainedModel:
    """The model and the feature settings it was trained with, read from its own metadata, with the configured settings
    (configured_settings); batch_size and device (cull's flags) are checked by features' declarations in keeptrash.params,
    as params.yaml's are."""
    if not path.is_file():
        raise KeeptrashError(f"{path}: model not found; train one with `bash scripts/repro.sh` or pass --model")
    model = TrainedModel.load(path)
    model.check_columns(path, [*embedding_columns(BACKBONES[model.features.backbone], model.features.pooling), *STAT_NAMES])
    settings = {"batch_size": batch_size, "device": device, **configured_settings()}
    extraction = replaced_settings(model.features, settings, "keeptrash cull")
    return dataclasses.replace(model, features=extraction)


def explain(contributions: np.ndarray, feature_names: list[str], values: pd.Series, keep: bool) -> str:
    """The strongest contributions (SHAP, in log-odds) towards the decision taken, e.g. 'sharpness 1.21 (+0.35)'."""
    content = contributions[[name.startswith(_CONTENT_PREFIXES) for name in feature_names]].sum()
    # A statistic that could not be measured (NaN: an image under 3 pixels across) explains nothing.
    named = {
        name: contributions[i]
        for i, name in enumerate(feature_names)
        if not name.startswith(_CONTENT_PREFIXES) and np.isfinite(values[name])
    }
    named[CONTENT] = content
    towards = sorted(
        ((name, value) for name, value in named.items() if (value > 0) == keep and value != 0),
        key=lambda item: abs(item[1]),
        reverse=True,
    )[:REASONS_SHOWN]
    if not towards:
        # Every feature pulls the other way, but not far enough to undo the model's starting point.
        return f"no feature stands out; the model leans {KEEP if keep else TRASH} for a typical photo"
    return ", ".join(
        f"{name} ({value:+.2f})" if name == CONTENT else f"{name} {values[name]:.3g} ({value:+.2f})" for name, value in towards
    )


def score_photos(paths: list[Path], model: TrainedModel, cache_root: Path, max_pixels: int) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """keep_probability, decision, reason and image statistics per photo that decodes; (path, reason) for the rest.

    Features come from the same content-addressed cache as the pipeline's, so photos already
    scored (or used in training) are not decoded again, and an interrupted run resumes.
    """
    skipped, readable, digests = [], [], []
    for path in tqdm(paths, desc="reading", unit="img", disable=None):
        try:
            if path.stat().st_size == 0:
                skipped.append((path, "empty file"))
                continue
            digest = file_digest(path)
        except OSError as error:
            skipped.append((path, f"unreadable: {error.strerror}"))
            continue
        readable.append(path)
        digests.append(digest)
    store = FeatureStore(cache_root, cache_namespace(model.features))
    features, failures, _ = feature_table([str(path) for path in readable], digests, model.features, store, max_pixels)
    skipped.extend((Path(path), reason) for path, reason in failures.items())
    photos = pd.DataFrame({"path": readable, "sha256": digests}).merge(features, on="sha256")
    if photos.empty:
        return pd.DataFrame(columns=["path", "sha256", "keep_probability", "decision", "reason", *STAT_NAMES]), skipped
    inputs = model.inputs(photos)
    columns = list(inputs.columns)
    probabilities = model.classifier.predict_proba(inputs)[:, 1]
    contributions = model.classifier.get_feature_importance(Pool(inputs), type="ShapValues")[:, :-1]
    keep = model.keeps(probabilities)
    scores = pd.DataFrame(
        {
            "path": photos["path"],
            "sha256": photos["sha256"],
            "keep_probability": probabilities.round(4),
            "decision": np.where(keep, KEEP, TRASH),
            "reason": [explain(contributions[i], columns, photos.iloc[i], keep[i]) for i in range(len(photos))],
        }
    )
    return pd.concat([scores, photos[list(STAT_NAMES)]], axis=1), skipped


def score_shots(photos: list[Path], model: TrainedModel, cache_root: Path, max_pixels: int) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """score_photos, each RAW+JPEG pair scored once, from its JPEG (keeptrash.cull.pairs): `paired_with` holds the
    pair's RAW files (a tuple, empty for a photo alone). A RAW whose JPEG does not decode is scored on its own.
    Rows follow the order of photos."""
    shots = pair_shots(photos)
    scores, skipped = score_photos(shots.photos, model, cache_root, max_pixels)
    if alone := unpaired(shots, skipped):
        more, more_skipped = score_photos(alone, model, cache_root, max_pixels)
        scores, skipped = pd.concat([scores, more], ignore_index=True), skipped + more_skipped
    position = {path: index for index, path in enumerate(photos)}
    scores = scores.sort_values("path", key=lambda paths: paths.map(position), ignore_index=True)
    scores.insert(1, "paired_with", pd.Series([shots.companions.get(path, ()) for path in scores["path"]], index=scores.index, dtype=object))
    return scores, skipped
