"""The analyze stage's pieces: degradations, calibration, categories, baselines, pairs, validation curves."""

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from PIL import Image
from sklearn.metrics import brier_score_loss, roc_auc_score

from conftest import LIVEC_IMAGES, PHOTO_NAMES
from keeptrash.analysis.baselines import PROBE_C_GRID, as_float32, baseline_metrics, fit_probe
from keeptrash.model.ridge import CHUNK_ROWS
from keeptrash.analysis.calibration import calibration, confident_mistakes, probability_histogram
from keeptrash.analysis.categories import as_metrics, per_category
from keeptrash.analysis.degradation import (
    DEGRADATIONS,
    DegradedPhoto,
    degradation_jobs,
    degradation_key,
    degradation_summary,
)
from keeptrash.analysis.pairs import pair_agreement, read_pairs
from keeptrash.analysis.training_curve import validation_curve
from keeptrash.errors import KeeptrashError
from keeptrash.features.image_stats import STAT_NAMES, image_statistics
from keeptrash.images import open_photo

PHOTO = LIVEC_IMAGES / PHOTO_NAMES[1]


def stat(image: Image.Image, name: str, size=None) -> float:
    return float(image_statistics(image, size or image.size)[STAT_NAMES.index(name)])


# --- degradations ------------------------------------------------------------------------------


def degraded(kind: str) -> list[Image.Image]:
    return [DegradedPhoto(str(PHOTO), kind, level)(512)[0] for level in DEGRADATIONS[kind][1]]


def test_blur_lowers_sharpness_at_every_level():
    original, _ = open_photo(PHOTO, 512)
    for kind in ("gaussian_blur", "motion_blur"):
        values = [stat(original, "sharpness")] + [stat(image, "sharpness") for image in degraded(kind)]
        assert values == sorted(values, reverse=True) and len(set(values)) == len(values), (kind, values)


def test_noise_raises_the_noise_estimate_at_every_level():
    original, _ = open_photo(PHOTO, 512)
    values = [stat(original, "noise")] + [stat(image, "noise") for image in degraded("noise")]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_exposure_moves_brightness_the_right_way():
    original, _ = open_photo(PHOTO, 512)
    under = [stat(image, "exposure") for image in degraded("underexposure")]
    over = [stat(image, "exposure") for image in degraded("overexposure")]
    assert stat(original, "exposure") > under[0] > under[-1]
    assert stat(original, "exposure") < over[0] < over[-1]
    assert stat(degraded("overexposure")[-1], "highlights_clipped") > stat(original, "highlights_clipped")


def test_jpeg_recompression_drifts_further_from_the_original():
    original = np.asarray(open_photo(PHOTO, 512)[0], dtype=float)
    errors = [np.abs(np.asarray(image, dtype=float) - original).mean() for image in degraded("jpeg_quality")]
    assert errors == sorted(errors) and errors[0] > 0


def test_downscaled_photo_reports_its_smaller_size():
    for level in DEGRADATIONS["downscale"][1]:
        image, size = DegradedPhoto(str(PHOTO), "downscale", level)(512)
        assert image.size == size == (round(500 / level), round(500 / level))


def test_degradations_are_deterministic_and_keys_distinct():
    first = [np.asarray(image) for image in degraded("noise")]
    again = [np.asarray(image) for image in degraded("noise")]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    photos = pd.DataFrame({"key": ["own:a", "own:b"], "path": [str(PHOTO)] * 2, "sha256": ["a" * 64, "b" * 64]})
    jobs = degradation_jobs(photos)
    assert len(jobs) == 2 * sum(len(levels) for _, levels in DEGRADATIONS.values())
    assert jobs["cache_key"].is_unique
    assert "a" * 64 not in set(jobs["cache_key"])
    assert degradation_key("a" * 64, "noise", 8) != degradation_key("a" * 64, "noise", 16)


