"""Benchmark metrics on a hand-made test split, checked against sklearn/scipy on the same arrays."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support, roc_auc_score

from keeptrash.benchmark.evaluation import benchmark_metrics
from keeptrash.io import write_json
from keeptrash.model.training import overfitting_verdict

THRESHOLD = 0.5


@pytest.fixture
def test_split() -> tuple[pd.DataFrame, np.ndarray]:
    """11 test rows, sources interleaved, on a non-default index (as after filtering a larger table).

    AVA rows have both classes and a mean score each; own rows are all 'keep', 4 of them rated.
    """
    frame = pd.DataFrame(
        {
            "source": ["ava", "own", "ava", "ava", "own", "ava", "ava", "own", "ava", "own", "ava"],
            "label": [1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1],
            "score": [6.8, 71.0, 4.9, 5.5, np.nan, 6.1, 5.9, 55.0, 3.2, 90.0, 7.4],
        },
        index=[3, 8, 10, 11, 15, 21, 22, 30, 31, 40, 41],
    )
    probabilities = np.array([0.81, 0.66, 0.42, 0.55, 0.30, 0.47, 0.12, 0.90, 0.05, 0.51, 0.93])
    return frame, probabilities


def sklearn_metrics(labels, probabilities) -> dict:
    predicted = (np.asarray(probabilities) >= THRESHOLD).astype(int)
    return {
        "accuracy": round(accuracy_score(labels, predicted), 4),
        "balanced_accuracy": round(balanced_accuracy_score(labels, predicted), 4),
        "roc_auc": round(roc_auc_score(labels, probabilities), 4),
    }


def test_overall_metrics_agree_with_sklearn(test_split):
    frame, probabilities = test_split
    metrics = benchmark_metrics(frame, probabilities, pd.Series([0, 0, 1]), THRESHOLD)
    want = sklearn_metrics(frame["label"].to_numpy(), probabilities)
    assert metrics["rows"] == 11
    assert metrics["decision_threshold"] == THRESHOLD
    assert metrics["accuracy"] == want["accuracy"] == round(8 / 11, 4)
    assert metrics["balanced_accuracy"] == want["balanced_accuracy"]
    assert metrics["roc_auc"] == want["roc_auc"]


def test_per_class_metrics_agree_with_sklearn(test_split):
    frame, probabilities = test_split
    metrics = benchmark_metrics(frame, probabilities, pd.Series([1]), THRESHOLD)
    predicted = (probabilities >= THRESHOLD).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(frame["label"], predicted, labels=[1, 0])
    for i, name in enumerate(["keep", "trash"]):
        assert metrics["per_class"][name] == {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
    assert metrics["per_class"]["keep"]["support"] == 7
    assert metrics["per_class"]["trash"]["support"] == 4


def test_per_source_metrics_use_that_sources_rows(test_split):
    frame, probabilities = test_split
    metrics = benchmark_metrics(frame, probabilities, pd.Series([0, 1, 1]), THRESHOLD)
    assert set(metrics["per_source"]) == {"ava", "own"}
    is_ava = (frame["source"] == "ava").to_numpy()
    ava = metrics["per_source"]["ava"]
    assert ava["rows"] == 7
    want = sklearn_metrics(frame["label"].to_numpy()[is_ava], probabilities[is_ava])
    assert (ava["accuracy"], ava["balanced_accuracy"], ava["roc_auc"]) == (want["accuracy"], want["balanced_accuracy"], want["roc_auc"])
    rho = spearmanr(probabilities[is_ava], frame["score"].to_numpy()[is_ava]).statistic
    assert ava["spearman_vs_ava_mean_score"] == round(float(rho), 4)


def test_single_class_source_gets_null_balanced_accuracy_and_auc(test_split):
    frame, probabilities = test_split
    own = benchmark_metrics(frame, probabilities, pd.Series([0]), THRESHOLD)["per_source"]["own"]
    assert own["rows"] == 4
    # All four own rows are keep; 0.30 is predicted trash.
    assert own["accuracy"] == 0.75
    assert math.isnan(own["balanced_accuracy"])
    assert math.isnan(own["roc_auc"])


def test_spearman_is_null_below_five_rated_rows(test_split):
    frame, probabilities = test_split
    own = benchmark_metrics(frame, probabilities, pd.Series([0]), THRESHOLD)["per_source"]["own"]
    # 4 own rows, 3 of them rated: too few for a rank correlation.
    assert math.isnan(own["spearman_vs_own_rating"])


@pytest.mark.parametrize("rated, is_null", [(4, True), (5, False), (6, False)])
def test_spearman_needs_five_rated_rows(rated, is_null):
    frame = pd.DataFrame(
        {"source": "own", "label": [1, 0, 1, 0, 1, 0, 1], "score": [90, 10, 70, 30, 60, 20, 80][:rated] + [np.nan] * (7 - rated)}
    )
    probabilities = np.array([0.9, 0.2, 0.6, 0.4, 0.3, 0.1, 0.8])
    value = benchmark_metrics(frame, probabilities, frame["label"], THRESHOLD)["per_source"]["own"]["spearman_vs_own_rating"]
    if is_null:
        assert math.isnan(value)
    else:
        rho = spearmanr(probabilities[:rated], frame["score"][:rated]).statistic
        assert value == round(float(rho), 4)


@pytest.mark.parametrize(
    "train_labels, majority, baseline",
    [
        ([0, 0, 0, 1, 1], "trash", round(4 / 11, 4)),
        ([1, 1, 0], "keep", round(7 / 11, 4)),
        ([0] * 10, "trash", round(4 / 11, 4)),
    ],
)
def test_majority_baseline_is_share_of_train_majority_in_test(test_split, train_labels, majority, baseline):
    frame, probabilities = test_split
    metrics = benchmark_metrics(frame, probabilities, pd.Series(train_labels), THRESHOLD)
    assert metrics["majority_class"] == majority
    assert metrics["majority_baseline_accuracy"] == baseline


def test_null_metrics_are_written_as_json_null(tmp_path, test_split):
    frame, probabilities = test_split
    metrics = benchmark_metrics(frame, probabilities, pd.Series([0]), THRESHOLD)
    path = tmp_path / "benchmark.json"
    write_json(path, metrics)
    own = json.loads(path.read_text(encoding="utf-8"))["per_source"]["own"]
    assert own["balanced_accuracy"] is None
    assert own["roc_auc"] is None
    assert own["spearman_vs_own_rating"] is None
    assert own["accuracy"] == 0.75


@pytest.mark.parametrize(
    "gap, verdict",
    [(-3.0, "none"), (0.0, "none"), (4.99, "none"), (5, "moderate"), (7.5, "moderate"), (10, "moderate"), (10.01, "significant"), (40, "significant")],
)
def test_overfitting_verdict(gap, verdict):
    assert overfitting_verdict(gap) == verdict
