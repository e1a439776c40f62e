"""What the classifier sees: the feature columns `train.feature_set` picks, the CNN embedding optionally
projected onto principal components fitted on the training split only, and optionally a ridge score.

The ridge score (train.ridge_score) is a linear model's prediction of the photo's score (on train.target_scale) from
the whole embedding: thousands of weak multi-level features are what a linear
model reads well and a shallow tree ensemble reads badly, so CatBoost gets the linear model's
verdict as one input next to the statistics. On the training rows it is the leave-one-out prediction
(each row scored by a ridge fitted without it; exact and free from the ridge's own fit), so CatBoost
learns how far to trust it on new photos rather than the ridge's fit to rows it has seen.

The choice, the projection and the ridge are stored in the model file's metadata, so every later use
(the benchmark and analyze stages, `keeptrash cull`) rebuilds exactly the inputs the model was fitted on.
"""

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from sklearn.decomposition import PCA

from keeptrash.features import FINAL_MAP_SUFFIX
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.model.ridge import column_moments, fit_ridges, ridge_predictions
from keeptrash.params import TrainParams

EMBEDDING_PREFIX, PROJECTION_PREFIX, RIDGE_COLUMN = "cnn_", "pca_", "ridge_score"
_FEATURE_SET_KEY, _PROJECTION_KEY, _RIDGE_KEY = "feature_set", "cnn_projection", "ridge_score"
# Ridge strengths tried (by efficient leave-one-out) on standardised inputs; the best is kept.
RIDGE_ALPHAS = tuple(np.logspace(0, 5, 11))
# Weights of the final feature map's columns against the blocks' (multilevel pooling), tried with every ridge strength:
# weight w gives those columns a ridge strength alpha / w^2. Standardised, the final map's 1,280 columns would
# otherwise outweigh the blocks' quality cues by their number alone.
FINAL_MAP_WEIGHTS = (1.0, 0.7, 0.5, 0.35, 0.25)


def within_source_rank(rows: pd.DataFrame) -> pd.Series:
    """Each photo's score as a percentile within its own source: AVA mean scores and own ratings use different scales."""
    return rows.groupby("source")["score"].rank(pct=True)


def _encode(**arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(array, dtype=np.float32) for name, array in arrays.items()})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _decode(text: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(base64.b64decode(text))) as arrays:
        return {name: arrays[name] for name in arrays.files}


@dataclass(frozen=True)
class Projection:
    """Centre the CNN embedding and project it onto the training split's first principal components."""

    mean: np.ndarray  # (embedding dim,)
    components: np.ndarray  # (k, embedding dim)

    @property
    def columns(self) -> list[str]:
        return [f"{PROJECTION_PREFIX}{index:03d}" for index in range(len(self.components))]

    def apply(self, embedding: np.ndarray) -> np.ndarray:
        return (embedding - self.mean) @ self.components.T

    def encode(self) -> str:
        return _encode(mean=self.mean, components=self.components)

    @classmethod
    def decode(cls, text: str) -> "Projection":
        return cls(**_decode(text))


def _ridge_inputs(table: pd.DataFrame) -> pd.DataFrame:
    """The embedding columns as they are (float16, as the feature store holds them): the ridge reads them a chunk of rows at a time."""
    return table[_embedding_columns(table)]


def _embedding_columns(table: pd.DataFrame) -> list[str]:
    return [column for column in table.columns if column.startswith(EMBEDDING_PREFIX)]