def test_degradation_summary_scores_monotone_and_inverted_curves():
    original = pd.Series([0.8, 0.6], index=["own:a", "own:b"])
    rows = []
    for kind, (_, levels) in DEGRADATIONS.items():
        for severity in range(1, len(levels) + 1):
            # Every kind falls as it worsens, except downscale, which rises.
            mean = 0.7 + 0.05 * severity if kind == "downscale" else 0.7 - 0.1 * severity
            rows += [{"key": key, "kind": kind, "severity": severity, "keep_probability": mean + offset} for key, offset in (("own:a", 0.05), ("own:b", -0.05))]
    curves, summary = degradation_summary(original, pd.DataFrame(rows))
    assert curves["severity"].tolist() == [0, 1, 2, 3, 4]
    assert curves["gaussian_blur"].tolist() == pytest.approx([0.7, 0.6, 0.5, 0.4, 0.3])
    assert summary["gaussian_blur"]["spearman_vs_severity"] == -1.0
    assert summary["gaussian_blur"]["falling_steps"] == 1.0
    assert summary["gaussian_blur"]["drop"] == pytest.approx(0.4)
    assert summary["downscale"]["spearman_vs_severity"] == 1.0 and summary["downscale"]["falling_steps"] == 0.0
    assert summary["monotonicity"] == pytest.approx((6 - 1) / 7, abs=1e-4)
    assert summary["photos"] == 2


# --- calibration -------------------------------------------------------------------------------


def test_histogram_counts_every_photo_once_per_class():
    labels = pd.Series([1, 1, 0, 0, 0])
    table = probability_histogram(labels, np.array([0.95, 0.55, 0.5, 0.05, 1.0]), bins=10)
    assert table["true_keep"].sum() == 2 and table["true_trash"].sum() == 3
    assert table.loc[table["keep_probability"] == 0.95, ["true_keep", "true_trash"]].values.tolist() == [[1, 1]]


def test_calibrated_scores_have_small_calibration_error_and_overconfident_ones_large():
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0, 1, 4000)
    labels = pd.Series((rng.uniform(0, 1, 4000) < probabilities).astype(int))
    curve, calibrated = calibration(labels, probabilities, bins=10)
    assert calibrated["expected_calibration_error"] < 0.03
    assert np.abs(curve["fraction_keep"] - curve["mean_predicted"]).max() < 0.06
    assert calibrated["brier_score"] == pytest.approx(brier_score_loss(labels, probabilities), abs=1e-4)
    _, overconfident = calibration(labels, np.where(probabilities > 0.5, 0.99, 0.01), bins=10)
    assert overconfident["expected_calibration_error"] > 0.2
    assert overconfident["brier_score"] > calibrated["brier_score"]


def test_confident_mistakes_are_the_worst_of_each_class():
    test = pd.DataFrame({"key": list("abcdef"), "source": "own", "score": 50.0, "label": [0, 0, 0, 1, 1, 1]})
    mistakes = confident_mistakes(test, np.array([0.9, 0.2, 0.6, 0.1, 0.8, 0.3]), listed=2)
    assert mistakes.loc[mistakes["kind"] == "over_confident_keep", "key"].tolist() == ["a", "c"]
    assert mistakes.loc[mistakes["kind"] == "under_confident_keep", "key"].tolist() == ["d", "f"]


# --- per category -------------------------------------------------------------------------------


