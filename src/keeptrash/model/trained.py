"""The trained keep/trash model as one type: the train stage saves it with its metadata; the benchmark and analyze
stages and `keeptrash cull` load it with every check, and ask it for inputs, keep probabilities and decisions."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier

from keeptrash.errors import KeeptrashError
from keeptrash.io import atomic_write
from keeptrash.model.model_inputs import InputSpec, input_spec, keep_probability, model_frame, stamp_inputs
from keeptrash.model.training import load_model, stamp_model
from keeptrash.params import BACKBONE_NAMES, POOLINGS, FeaturesParams, section_settings

# How many photos go through the backbone at once when the caller does not say (keeptrash cull --batch-size).
DEFAULT_BATCH_SIZE = 32


def save(classifier: CatBoostClassifier, features: FeaturesParams, inputs: InputSpec, threshold: float, path: Path) -> None:
    """Stamp what the model's features and inputs were and its decision threshold into the file, written atomically."""
    stamp_model(classifier, features, threshold)
    stamp_inputs(classifier, inputs)
    atomic_write(path, lambda temp: classifier.save_model(str(temp)))


@dataclass(frozen=True)
class TrainedModel:
    classifier: CatBoostClassifier
    # Settings to extract a photo's features for this model: backbone, pooling and resolution are the model's own.
    features: FeaturesParams
    threshold: float  # keep when the keep probability is at least this

    @classmethod
    def load(cls, path: Path, settings: FeaturesParams | None = None) -> "TrainedModel":
        """The model file, checked: CatBoost, made by the train stage for this keeptrash's preprocessing, with a known
        backbone and pooling. `settings` says how to extract features here (batch size, device, workers, engine); one
        line naming the file and field if anything is wrong."""
        classifier, metadata = load_model(path)
        for field, known in (("backbone", BACKBONE_NAMES), ("pooling", POOLINGS)):
            if metadata[field] not in known:
                raise KeeptrashError(f"{path}: model uses {field} {metadata[field]!r}, which this keeptrash does not have")
        trained = {field: metadata[field] for field in ("backbone", "pooling", "resolution")}
        features = (
            dataclasses.replace(settings, **trained) if settings
            else section_settings(FeaturesParams, {**trained, "batch_size": DEFAULT_BATCH_SIZE, "device": "auto"}, path)
        )
        return cls(classifier, features, metadata["decision_threshold"])

    def check_columns(self, path: Path, feature_columns: list[str]) -> None:
        """The classifier's inputs are what its metadata makes of these feature columns (the embedding's and the image
        statistics' that extraction gives for its backbone and pooling)."""
        zeros = pd.DataFrame(np.zeros((1, len(feature_columns))), columns=feature_columns)
        if list(self.classifier.feature_names_) != list(input_spec(self.classifier).frame(zeros).columns):
            raise KeeptrashError(f"{path}: model's feature columns differ from what its metadata describes; retrain it")

    def inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        """The classifier's input columns for photos with feature columns: projected, scored, in its order."""
        return model_frame(self.classifier, table)

    def keep_probability(self, table: pd.DataFrame) -> np.ndarray:
        return keep_probability(self.classifier, table)

    def keeps(self, probabilities: np.ndarray) -> np.ndarray:
        """The decision for each keep probability: True keeps the photo."""
        return np.asarray(probabilities) >= self.threshold
