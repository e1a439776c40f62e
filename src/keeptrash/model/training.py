"""Fit the CatBoost keep/trash model (a classifier, or a calibrated regression on the score), measure how far it
overfits, and stamp and read back its metadata."""

import dataclasses
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, CatBoostError, CatBoostRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, roc_curve
from sklearn.model_selection import StratifiedKFold

from keeptrash.benchmark.evaluation import gap_interval
from keeptrash.errors import KeeptrashError
from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.images import OK
from keeptrash.model.model_inputs import InputSpec, fit_inputs, score_target
from keeptrash.params import CLASS_WEIGHTS, FEATURE_SETS, OBJECTIVES, FeaturesParams, TrainParams

# The decision threshold when nothing better is known: no validation split, or one with a single class.
DEFAULT_THRESHOLD = 0.5
LABEL_COLUMNS = ["key", "source", "score", "label", "split", "tag_1", "tag_2", "challenge"]
# Statistics of faults: with train.monotone_faults, more of them never raises the keep probability.
# On the demo photos more measured noise comes with more fine texture, which people like, so a free
# model learned to reward noise and kept noisier takes (issue 13); no training photo teaches it otherwise.
FAULT_STATISTICS = ("noise", "highlights_clipped", "shadows_clipped")
# With train.objective regress, what CatBoost fits: the photo's score within its source on train.target_scale
# (model_inputs.score_target). Binary labels throw away how good a keep is; the score keeps it.
REGRESSION_TARGET = "score_target"
# The split of the training photos' noisy copies in training_inputs: CatBoost learns from them, nothing scores them.
NOISE_COPY = "noise_copy"
# Folds of the training split whose out-of-fold regression outputs the keep-probability calibration is fitted on.
CALIBRATION_FOLDS = 5
# The loss each objective's model file records; a model whose loss does not match its objective is refused.
OBJECTIVE_LOSSES = {"classify": "Logloss", "regress": "RMSE"}


def join_features(labels: pd.DataFrame, manifest: pd.DataFrame, features: pd.DataFrame) -> tuple[pd.DataFrame, list[str], int]:
    """Labelled rows whose image verified, with their features; the feature columns; how many were skipped."""
    usable = manifest.loc[manifest["status"] == OK, ["key"]]
    table = labels[LABEL_COLUMNS].merge(usable, on="key").merge(features, on="key")
    feature_columns = [column for column in features.columns if column != "key"]
    return table.reset_index(drop=True), feature_columns, len(labels) - len(table)


def with_targets(inputs: pd.DataFrame, rows: pd.DataFrame, params: TrainParams) -> pd.DataFrame:
    """Model inputs of `rows` (in the same order) with what either objective fits, label and REGRESSION_TARGET, and
    the photo's key, which ties a photo to its noisy copies."""
    return inputs.reset_index(drop=True).assign(
        label=rows["label"].to_numpy(), **{REGRESSION_TARGET: score_target(rows, params.target_scale)}, key=rows["key"].to_numpy()
    )


def copy_targets(copy_inputs: pd.DataFrame, rows: pd.DataFrame, params: TrainParams) -> pd.DataFrame:
    """The noisy copies' inputs (keeptrash.model.model_inputs.fit_inputs) of photos among `rows`, with what the regress
    objective fits for them: their photo's score target lowered by train.noise_penalty times their penalty share, and
    their photo's label."""
    photo = pd.DataFrame({"label": rows["label"].to_numpy(), "target": score_target(rows, params.target_scale)}, index=rows["key"].to_numpy())
    of_copy = photo.loc[copy_inputs["key"]]
    return copy_inputs.reset_index(drop=True).assign(
        label=of_copy["label"].to_numpy(),
        **{REGRESSION_TARGET: of_copy["target"].to_numpy() - params.noise_penalty * copy_inputs["penalty_share"].to_numpy()},
    )


