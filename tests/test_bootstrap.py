"""Bootstrap intervals and paired comparisons: checked against sklearn/scipy and hand-made cases."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from keeptrash.benchmark.evaluation import (
    BETTER,
    HEADLINE_METRICS,
    WITHIN_NOISE,
    WORSE,
    gap_interval,
    headline_with_intervals,
    paired_comparison,
    ratings_by_source,
    resampled_metrics,
    spearman_within_sources,
    summary_metrics,
)

PHOTOS = 120


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities that separate the classes fairly well (with ties), ratings with gaps."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, PHOTOS)
    probabilities = np.clip(0.5 + 0.25 * (2 * labels - 1) + rng.normal(0, 0.2, PHOTOS), 0, 1).round(2)
    ratings = np.where(rng.random(PHOTOS) < 0.25, np.nan, probabilities + rng.normal(0, 0.2, PHOTOS))
    return labels, probabilities, ratings


def test_point_estimates_equal_sklearn_and_scipy(scored):
    labels, probabilities, ratings = scored
    point = resampled_metrics(labels, probabilities, 0.5, ratings, np.arange(PHOTOS)[None, :])
    predicted = (probabilities >= 0.5).astype(int)
    rated = np.isfinite(ratings)
    assert point["accuracy"][0] == pytest.approx(accuracy_score(labels, predicted), abs=1e-12)
    assert point["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(labels, predicted), abs=1e-12)
    assert point["roc_auc"][0] == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-12)
    assert point["spearman"][0] == pytest.approx(spearmanr(probabilities[rated], ratings[rated]).statistic, abs=1e-12)


def test_interval_is_deterministic_and_covers_the_point_estimate(scored):
    labels, probabilities, ratings = scored
    first = headline_with_intervals(labels, probabilities, 0.5, ratings)
    assert headline_with_intervals(labels, probabilities, 0.5, ratings) == first
    for name in HEADLINE_METRICS:
        low, high = first[name]["ci95"]
        assert low < first[name]["value"] < high, name
        assert high - low < 0.5, name  # 120 photos: informative, not the whole range


def test_interval_narrows_with_more_photos(scored):
    labels, probabilities, ratings = scored
    small = headline_with_intervals(labels[:30], probabilities[:30], 0.5, ratings[:30])
    large = headline_with_intervals(np.tile(labels, 4), np.tile(probabilities, 4), 0.5, np.tile(ratings, 4))
    for name in HEADLINE_METRICS:
        assert np.diff(large[name]["ci95"])[0] < np.diff(small[name]["ci95"])[0], name


def test_one_class_gives_null_auc_not_an_error():
    labels = np.ones(10, dtype=int)
    figures = headline_with_intervals(labels, np.linspace(0, 1, 10), 0.5, np.full(10, np.nan))
    assert np.isnan(figures["roc_auc"]["value"]) and np.isnan(figures["roc_auc"]["ci95"]).all()
    assert np.isnan(figures["spearman"]["value"])
    assert figures["accuracy"]["value"] == 0.5


def test_identical_predictions_differ_by_exactly_zero(scored):
    labels, probabilities, ratings = scored
    comparison = paired_comparison(labels, ratings, probabilities, 0.5, probabilities.copy(), 0.5)
    for name in HEADLINE_METRICS:
        assert comparison[name]["change"] == 0 and comparison[name]["ci95"] == [0.0, 0.0], name
        assert comparison[name]["verdict"] == WITHIN_NOISE


def test_paired_verdicts(scored):
    labels, probabilities, ratings = scored
    rng = np.random.default_rng(9)
    noise = rng.random(PHOTOS)
    # Coin flips are far worse than the model on every metric; a copy nudged on two photos is within noise.
    worse = paired_comparison(labels, ratings, probabilities, 0.5, noise, 0.5)
    better = paired_comparison(labels, ratings, noise, 0.5, probabilities, 0.5)
    nudged = probabilities.copy()
    nudged[:2] = 1 - nudged[:2]
    close = paired_comparison(labels, ratings, probabilities, 0.5, nudged, 0.5)
    for name in HEADLINE_METRICS:
        assert worse[name]["verdict"] == WORSE, name
        assert better[name]["verdict"] == BETTER, name
        assert close[name]["verdict"] == WITHIN_NOISE, name
        assert worse[name]["ci95"][0] <= worse[name]["change"] <= worse[name]["ci95"][1]


def test_pairing_removes_the_shared_photo_variation(scored):
    """A small, consistent improvement is visible paired, though each model's own interval overlaps the other's."""
    labels, probabilities, ratings = scored
    base = np.clip(probabilities + np.where(labels == 1, -0.03, 0.03), 0, 1)
    comparison = paired_comparison(labels, ratings, base, 0.5, probabilities, 0.5)
    alone = headline_with_intervals(labels, base, 0.5, ratings)["roc_auc"]["ci95"]
    assert alone[0] < comparison["roc_auc"]["new"] < alone[1]  # unpaired, it would look like noise
    assert comparison["roc_auc"]["verdict"] == BETTER


def test_gap_interval_is_in_points_and_covers_the_gap():
    train = np.array([1] * 90 + [0] * 10, dtype=bool)
    val = np.array([1] * 30 + [0] * 10, dtype=bool)
    low, high = gap_interval(train, val)  # the gap is 90% - 75% = 15 points
    assert low < 15.0 < high and high - low < 40
    assert gap_interval(train, val) == [low, high]


def test_ratings_are_kept_apart_per_source():
    test = pd.DataFrame({"source": ["ava", "own", "ava", "own", "own"], "score": [4.0, 80.0, 7.0, np.nan, 20.0]})
    np.testing.assert_array_equal(
        ratings_by_source(test), [[4.0, np.nan, 7.0, np.nan, np.nan], [np.nan, 80.0, np.nan, np.nan, 20.0]]
    )


def test_spearman_is_taken_within_each_source_and_weighted_by_its_rated_photos():
    """Two sources on different scales, each ranked perfectly within itself, interleaved across: 1.0. Pooled as
    percentiles they would not be. A third source with too few rated photos is left out rather than ranked."""
    ava = pd.DataFrame({"source": "ava", "score": [4.0, 4.5, 5.0, 5.5, 6.0, 6.5]})
    own = pd.DataFrame({"source": "own", "score": [10.0, 30.0, 50.0, 70.0, 90.0, 95.0, 99.0, np.nan]})
    photos = pd.concat([ava, own], ignore_index=True)
    probabilities = np.r_[np.linspace(0.5, 1.0, 6), np.linspace(0.0, 0.6, 7), 0.3]
    assert spearman_within_sources(probabilities, photos) == pytest.approx(1.0)
    reversed_own = np.r_[np.linspace(0.5, 1.0, 6), np.linspace(0.6, 0.0, 7), 0.3]
    assert spearman_within_sources(reversed_own, photos) == pytest.approx((6 * 1.0 + 7 * -1.0) / 13)
    few = pd.DataFrame({"source": "other", "score": [1.0, 2.0]})
    assert spearman_within_sources(np.r_[probabilities, 0.9, 0.1], pd.concat([photos, few], ignore_index=True)) == pytest.approx(1.0)
    headline = headline_with_intervals(photos["score"].notna().astype(int).to_numpy(), probabilities, 0.5, ratings_by_source(photos))
    assert headline["spearman"]["value"] == pytest.approx(1.0)


def test_a_source_with_tied_ratings_or_predictions_is_left_out_not_poisoning_the_rest():
    """Six own photos all rated 4 (or all given one probability) have no rank correlation; AVA's alone counts."""
    rng = np.random.default_rng(5)
    ava = pd.DataFrame({"source": "ava", "score": rng.normal(5.4, 0.7, 40)})
    own = pd.DataFrame({"source": "own", "score": [4.0] * 6})
    photos = pd.concat([ava, own], ignore_index=True)
    probabilities = np.r_[ava["score"].to_numpy() / 10 + rng.normal(0, 0.05, 40), np.linspace(0.2, 0.8, 6)]
    ava_alone = spearman_within_sources(probabilities[:40], ava)
    assert spearman_within_sources(probabilities, photos) == pytest.approx(ava_alone)
    tied = np.r_[probabilities[:40], [0.5] * 6]
    rated = pd.concat([ava, own.assign(score=np.arange(6.0))], ignore_index=True)
    assert spearman_within_sources(tied, rated) == pytest.approx(ava_alone)
    figures = headline_with_intervals((photos["score"] > 5).astype(int).to_numpy(), probabilities, 0.5, ratings_by_source(photos))
    assert figures["spearman"]["value"] == pytest.approx(ava_alone, abs=1e-4)
    assert np.isnan(spearman_within_sources(np.empty(0), photos.iloc[0:0]))


def test_summary_has_headline_rows_with_cross_validation_beside_when_present(scored):
    labels, probabilities, ratings = scored
    headline = headline_with_intervals(labels, probabilities, 0.5, ratings)
    gap = {"value": 3.9, "ci95": [-4.5, 12.6]}
    without = summary_metrics(headline, gap, "none", None)["headline"]
    assert len(without) == 11 and without["overfitting_gap_95ci"] == "-4.5 to 12.6"
    cv = {name: {"mean": 0.8, "sd": 0.03} for name in ("accuracy", "balanced_accuracy", "roc_auc", "spearman")}
    cv["overfitting_gap"] = {"mean": 2.5, "sd": 1.25}
    summary = summary_metrics(headline, gap, "none", cv)["headline"]
    assert len(summary) <= 16
    assert summary["test_roc_auc_cv"] == "0.800 ± 0.030" and summary["overfitting_gap_cv"] == "2.5 ± 1.2"
    assert summary["test_accuracy"] == headline["accuracy"]["value"]