@dataclass(frozen=True)
class RidgeScore:
    """A ridge regression on the standardised embedding. The statistics stay out of it: far outside their training
    range (a heavily noised photo's noise estimate) a linear model extrapolates without limit, where CatBoost,
    which sees them directly, saturates and can be held monotone (train.monotone_faults)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: np.ndarray  # shape (1,)

    @classmethod
    def fit(
        cls, inputs: np.ndarray | pd.DataFrame, target: np.ndarray, companions: pd.DataFrame | None = None, companion_of: np.ndarray | None = None,
        final_map_weights: tuple[float, ...] = FINAL_MAP_WEIGHTS,
    ) -> tuple["RidgeScore", np.ndarray]:
        """The ridge with the best leave-one-out error, and its leave-one-out prediction of every row, followed by
        that of every companion (a row's noisy copy, say: companion_of gives the row) with its row left out.

        When the inputs' columns pool both a final feature map and blocks (FINAL_MAP_SUFFIX), the final map's weight
        (one of final_map_weights) is chosen with the ridge strength; it is folded into `scale`, so applying the ridge is unchanged."""
        mean, standard_scale = column_moments(inputs)
        target = np.asarray(target, dtype=np.float64)
        final_map, weights = _final_map(inputs), _final_map_weights(inputs, final_map_weights)
        fits = fit_ridges(
            inputs, target, mean, standard_scale, RIDGE_ALPHAS, companions=companions, companion_of=companion_of,
            column_weights=tuple(np.where(final_map, weight, 1.0) for weight in weights),
        )
        errors = [np.mean((target - ridges.left_out[:, ridges.best(target)]) ** 2) for ridges in fits]
        chosen = int(np.argmin(errors))  # the first of equals
        ridges, scale = fits[chosen], standard_scale / np.where(final_map, weights[chosen], 1.0)
        best = ridges.best(target)
        left_out = ridges.left_out[:, best]
        if companions is not None:
            left_out = np.concatenate([left_out, ridges.companions_left_out[:, best]])
        return cls(mean, scale, ridges.coefficients[best], ridges.intercepts[best : best + 1]), left_out

    def apply(self, inputs: np.ndarray | pd.DataFrame) -> np.ndarray:
        return ridge_predictions(inputs, self.mean, self.scale, self.weights, float(self.intercept[0]))

    def encode(self) -> str:
        return _encode(mean=self.mean, scale=self.scale, weights=self.weights, intercept=self.intercept)

    @classmethod
    def decode(cls, text: str) -> "RidgeScore":
        return cls(**_decode(text))


def _final_map(inputs: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Which input columns pool a final feature map: none for an unnamed array."""
    if isinstance(inputs, np.ndarray):
        return np.zeros(inputs.shape[1], dtype=bool)
    return np.array([str(column).endswith(FINAL_MAP_SUFFIX) for column in inputs.columns], dtype=bool)


def _final_map_weights(inputs: np.ndarray | pd.DataFrame, weights: tuple[float, ...]) -> tuple[float, ...]:
    """The weights to try when some columns pool the final map and some the blocks; else weighing them means nothing."""
    final_map = _final_map(inputs)
    return weights if final_map.any() and not final_map.all() else (1.0,)


def score_target(rows: pd.DataFrame, scale: str) -> np.ndarray:
    """What the ridge score and the regress objective learn: each photo's score on `scale` within its source,
    computed from these rows alone.

    rank: its percentile (an unrated own keep/ or trash/ photo counts as 1 or 0). zscore: its standard
    score, which keeps how far apart two photos' ratings are. An unrated photo takes the mean standard
    score of its source's rated photos with its label (every rated keep scores above every rated trash,
    so an unrated keep stays above them all), or +1 / -1 when the source has none, as does every photo of
    a source whose ratings do not vary. A photo whose rating a person's decision overruled is unrated here
    (keeptrash.labels.own_decisions.decide), so its target lies inside its decided class.
    """
    label = rows["label"].astype(float)
    if scale == "rank":
        return within_source_rank(rows).fillna(label).to_numpy()
    if scale != "zscore":
        raise ValueError(f"unknown target scale {scale!r}")
    by_source = rows.groupby("source")["score"]
    spread = by_source.transform("std")
    varies = spread > 1e-9 * by_source.transform("mean").abs().clip(lower=1.0)
    standardised = ((rows["score"] - by_source.transform("mean")) / spread).where(varies)
    same_label_mean = standardised.groupby([rows["source"], rows["label"]]).transform("mean")
    return standardised.fillna(same_label_mean).fillna(2.0 * label - 1.0).to_numpy()


@dataclass(frozen=True)
class InputSpec:
    feature_set: str
    projection: Projection | None
    ridge: RidgeScore | None = None

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns for each row of a table holding cnn_* and the image statistics."""
        parts = []
        if self.ridge is not None:
            parts.append(pd.DataFrame({RIDGE_COLUMN: self.ridge.apply(_ridge_inputs(table)).astype(np.float32)}))
        if self.feature_set in ("all", "cnn"):
            embedding = table[[column for column in table.columns if column.startswith(EMBEDDING_PREFIX)]]
            if self.projection is None:
                parts.append(embedding.reset_index(drop=True))
            else:
                projected = self.projection.apply(embedding.to_numpy(dtype=np.float64)).astype(np.float32)
                parts.append(pd.DataFrame(projected, columns=self.projection.columns))
        if self.feature_set in ("all", "stats"):
            parts.append(table[list(STAT_NAMES)].reset_index(drop=True))
        return pd.concat(parts, axis=1)


def fit_inputs(
    train: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None = None
) -> tuple[InputSpec, pd.DataFrame, pd.DataFrame]:
    """The input spec fitted on `train` alone (label, source and score columns and features), train's own inputs,
    and the inputs of its photos' noisy copies (keeptrash.features.noise_copies) when train.noise_penalty uses them.

    With pca_components > 0 (and the embedding in use) the spec holds a PCA; with ridge_score a ridge
    fitted on all of `train`, while train's own ridge_score column holds leave-one-out predictions, and a copy's
    the prediction of the ridge fitted without its photo. The copies' inputs carry `key` (their photo's) and
    `penalty_share`; without copies in use they have no rows.
    """
    copies = _copies_in_use(train, params, noise_copies)
    projection = None
    if params.pca_components > 0 and params.feature_set != "stats":
        embedding = train[_embedding_columns(train)].to_numpy(dtype=np.float64)
        pca = PCA(n_components=min(params.pca_components, *embedding.shape), random_state=params.seed).fit(embedding)
        projection = Projection(pca.mean_, pca.components_)
    if not params.ridge_score:
        spec = InputSpec(params.feature_set, projection)
        return spec, spec.frame(train), _with_photo(spec.frame(copies), copies)
    companion_of = pd.Series(np.arange(len(train)), index=train["key"].to_numpy()).loc[copies["key"]].to_numpy() if len(copies) else None
    ridge, left_out = RidgeScore.fit(
        _ridge_inputs(train), score_target(train, params.target_scale), _ridge_inputs(copies) if len(copies) else None, companion_of,
        FINAL_MAP_WEIGHTS if params.final_map_weight is None else (params.final_map_weight,),
    )
    spec = InputSpec(params.feature_set, projection, ridge)
    inputs, copy_inputs = spec.frame(train), spec.frame(copies)
    inputs[RIDGE_COLUMN] = left_out[: len(train)].astype(np.float32)
    copy_inputs[RIDGE_COLUMN] = left_out[len(train) :].astype(np.float32)
    return spec, inputs, _with_photo(copy_inputs, copies)


def _copies_in_use(train: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None) -> pd.DataFrame:
    """The noisy copies of train's photos when train.noise_penalty learns from them, else none (train's columns)."""
    if not params.noise_penalty:
        return train.iloc[0:0].assign(key="", penalty_share=0.0)
    if noise_copies is None:
        raise ValueError("train.noise_penalty needs the noisy copies' features (data/noise_copies.parquet)")
    return noise_copies[noise_copies["key"].isin(set(train["key"]))].reset_index(drop=True)


def _with_photo(copy_inputs: pd.DataFrame, copies: pd.DataFrame) -> pd.DataFrame:
    return copy_inputs.assign(key=copies["key"].to_numpy(), penalty_share=copies["penalty_share"].to_numpy())


def stamp_inputs(model: CatBoostClassifier, spec: InputSpec) -> None:
    metadata = model.get_metadata()
    metadata[_FEATURE_SET_KEY] = spec.feature_set
    if spec.projection is not None:
        metadata[_PROJECTION_KEY] = spec.projection.encode()
    if spec.ridge is not None:
        metadata[_RIDGE_KEY] = spec.ridge.encode()


def input_spec(model: CatBoostClassifier) -> InputSpec:
    metadata = model.get_metadata()
    projection = Projection.decode(metadata[_PROJECTION_KEY]) if _PROJECTION_KEY in metadata else None
    ridge = RidgeScore.decode(metadata[_RIDGE_KEY]) if _RIDGE_KEY in metadata else None
    # Models from before feature sets existed were trained on everything.
    return InputSpec(metadata[_FEATURE_SET_KEY] if _FEATURE_SET_KEY in metadata else "all", projection, ridge)


def model_frame(model: CatBoostClassifier, table: pd.DataFrame) -> pd.DataFrame:
    return input_spec(model).frame(table)[list(model.feature_names_)]


def keep_probability(model: CatBoostClassifier, table: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(model_frame(model, table))[:, 1]