def training_inputs(
    table: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None = None
) -> tuple[InputSpec, pd.DataFrame, list[str]]:
    """The input spec fitted on the train split, every row's model inputs (with label, score target and split), and
    their columns. With train.noise_penalty, the train split's photos' noisy copies follow as rows of split NOISE_COPY."""
    table = table.reset_index(drop=True)
    training = (table["split"] == "train").to_numpy()
    spec, train_inputs, copy_inputs = fit_inputs(table[training], params, noise_copies)
    frame = spec.frame(table)
    frame.loc[training] = train_inputs.to_numpy()
    # Each split's targets from its own rows: the validation and test photos' scores never shape what the model fits.
    parts = [with_targets(frame[rows], table[rows], params).set_index(np.flatnonzero(rows)) for rows in (table["split"] == split for split in table["split"].unique())]
    inputs = pd.concat(parts).sort_index().assign(split=table["split"].to_numpy())
    copies = copy_targets(copy_inputs, table[training], params).assign(split=NOISE_COPY)
    return spec, pd.concat([inputs, copies], ignore_index=True) if len(copies) else inputs, list(frame.columns)


def overfitting_verdict(gap_points: float) -> str:
    """Train minus validation accuracy, in percentage points: below 5 none, 5 to 10 moderate, above 10 significant."""
    if gap_points > 10:
        return "significant"
    if gap_points >= 5:
        return "moderate"
    return "none"


def _catboost_settings(params: TrainParams, feature_columns: list[str], early_stopping: bool) -> dict[str, Any]:
    """CatBoost's constructor arguments shared by both objectives."""
    return {
        "iterations": params.iterations,
        "depth": params.depth,
        "learning_rate": params.learning_rate,
        "l2_leaf_reg": params.l2_leaf_reg,
        "rsm": params.rsm,
        "bootstrap_type": params.bootstrap_type,
        # Only the sampling bootstraps take a sample size.
        "subsample": params.subsample if params.bootstrap_type in ("MVS", "Bernoulli") else None,
        "monotone_constraints": {name: -1 for name in FAULT_STATISTICS if name in feature_columns} if params.monotone_faults else None,
        "random_seed": params.seed,
        # CatBoost would otherwise silently keep the best validation iteration whenever an eval set is given.
        "use_best_model": early_stopping,
        "early_stopping_rounds": params.early_stopping_rounds if early_stopping else None,
        "allow_writing_files": False,
        "verbose": False,
    }


def fit_classifier(
    train: pd.DataFrame, val: pd.DataFrame, feature_columns: list[str], params: TrainParams, noise_copies: pd.DataFrame | None = None
) -> CatBoostClassifier:
    """The model `params.objective` asks for, as a classifier whose predict_proba is the keep probability.

    train and val hold feature_columns and label (and REGRESSION_TARGET for the regress objective); noise_copies, the
    regress objective's extra rows (copy_targets: feature_columns, REGRESSION_TARGET and their photo's key).
    """
    if train["label"].nunique() < 2:
        raise KeeptrashError("the training split holds only one class; label more keep and trash photos or change labels.threshold")
    early_stopping = params.early_stopping_rounds > 0
    if early_stopping and val.empty:
        raise KeeptrashError("train.early_stopping_rounds needs a validation split; set labels.val_fraction above 0")
    if params.objective == "regress":
        model = _fit_calibrated_regressor(train, val, feature_columns, params, early_stopping, noise_copies)
    else:
        model = CatBoostClassifier(
            **_catboost_settings(params, feature_columns, early_stopping),
            auto_class_weights=CLASS_WEIGHTS[params.class_weights],
            custom_metric=["Accuracy", "AUC"],
        )
        eval_set = (val[feature_columns], val["label"]) if not val.empty else None
        model.fit(train[feature_columns], train["label"], eval_set=eval_set)
    model.get_metadata()["objective"] = params.objective
    return model


