"""What the classifier sees: the feature columns `train.features` picks, the CNN embedding optionally
projected onto principal components fitted on the training split only.

The choice and the projection are stored in the model file's metadata, so every later use (the
benchmark and analyze stages, `keeptrash cull`) rebuilds exactly the inputs the model was fitted on.
"""

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from sklearn.decomposition import PCA

from keeptrash.features.image_stats import STAT_NAMES
EMBEDDING_PREFIX, PROJECTION_PREFIX = "cnn_", "pca_"
_FEATURE_SET_KEY, _PROJECTION_KEY = "feature_set", "cnn_projection"


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
        buffer = io.BytesIO()
        np.savez_compressed(buffer, mean=self.mean.astype(np.float32), components=self.components.astype(np.float32))
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> "Projection":
        with np.load(io.BytesIO(base64.b64decode(text))) as arrays:
            return cls(arrays["mean"], arrays["components"])


@dataclass(frozen=True)
class InputSpec:
    feature_set: str
    projection: Projection | None

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns for each row of a table holding cnn_* and the image statistics."""
        parts = []
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


def fit_inputs(train: pd.DataFrame, feature_set: str, pca_components: int, seed: int) -> InputSpec:
    """The input spec; with pca_components > 0 (and the embedding in use) a PCA fitted on `train` alone."""
    if pca_components == 0 or feature_set == "stats":
        return InputSpec(feature_set, None)
    embedding = train[[column for column in train.columns if column.startswith(EMBEDDING_PREFIX)]].to_numpy(dtype=np.float64)
    pca = PCA(n_components=min(pca_components, *embedding.shape), random_state=seed).fit(embedding)
    return InputSpec(feature_set, Projection(pca.mean_, pca.components_))


def stamp_inputs(model: CatBoostClassifier, spec: InputSpec) -> None:
    metadata = model.get_metadata()
    metadata[_FEATURE_SET_KEY] = spec.feature_set
    if spec.projection is not None:
        metadata[_PROJECTION_KEY] = spec.projection.encode()


def input_spec(model: CatBoostClassifier) -> InputSpec:
    metadata = model.get_metadata()
    projection = Projection.decode(metadata[_PROJECTION_KEY]) if _PROJECTION_KEY in metadata else None
    # Models from before feature sets existed were trained on everything.
    return InputSpec(metadata[_FEATURE_SET_KEY] if _FEATURE_SET_KEY in metadata else "all", projection)


def model_frame(model: CatBoostClassifier, table: pd.DataFrame) -> pd.DataFrame:
    return input_spec(model).frame(table)[list(model.feature_names_)]


def keep_probability(model: CatBoostClassifier, table: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(model_frame(model, table))[:, 1]
