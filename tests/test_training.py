"""Choosing the decision threshold on the validation split, and what the model file records."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from sklearn.metrics import balanced_accuracy_score

from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.params import TrainParams
from keeptrash.training import DEFAULT_THRESHOLD, choose_threshold, decision_threshold, fit_classifier, stamp_model

PARAMS = TrainParams(
    iterations=30, depth=3, learning_rate=0.1, l2_leaf_reg=3.0, rsm=1.0, bootstrap_type="MVS", subsample=0.8,
        feature_set="all", pca_components=0, early_stopping_rounds=0,
    class_weights="none", decision_threshold=None, seed=0,
)


def test_threshold_separates_perfectly_separable_scores_halfway():
    labels = pd.Series([0, 0, 0, 1, 1])
    assert choose_threshold(labels, np.array([0.05, 0.2, 0.3, 0.7, 0.9])) == 0.5
    assert choose_threshold(labels, np.array([0.6, 0.7, 0.72, 0.8, 0.9])) == pytest.approx(0.76)


def test_threshold_maximises_balanced_accuracy():
    rng = np.random.default_rng(3)
    labels = pd.Series(rng.integers(0, 2, 300))
    probabilities = np.clip(0.75 + 0.15 * labels.to_numpy() + rng.normal(0, 0.12, 300), 0, 1)
    chosen = choose_threshold(labels, probabilities)
    best = balanced_accuracy_score(labels, probabilities >= chosen)
    for other in np.linspace(0, 1, 201):
        assert balanced_accuracy_score(labels, probabilities >= other) <= best + 1e-12
    # Scores skewed towards keep: the fixed 0.5 would call nearly everything keep.
    assert chosen > 0.7
    assert best > balanced_accuracy_score(labels, probabilities >= 0.5)


def test_ties_go_to_the_threshold_nearest_one_half():
    # Keeping from 0.2 (between 0.1 and 0.3) or from 0.85 both score balanced accuracy 0.75; 0.2 is nearer 0.5.
    labels = pd.Series([0, 1, 0, 1])
    assert choose_threshold(labels, np.array([0.1, 0.3, 0.8, 0.9])) == 0.2
    assert choose_threshold(labels, np.array([0.1, 0.2, 0.7, 0.9])) == 0.8


def test_single_class_validation_falls_back_to_the_default():
    assert choose_threshold(pd.Series([1, 1, 1]), np.array([0.2, 0.5, 0.9])) == DEFAULT_THRESHOLD


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(160, 4)), columns=["a", "b", "c", "d"])
    frame["label"] = ((frame["a"] + 0.5 * rng.normal(size=160)) > -0.6).astype(int)
    return frame.iloc[:100], frame.iloc[100:], ["a", "b", "c", "d"]


def test_a_fixed_threshold_param_is_used_as_given(data):
    train, val, columns = data
    model = fit_classifier(train, val, columns, PARAMS)
    assert decision_threshold(model, val, columns, dataclasses.replace(PARAMS, decision_threshold=0.3)) == 0.3
    assert decision_threshold(model, val.iloc[0:0], columns, PARAMS) == DEFAULT_THRESHOLD
    chosen = decision_threshold(model, val, columns, PARAMS)
    assert chosen == choose_threshold(val["label"], model.predict_proba(val[columns])[:, 1])


def test_model_file_records_how_its_features_were_made(data, tmp_path):
    train, val, columns = data
    model = fit_classifier(train, val, columns, PARAMS)
    stamp_model(model, "mobilenet_v2", 256, 0.42)
    model.save_model(str(tmp_path / "model.cbm"))
    loaded = CatBoostClassifier()
    loaded.load_model(str(tmp_path / "model.cbm"))
    metadata = dict(loaded.get_metadata())
    assert metadata["backbone"] == "mobilenet_v2"
    assert metadata["image_size"] == "256"
    assert metadata["decision_threshold"] == "0.42"
    assert metadata["preprocessing_version"] == str(PREPROCESSING_VERSION)
    assert "train_finish_time" not in metadata and "model_guid" not in metadata