def _fit_regressor(
    train: pd.DataFrame, val: pd.DataFrame, feature_columns: list[str], params: TrainParams, early_stopping: bool,
    noise_copies: pd.DataFrame | None,
) -> CatBoostRegressor:
    model = CatBoostRegressor(**_catboost_settings(params, feature_columns, early_stopping), loss_function=OBJECTIVE_LOSSES["regress"])
    eval_set = (val[feature_columns], val[REGRESSION_TARGET]) if not val.empty else None
    rows = train if noise_copies is None else pd.concat([train[[*feature_columns, REGRESSION_TARGET]], noise_copies[[*feature_columns, REGRESSION_TARGET]]])
    model.fit(rows[feature_columns], rows[REGRESSION_TARGET], eval_set=eval_set)
    return model


def _fit_calibrated_regressor(
    train: pd.DataFrame, val: pd.DataFrame, feature_columns: list[str], params: TrainParams, early_stopping: bool,
    noise_copies: pd.DataFrame | None,
) -> CatBoostClassifier:
    """CatBoost regression on the score target (and the noisy copies' lowered targets) whose output a logistic
    (Platt) calibration turns into P(keep).

    The calibration is fitted on out-of-fold outputs of the training split (each photo scored by a
    regressor that never saw it or its copies, with as many trees as the final one), so it learns how far new photos'
    outputs are from the labels, not how well the regressor fits its own rows. It is folded into the
    model's leaf values and bias: CatBoost's predict_proba is the sigmoid of the raw value, so the saved file
    gives the calibrated keep probability wherever it is loaded as a classifier (cull, benchmark, analyze)
    and its SHAP values are log-odds, as a classifier's are.
    """
    folds = min(CALIBRATION_FOLDS, int(train["label"].value_counts().min()))
    if folds < 2:
        raise KeeptrashError(
            "train.objective regress calibrates on out-of-fold predictions and needs at least 2 keep and 2 trash photos "
            "in the training split; label more photos or set train.objective to classify"
        )
    model = _fit_regressor(train, val, feature_columns, params, early_stopping, noise_copies)
    same_trees = dataclasses.replace(params, iterations=int(model.tree_count_), early_stopping_rounds=0)
    out_of_fold = np.empty(len(train))
    for fitted, held_out in StratifiedKFold(folds, shuffle=True, random_state=params.seed).split(train, train["label"]):
        fold_copies = None if noise_copies is None else noise_copies[noise_copies["key"].isin(set(train["key"].iloc[fitted]))]
        fold_model = _fit_regressor(train.iloc[fitted], train.iloc[0:0], feature_columns, same_trees, False, fold_copies)
        out_of_fold[held_out] = fold_model.predict(train.iloc[held_out][feature_columns])
    calibration = LogisticRegression(C=np.inf).fit(out_of_fold[:, None], train["label"])
    slope, intercept = float(calibration.coef_[0, 0]), float(calibration.intercept_[0])
    # The slope goes into the leaf values rather than the scale: CatBoost's SHAP values (cull's reasons) need scale 1.
    scale, bias = model.get_scale_and_bias()
    model.set_leaf_values(model.get_leaf_values() * slope)
    model.set_scale_and_bias(scale, slope * bias + intercept)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.cbm"
        model.save_model(str(path))
        classifier = CatBoostClassifier()
        classifier.load_model(str(path))
    return classifier


def learning_curves(model: CatBoostClassifier, train: pd.DataFrame, val: pd.DataFrame, feature_columns: list[str]) -> dict:
    """Log loss and accuracy (keep at P >= 0.5) of the keep probability after each tree, on train and val
    (when it has rows), from the model's staged predictions: the same curves for both objectives."""
    curves = {}
    for name, rows in (("train", train), ("val", val)):
        if rows.empty:
            continue
        staged = [probabilities[:, 1] for probabilities in model.staged_predict_proba(rows[feature_columns], eval_period=1)]
        curves[name] = {
            "logloss": [float(log_loss(rows["label"], keep, labels=[0, 1])) for keep in staged],
            "accuracy": [float(accuracy_score(rows["label"], keep >= 0.5)) for keep in staged],
        }
    return curves