def test_per_tag_counts_a_photo_under_each_of_its_tags():
    test = pd.DataFrame(
        {
            "label": [1, 0, 1, 0],
            "tag_1": ["Landscape", "Landscape", "Portraiture", None],
            "tag_2": ["Nature", None, "Landscape", None],
        }
    )
    table = per_category(test, np.array([0.9, 0.2, 0.3, 0.6]), 0.5, ["tag_1", "tag_2"])
    metrics = as_metrics(table)
    assert set(metrics) == {"Landscape", "Nature", "Portraiture"}
    assert metrics["Landscape"]["rows"] == 3
    assert metrics["Landscape"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["Landscape"]["roc_auc"] == 1.0
    assert np.isnan(metrics["Nature"]["roc_auc"])  # one class only


# --- baselines ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """Stand-in features where sharpness carries the label and the rest is noise."""
    rng = np.random.default_rng(1)
    n = 600
    label = rng.integers(0, 2, n)
    frame = pd.DataFrame(rng.normal(size=(n, len(STAT_NAMES))), columns=list(STAT_NAMES))
    frame["sharpness"] += 2.0 * label
    frame = frame.assign(label=label, source="own", score=50 + 30 * label + rng.normal(0, 5, n))
    return frame.iloc[:300], frame.iloc[300:450], frame.iloc[450:], list(STAT_NAMES)


def test_baselines_are_scored_on_the_test_split(splits):
    train, val, test, columns = splits
    results = baseline_metrics(train, val, test, columns, seed=0)
    assert set(results) == {"sharpness", "unclipped", "logistic_probe"}
    assert results["sharpness"]["roc_auc"] == pytest.approx(roc_auc_score(test["label"], test["sharpness"]), abs=1e-4)
    assert results["sharpness"]["roc_auc"] > 0.85
    assert 0.35 < results["unclipped"]["roc_auc"] < 0.65  # noise: no better than chance
    assert results["logistic_probe"]["roc_auc"] > 0.85
    assert results["logistic_probe"]["C"] in PROBE_C_GRID
    assert results["logistic_probe"]["rows"] == len(test)


def test_probe_strength_is_chosen_on_validation(splits):
    train, val, _, columns = splits
    chosen = fit_probe(train, val, columns, seed=0)
    chosen_auc = roc_auc_score(val["label"], chosen.predict_proba(val[columns])[:, 1])
    for strength in PROBE_C_GRID:
        other = fit_probe(train, val, columns, seed=0).set_params(logisticregression__C=strength).fit(train[columns], train["label"])
        assert roc_auc_score(val["label"], other.predict_proba(val[columns])[:, 1]) <= chosen_auc + 1e-12


def test_probe_inputs_are_the_frames_values_in_float32_rows_first():
    """Across chunk boundaries and mixed column types (a float16 embedding beside float32 statistics), exactly what pandas
    would give, laid out row by row as the logistic regression reads it."""
    rng = np.random.default_rng(4)
    rows = 2 * CHUNK_ROWS + 5
    frame = pd.concat(
        [pd.DataFrame(rng.normal(size=(rows, 6)).astype(np.float16), columns=[f"cnn_{i}" for i in range(6)]),
         pd.DataFrame(rng.normal(size=(rows, 2)).astype(np.float32), columns=["noise", "sharpness"])], axis=1,
    )
    values = as_float32(frame)
    assert values.dtype == np.float32 and values.flags.c_contiguous
    np.testing.assert_array_equal(values, frame.to_numpy(np.float32))


# --- pairs --------------------------------------------------------------------------------------


def write_pairs(tmp_path, text: str):
    (tmp_path / "images").mkdir(exist_ok=True)
    for name in PHOTO_NAMES[:3]:
        (tmp_path / "images" / name).write_bytes((LIVEC_IMAGES / name).read_bytes())
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    return path


def test_pairs_are_read_with_paths_relative_to_the_csv(tmp_path):
    a, b, c = PHOTO_NAMES[:3]
    pairs = read_pairs(write_pairs(tmp_path, f"series,preferred,other\ns1,images/{a},images/{b}\ns1,images/{a},images/{c}\n"))
    assert pairs["preferred"].tolist() == [str(tmp_path / "images" / a)] * 2
    assert pairs["other"].tolist() == [str(tmp_path / "images" / b), str(tmp_path / "images" / c)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("series,preferred\ns1,images/100.jpg\n", "missing column(s) other"),
        ("series,preferred,other\ns1,images/100.jpg,images/nope.jpg\n", "other photo"),
    ],
)
def test_bad_pairs_files_are_one_clear_line(tmp_path, text, message):
    with pytest.raises(KeeptrashError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_pairs(write_pairs(tmp_path, text))
    with pytest.raises(KeeptrashError, match="pairs file not found"):
        read_pairs(tmp_path / "absent.csv")


def test_pair_agreement_counts_ties_half_and_leaves_out_training_photos():
    pairs = pd.DataFrame({"series": "s", "preferred": ["a", "a", "b", "c"], "other": ["b", "c", "c", "d"]})
    probability = {"a": 0.9, "b": 0.5, "c": 0.5, "d": 0.8}
    result = pair_agreement(pairs, probability, seen_in_training={"d"})
    # a>b right, a>c right, b=c tie (half); c-d holds a training photo.
    assert result["pairs_without_training_photos"] == 3
    assert result["agreement"] == pytest.approx(2.5 / 3, abs=1e-4)
    assert result["agreement_including_training_photos"] == pytest.approx(2.5 / 4)


# --- validation curve ---------------------------------------------------------------------------


def test_validation_curve_has_one_row_per_tree_and_marks_the_best(splits):
    train, val, _, columns = splits
    model = CatBoostClassifier(iterations=40, depth=3, random_seed=0, verbose=False, allow_writing_files=False)
    model.fit(train[columns], train["label"])
    curve, marker, metrics = validation_curve(model, val)
    assert curve["step"].tolist() == list(range(40))
    best = metrics["best_iteration_by_val_logloss"]
    assert curve.loc[best, "val_logloss"] == curve["val_logloss"].min()
    assert marker["step"].tolist() == [best, best]
    assert metrics["best_val_spearman"] == pytest.approx(curve["val_spearman"].max(), abs=1e-4)
    assert metrics["best_val_spearman"] > 0.5  # sharpness predicts the rating too