def choose_threshold(labels: pd.Series, probabilities: np.ndarray) -> float:
    """The threshold with the best balanced accuracy (ties: the one nearest 0.5), halfway between two scores.

    Balanced accuracy is (TPR + TNR) / 2 = (1 + TPR - FPR) / 2, so the best threshold maximises
    TPR - FPR along the ROC curve; it returns DEFAULT_THRESHOLD when labels hold a single class.
    """
    if labels.nunique() < 2:
        return DEFAULT_THRESHOLD
    false_positive, true_positive, thresholds = roc_curve(labels, probabilities, drop_intermediate=False)
    # thresholds[0] is +inf (nothing predicted keep); each later one admits the next lower score.
    below = np.append(thresholds[2:], 0.0)
    midpoints = (thresholds[1:] + below) / 2
    youden = (true_positive - false_positive)[1:]
    best = np.flatnonzero(np.isclose(youden, youden.max()))
    return round(float(midpoints[best[np.argmin(np.abs(midpoints[best] - 0.5))]]), 4)


def decision_threshold(model: CatBoostClassifier, val: pd.DataFrame, feature_columns: list[str], params: TrainParams) -> float:
    if params.decision_threshold is not None:
        return params.decision_threshold
    if val.empty:
        return DEFAULT_THRESHOLD
    return choose_threshold(val["label"], model.predict_proba(val[feature_columns])[:, 1])


def stamp_model(model: CatBoostClassifier, features: FeaturesParams, threshold: float) -> None:
    """Record how the model's features were made, so scoring new photos never has to assume it.

    CatBoost also stamps each model with a finish time and a random guid; they are dropped so that
    the same data, params and seed give a byte-identical model file (and an unchanged dvc.lock).
    """
    metadata = model.get_metadata()
    for run_specific in ("train_finish_time", "model_guid"):
        if run_specific in metadata:
            del metadata[run_specific]
    metadata["backbone"] = features.backbone
    metadata["pooling"] = features.pooling
    metadata["resolution"] = str(features.resolution)
    metadata["preprocessing_version"] = str(PREPROCESSING_VERSION)
    metadata["decision_threshold"] = str(threshold)


@dataclass(frozen=True)
class MetadataField:
    expected: str  # what the value must be, for the error
    parse: Callable[[str], Any]  # the stored text to its value; raises ValueError when it is not that
    required: bool = True  # optional fields were added after the first models were trained


def _within(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(text)
        return value

    return parse


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text

    return parse


# What the train stage stamps into a model, checked once wherever a model is loaded (stages and cull):
# a field name, what it must be and how to read it. A new field is one line here.
MODEL_METADATA = {
    "backbone": MetadataField("a backbone name", str),
    "pooling": MetadataField("a pooling name", str),
    "resolution": MetadataField("a whole number from 32 to 4096 (as features.resolution)", _within(int, 32, 4096)),
    "preprocessing_version": MetadataField("a whole number", _within(int, 0, math.inf)),
    "decision_threshold": MetadataField("a number from 0 to 1", _within(float, 0.0, 1.0)),
    "feature_set": MetadataField(f"one of {', '.join(FEATURE_SETS)}", _one_of(FEATURE_SETS), required=False),
    # Models from before objectives existed were classifiers.
    "objective": MetadataField(f"one of {', '.join(OBJECTIVES)}", _one_of(OBJECTIVES), required=False),
}


def load_model(path: Path) -> tuple[CatBoostClassifier, dict[str, Any]]:
    """The model file and its checked metadata (field -> value); one line naming the file and field if either is bad."""
    model = CatBoostClassifier()
    try:
        model.load_model(str(path))
    except CatBoostError:
        raise KeeptrashError(f"{path}: not a CatBoost model file; pass the models/model.cbm that dvc repro wrote") from None
    stored = model.get_metadata()
    if "preprocessing_version" in stored and stored["preprocessing_version"] != str(PREPROCESSING_VERSION):
        raise KeeptrashError(
            f"{path}: model was trained on preprocessing v{stored['preprocessing_version'][:20]}, this keeptrash computes "
            f"v{PREPROCESSING_VERSION}; retrain it with dvc repro"
        )
    missing = [name for name, field in MODEL_METADATA.items() if field.required and name not in stored]
    if missing:
        raise KeeptrashError(f"{path}: model lacks {', '.join(missing)} in its metadata; it was not made by keeptrash's train stage")
    metadata = {}
    for name, field in MODEL_METADATA.items():
        if name not in stored:
            continue
        try:
            metadata[name] = field.parse(stored[name])
        except ValueError:
            raise KeeptrashError(
                f"{path}: model metadata {name} must be {field.expected}, got {stored[name][:60]!r}; the file was "
                "altered or damaged, retrain it with dvc repro"
            ) from None
    loss = model.get_all_params().get("loss_function")
    objective = metadata.get("objective", "classify")
    if loss != OBJECTIVE_LOSSES[objective]:
        raise KeeptrashError(
            f"{path}: model metadata objective {objective} needs a {OBJECTIVE_LOSSES[objective]} model, the file holds {loss}; "
            "its scores would not be keep probabilities, retrain it with dvc repro"
        )
    return model, metadata


def split_decisions(model: CatBoostClassifier, table: pd.DataFrame, feature_columns: list[str], threshold: float) -> dict:
    """Each split's labels and keep decisions (1 keeps), from the rows as given: the train split's inputs are the
    leave-one-out ones training_inputs made, so every figure computed from these is about the same predictions."""
    decisions = {}
    for split in ("train", "val", "test"):
        rows = table[table["split"] == split]
        predicted = (model.predict_proba(rows[feature_columns])[:, 1] >= threshold).astype(int) if len(rows) else np.zeros(0, int)
        decisions[split] = (rows["label"].to_numpy(), predicted)
    return decisions


def split_scores(decisions: dict) -> dict:
    scores = {}
    for split, (labels, predicted) in decisions.items():
        if not len(labels):
            scores[split] = {"accuracy": np.nan, "balanced_accuracy": np.nan, "rows": 0}
            continue
        scores[split] = {
            "accuracy": round(float(accuracy_score(labels, predicted)), 4),
            "balanced_accuracy": round(float(balanced_accuracy_score(labels, predicted)), 4),
            "rows": int(len(labels)),
        }
    return scores


def train_summary(model: CatBoostClassifier, decisions: dict, threshold: float, skipped: int) -> dict:
    """The per-split figures of split_decisions, and the overfitting gap with its 95% interval from resampling the
    very decisions the gap is computed from."""
    scores = split_scores(decisions)
    gap = round(100 * (scores["train"]["accuracy"] - scores["val"]["accuracy"]), 2)
    gap_ci95 = [np.nan, np.nan]
    if scores["val"]["rows"]:
        gap_ci95 = gap_interval(*(labels == predicted for labels, predicted in (decisions["train"], decisions["val"])))
    return {
        "train_accuracy": scores["train"]["accuracy"],
        "val_accuracy": scores["val"]["accuracy"],
        "test_accuracy": scores["test"]["accuracy"],
        "train_balanced_accuracy": scores["train"]["balanced_accuracy"],
        "val_balanced_accuracy": scores["val"]["balanced_accuracy"],
        "test_balanced_accuracy": scores["test"]["balanced_accuracy"],
        "overfitting_gap": gap,
        "overfitting_gap_ci95": gap_ci95,
        "overfitting_verdict": overfitting_verdict(gap) if np.isfinite(gap) else "unknown (no validation split)",
        "decision_threshold": threshold,
        "iterations_trained": int(model.tree_count_),
        "best_iteration": model.get_best_iteration(),
        "rows": {split: scores[split]["rows"] for split in scores},
        "skipped_images": skipped,
    }
