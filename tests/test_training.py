"""Choosing the decision threshold on the validation split, and what the model file records."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from scipy import stats
from scipy.stats import spearmanr
from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

from keeptrash.analysis.learning_curve import learning_curve
from keeptrash.model.cross_validation import cross_validate, cv_folds, cv_rows, fold_metrics, fold_scores, paired_difference
from keeptrash.errors import KeeptrashError
from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.model.model_inputs import fit_inputs, input_spec, keep_probability, score_target, stamp_inputs
from keeptrash.params import FeaturesParams, TrainParams
from keeptrash.model.training import (
    DEFAULT_THRESHOLD,
    choose_threshold,
    decision_threshold,
    REGRESSION_TARGET,
    fit_classifier,
    learning_curves,
    load_model,
    stamp_model,
    training_inputs,
)
from keeptrash.errors import KeeptrashError

PARAMS = TrainParams(
    iterations=30, depth=3, learning_rate=0.1, l2_leaf_reg=3.0, rsm=1.0, bootstrap_type="MVS", subsample=0.8,
        feature_set="all", pca_components=0, ridge_score=False, monotone_faults=False, early_stopping_rounds=0,
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


STAMPED_FEATURES = FeaturesParams(backbone="mobilenet_v2", pooling="multilevel", resolution=384, batch_size=4, device="cpu")


def test_model_file_records_how_its_features_were_made(data, tmp_path):
    train, val, columns = data
    model = fit_classifier(train, val, columns, PARAMS)
    stamp_model(model, STAMPED_FEATURES, 0.42)
    model.save_model(str(tmp_path / "model.cbm"))
    loaded = CatBoostClassifier()
    loaded.load_model(str(tmp_path / "model.cbm"))
    metadata = dict(loaded.get_metadata())
    assert metadata["backbone"] == "mobilenet_v2"
    assert (metadata["pooling"], metadata["resolution"]) == ("multilevel", "384")
    assert metadata["decision_threshold"] == "0.42"
    assert metadata["preprocessing_version"] == str(PREPROCESSING_VERSION)
    assert "train_finish_time" not in metadata and "model_guid" not in metadata


def test_load_model_reads_the_stamped_metadata_back_as_values(data, tmp_path):
    train, val, columns = data
    model = fit_classifier(train, val, columns, PARAMS)
    stamp_model(model, STAMPED_FEATURES, 0.42)
    model.save_model(str(tmp_path / "model.cbm"))
    _, metadata = load_model(tmp_path / "model.cbm")
    assert metadata == {
        "backbone": "mobilenet_v2", "pooling": "multilevel", "resolution": 384,
        "preprocessing_version": PREPROCESSING_VERSION, "decision_threshold": 0.42, "objective": "classify",
    }


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("decision_threshold", "abc", "decision_threshold must be a number from 0 to 1, got 'abc'"),
        ("decision_threshold", "nan", "decision_threshold must be a number from 0 to 1, got 'nan'"),
        ("decision_threshold", "2.5", "decision_threshold must be a number from 0 to 1, got '2.5'"),
        ("resolution", "500px", "resolution must be a whole number from 32 to 4096"),
        ("resolution", "-5", "got '-5'"),
        ("feature_set", "everything", "feature_set must be one of all, cnn, stats"),
        ("objective", "rank", "objective must be one of classify, regress"),
        # A classifier's raw values labelled as a calibrated regression: scored as such they would not be probabilities.
        ("objective", "regress", "objective regress needs a RMSE model, the file holds Logloss"),
    ],
)
def test_tampered_model_metadata_is_one_line_naming_the_file_and_field(data, tmp_path, field, value, words):
    train, val, columns = data
    model = fit_classifier(train, val, columns, PARAMS)
    stamp_model(model, STAMPED_FEATURES, 0.42)
    model.get_metadata()[field] = value
    path = tmp_path / "tampered.cbm"
    model.save_model(str(path))
    with pytest.raises(KeeptrashError) as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(f"{path}: model metadata ") and words in message and "retrain" in message, message


@pytest.mark.parametrize("version", ["four", str(PREPROCESSING_VERSION - 1)])
def test_model_from_other_preprocessing_is_refused_before_its_fields_are_read(data, tmp_path, version):
    """A model from an older keeptrash lacks today's fields; the version it names is what the user must hear."""
    train, val, columns = data
    model = fit_classifier(train, val, columns, PARAMS)
    stamp_model(model, STAMPED_FEATURES, 0.42)
    metadata = model.get_metadata()
    metadata["preprocessing_version"] = version
    del metadata["pooling"]
    path = tmp_path / "old.cbm"
    model.save_model(str(path))
    with pytest.raises(KeeptrashError, match=f"trained on preprocessing v{version}, this keeptrash computes v{PREPROCESSING_VERSION}; retrain"):
        load_model(path)


# --- model inputs: feature sets and the PCA projection stored in the model ---------------------------


@pytest.fixture(scope="module")
def embedded() -> pd.DataFrame:
    """A table shaped like the pipeline's: 40 cnn_ columns whose first direction carries the label, the statistics, and
    each photo's own rating."""
    rng = np.random.default_rng(2)
    n = 240
    label = rng.integers(0, 2, n)
    cnn = rng.normal(size=(n, 40))
    cnn[:, 0] += 3 * label
    table = pd.DataFrame(cnn, columns=[f"cnn_{i:04d}" for i in range(40)])
    for name in STAT_NAMES:
        table[name] = rng.normal(size=n)
    split = np.where(np.arange(n) < 160, "train", np.where(np.arange(n) < 200, "val", "test"))
    return table.assign(
        key=[f"own:{index}.jpg" for index in range(n)], label=label, split=split, source="own", score=40.0 + 20 * label + rng.normal(scale=5, size=n)
    )


def test_projection_is_fitted_on_the_train_split_only(embedded):
    params = dataclasses.replace(PARAMS, pca_components=5)
    spec, _, _ = fit_inputs(embedded[embedded["split"] == "train"], params)
    shifted = embedded.copy()
    shifted.loc[shifted["split"] != "train", "cnn_0001"] += 100.0  # held-out rows must not move the projection
    again, _, _ = fit_inputs(shifted[shifted["split"] == "train"], params)
    np.testing.assert_array_equal(spec.projection.components, again.projection.components)
    frame = spec.frame(embedded)
    assert list(frame.columns) == [f"pca_{i:03d}" for i in range(5)] + list(STAT_NAMES)
    train_projection = frame.loc[(embedded["split"] == "train").to_numpy(), "pca_000"]
    assert train_projection.mean() == pytest.approx(0, abs=1e-5)  # centred on the training mean


@pytest.mark.parametrize(("feature_set", "components", "first", "count"), [
    ("all", 0, "cnn_0000", 40 + len(STAT_NAMES)), ("cnn", 0, "cnn_0000", 40), ("stats", 8, "sharpness", len(STAT_NAMES)),
    ("cnn", 8, "pca_000", 8),
])
def test_feature_sets_pick_their_columns(embedded, feature_set, components, first, count):
    spec, _, _ = fit_inputs(embedded, dataclasses.replace(PARAMS, feature_set=feature_set, pca_components=components))
    frame = spec.frame(embedded)
    assert frame.columns[0] == first and frame.shape == (len(embedded), count)


def test_a_model_rebuilds_its_own_inputs_from_its_file(embedded, tmp_path):
    params = dataclasses.replace(PARAMS, pca_components=6)
    spec, inputs, columns = training_inputs(embedded, params)
    model = fit_classifier(inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"], columns, params)
    stamp_inputs(model, spec)
    model.save_model(str(tmp_path / "model.cbm"))
    loaded = CatBoostClassifier()
    loaded.load_model(str(tmp_path / "model.cbm"))
    assert input_spec(loaded).feature_set == "all"
    np.testing.assert_allclose(keep_probability(loaded, embedded), model.predict_proba(inputs[columns])[:, 1], atol=1e-6)
    assert roc_auc_score(embedded["label"], keep_probability(loaded, embedded)) > 0.9


def test_learning_curve_grows_the_training_split_and_keeps_held_out_rows(embedded):
    curve = learning_curve(embedded.assign(source="own", score=50.0), dataclasses.replace(PARAMS, pca_components=6))
    assert curve["train_photos"].tolist() == [50, 100, 160]
    assert curve["gap"].tolist() == pytest.approx((100 * (curve["train_accuracy"] - curve["val_accuracy"])).tolist(), abs=0.01)
    assert curve["test_roc_auc"].between(0.5, 1).all()


# --- the ridge score and cross-validation ---------------------------------------------------------


@pytest.fixture
def rated(embedded) -> pd.DataFrame:
    """`embedded` with a score per photo that the first CNN column predicts, as own ratings."""
    rng = np.random.default_rng(4)
    score = 50 + 10 * embedded["cnn_0000"] + rng.normal(scale=5, size=len(embedded))
    return embedded.assign(source="own", score=score)


def test_ridge_score_on_training_rows_is_left_out_not_fitted(rated):
    """On pure noise a ridge fits its own rows, but predicts each left-out row no better than chance."""
    rng = np.random.default_rng(5)
    noise = rated.assign(**{f"cnn_{i:04d}": rng.normal(size=len(rated)) for i in range(40)}, score=rng.normal(size=len(rated)))
    params = dataclasses.replace(PARAMS, ridge_score=True, feature_set="stats")
    spec, train_inputs, _ = fit_inputs(noise, params)
    assert list(train_inputs.columns) == ["ridge_score", *STAT_NAMES]
    target = noise["score"].rank(pct=True)
    fitted_correlation = np.corrcoef(spec.frame(noise)["ridge_score"], target)[0, 1]
    left_out_correlation = np.corrcoef(train_inputs["ridge_score"], target)[0, 1]
    assert fitted_correlation > left_out_correlation + 0.2
    assert left_out_correlation < 0.15


def test_a_model_with_a_ridge_score_rebuilds_it_from_its_file(rated, tmp_path):
    params = dataclasses.replace(PARAMS, ridge_score=True, pca_components=4)
    spec, inputs, columns = training_inputs(rated, params)
    assert columns[0] == "ridge_score"
    model = fit_classifier(inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"], columns, params)
    stamp_inputs(model, spec)
    model.save_model(str(tmp_path / "model.cbm"))
    loaded = CatBoostClassifier()
    loaded.load_model(str(tmp_path / "model.cbm"))
    held_out = rated[rated["split"] != "train"]
    np.testing.assert_allclose(keep_probability(loaded, held_out), model.predict_proba(spec.frame(held_out)[columns])[:, 1], atol=1e-6)


def test_cross_validation_reports_each_metric_as_mean_and_sd(rated):
    params = dataclasses.replace(PARAMS, ridge_score=True, pca_components=4, cv_folds=4, cv_repeats=2)
    cv = cross_validate(rated, params)
    assert list(cv) == ["folds", "repeats", "rows", "accuracy", "balanced_accuracy", "roc_auc", "spearman", "overfitting_gap"]
    assert (cv["folds"], cv["repeats"], cv["rows"]) == (4, 2, 200)  # every train+val row: fewer than cv_max_rows
    for metric in ("accuracy", "balanced_accuracy", "roc_auc", "spearman", "overfitting_gap"):
        assert set(cv[metric]) == {"mean", "sd"} and cv[metric]["sd"] >= 0
    assert cv["roc_auc"]["mean"] > 0.9 and cv["spearman"]["mean"] > 0.5
    assert cv_folds(rated.loc[rated["split"] != "test", "label"], 4, 2, 0)[0][1].tolist() == cv_folds(
        rated.loc[rated["split"] != "test", "label"], 4, 2, 0
    )[0][1].tolist()  # the same folds for the same seed


def test_experiments_are_compared_fold_by_fold_on_the_same_folds(rated):
    """fold_scores is what cross_validate summarises; a worse recipe (no embedding, so no ridge score to rank by) loses
    on the very folds the better one was scored on, and an experiment against itself differs by nothing."""
    params = dataclasses.replace(PARAMS, ridge_score=True, feature_set="stats", cv_folds=4, cv_repeats=2)
    scores = fold_scores(rated, params)
    assert len(scores) == 8
    assert cross_validate(rated, params)["spearman"] == {"mean": round(scores["spearman"].mean(), 4), "sd": round(scores["spearman"].std(ddof=1), 4)}
    assert paired_difference(scores, fold_scores(rated, params), cv_folds=4) == {"mean": 0.0, "sd": 0.0, "better": 0, "folds": 8, "p": 1.0}
    blind = rated.assign(**{column: 0.0 for column in rated.columns if column.startswith("cnn_")})
    worse = paired_difference(fold_scores(blind, params), scores, cv_folds=4)
    assert worse["folds"] == 8 and worse["mean"] < 0 and worse["better"] <= 2


def test_paired_difference_corrects_for_folds_sharing_their_training_rows():
    """Nadeau and Bengio's corrected t: the variance of the mean difference over k x r folds is sd^2 (1 / (k r) + 1 / (k - 1)),
    not sd^2 / (k r), so a difference a plain paired t-test calls significant can be within noise."""
    baseline = pd.DataFrame({"spearman": np.full(15, 0.80)})
    experiment = baseline.assign(spearman=baseline["spearman"] + [0.03, -0.01, 0.02, 0.01, 0.00, 0.02, -0.02, 0.03, 0.01, 0.02, 0.00, 0.01, 0.02, -0.01, 0.02])
    plain_p = stats.ttest_rel(experiment["spearman"], baseline["spearman"]).pvalue
    corrected = paired_difference(experiment, baseline, cv_folds=5)
    sd = np.std(experiment["spearman"] - baseline["spearman"], ddof=1)
    assert corrected["p"] == pytest.approx(2 * stats.t.sf(corrected["mean"] / (sd * np.sqrt(1 / 15 + 1 / 4)), df=14))
    assert plain_p < 0.05 < corrected["p"]
    assert paired_difference(experiment, experiment - 0.01, cv_folds=5)["p"] < 1e-6  # the same gain on every fold


def test_cross_validation_never_sees_the_test_split(rated):
    params = dataclasses.replace(PARAMS, cv_folds=3, cv_repeats=1)
    scrambled = rated.copy()
    test = scrambled["split"] == "test"
    scrambled.loc[test, "label"] = 1 - scrambled.loc[test, "label"]
    scrambled.loc[test, "cnn_0000"] *= -50
    assert cross_validate(scrambled, params) == cross_validate(rated, params)


@pytest.mark.parametrize("objective", ["classify", "regress"])
def test_everything_a_fold_fits_comes_from_its_training_part(rated, objective):
    """Projection, ridge, model, calibration and threshold: garbage held-out rows change the held-out scores, never the fit."""
    params = dataclasses.replace(PARAMS, ridge_score=True, pca_components=4, objective=objective)
    fitted, held_out = rated.iloc[:150], rated.iloc[150:]
    garbage = held_out.assign(cnn_0000=held_out["cnn_0000"] * -100, label=1 - held_out["label"])
    clean, spoiled = fold_metrics(fitted, held_out, params), fold_metrics(fitted, garbage, params)
    # overfitting_gap = 100 x (training-part accuracy - held-out accuracy): the training part's accuracy is unchanged.
    assert clean["overfitting_gap"] + 100 * clean["accuracy"] == pytest.approx(spoiled["overfitting_gap"] + 100 * spoiled["accuracy"])
    assert spoiled["accuracy"] < clean["accuracy"]


def test_cross_validation_above_cv_max_rows_uses_a_stratified_seeded_sample(rated):
    params = dataclasses.replace(PARAMS, cv_folds=3, cv_repeats=1, cv_max_rows=100)
    pool = rated[rated["split"] != "test"]
    rows = cv_rows(rated, params)
    assert len(rows) == 100 and set(rows) <= set(np.flatnonzero((rated["split"] != "test").to_numpy()))
    assert list(rows) == sorted(rows)
    assert rated["label"].iloc[rows].mean() == pytest.approx(pool["label"].mean(), abs=0.01)  # the pool's keep share
    assert list(cv_rows(rated, params)) == list(rows)  # the same seed, the same sample
    assert list(cv_rows(rated, dataclasses.replace(params, seed=1))) != list(rows)
    assert list(cv_rows(rated, dataclasses.replace(params, cv_max_rows=0))) == list(np.flatnonzero((rated["split"] != "test").to_numpy()))
    assert cross_validate(rated, params)["rows"] == 100


def test_a_cv_max_rows_too_small_for_the_folds_is_one_clear_error_naming_it(rated):
    with pytest.raises(KeeptrashError, match=r"train.cv_max_rows 8 keeps about \d+ photos of the rarer class"):
        cross_validate(rated, dataclasses.replace(PARAMS, cv_folds=5, cv_max_rows=8))


def test_too_few_photos_of_a_class_for_the_folds_is_one_clear_error(rated):
    few = pd.concat([rated[rated["label"] == 1], rated[rated["label"] == 0].head(3)])
    with pytest.raises(KeeptrashError, match="train.cv_folds 5 needs at least 5 keep and 5 trash"):
        cross_validate(few, dataclasses.replace(PARAMS, cv_folds=5))


def test_monotone_faults_never_let_more_noise_raise_the_keep_probability(rated):
    """In this data more noise goes with keep; held monotone, the model may not follow it."""
    noisy = rated.assign(noise=rated["label"] + np.random.default_rng(6).normal(scale=0.3, size=len(rated)))
    params = dataclasses.replace(PARAMS, feature_set="stats", iterations=60)
    probe = noisy.iloc[:20].copy()
    for monotone, rises in ((False, True), (True, False)):
        spec, inputs, columns = training_inputs(noisy, dataclasses.replace(params, monotone_faults=monotone))
        model = fit_classifier(inputs, inputs.iloc[0:0], columns, dataclasses.replace(params, monotone_faults=monotone))
        low, high = (model.predict_proba(spec.frame(probe.assign(noise=value))[columns])[:, 1] for value in (-1.0, 2.0))
        assert bool((high > low + 0.05).any()) == rises
        if monotone:
            assert (high <= low + 1e-9).all()


# --- the regress objective: CatBoost on the score target, calibrated out-of-fold -----------------------


def scored_photos(n: int, signal: float, seed: int) -> pd.DataFrame:
    """Photos whose score column `a` predicts with the given strength; keep = the top 60% by score."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    score = signal * frame["a"] + rng.normal(size=n)
    return frame.assign(label=(score >= np.quantile(score, 0.4)).astype(int), **{REGRESSION_TARGET: score.rank(pct=True)})


REGRESS = dataclasses.replace(PARAMS, objective="regress", iterations=100)


def test_regress_keeps_the_order_within_a_class_that_labels_throw_away():
    photos = scored_photos(600, signal=5.0, seed=7)
    train, test = photos.iloc[:400], photos.iloc[400:]
    keeps = test[test["label"] == 1]

    def order_among_keeps(params: TrainParams) -> float:
        model = fit_classifier(train, train.iloc[0:0], ["a", "b", "c"], params)
        return spearmanr(model.predict_proba(keeps[["a", "b", "c"]])[:, 1], keeps[REGRESSION_TARGET]).statistic

    regressed, classified = order_among_keeps(REGRESS), order_among_keeps(dataclasses.replace(REGRESS, objective="classify"))
    assert regressed > 0.75 and regressed > classified + 0.1, (regressed, classified)


def test_score_targets_are_taken_within_each_source_and_keep_how_far_apart_ratings_are():
    rows = pd.DataFrame(
        {
            "source": ["ava", "ava", "ava", "own", "own", "own", "own", "own"],
            "score": [4.0, 5.0, 9.0, 10.0, 20.0, 90.0, np.nan, np.nan],
            "label": [0, 0, 1, 0, 0, 1, 1, 0],
        }
    )
    np.testing.assert_allclose(score_target(rows, "rank"), [1 / 3, 2 / 3, 1, 1 / 3, 2 / 3, 1, 1, 0])
    zscore = score_target(rows, "zscore")
    for source, scores in (("ava", [4.0, 5.0, 9.0]), ("own", [10.0, 20.0, 90.0])):
        rated = (rows["source"] == source) & rows["score"].notna()
        np.testing.assert_allclose(zscore[rated.to_numpy()], (np.array(scores) - np.mean(scores)) / np.std(scores, ddof=1))
    # 9 stands far above 4 and 5, which the rank cannot tell from evenly spaced scores.
    assert zscore[2] - zscore[1] > 3 * (zscore[1] - zscore[0])
    # An unrated photo takes its source's rated photos of its label: the keep stays above every rated trash.
    np.testing.assert_allclose(zscore[6:], [zscore[5], (zscore[3] + zscore[4]) / 2])
    unrated_only = pd.DataFrame({"source": "own", "score": [np.nan, np.nan], "label": [1, 0]})
    np.testing.assert_array_equal(score_target(unrated_only, "zscore"), [1.0, -1.0])
    # Ratings that do not vary (0.1 three times has a float rounding spread of 1e-17) carry no scale: the label decides.
    constant = pd.DataFrame({"source": "own", "score": [0.1, 0.1, 0.1], "label": [1, 0, 0]})
    np.testing.assert_array_equal(score_target(constant, "zscore"), [1.0, -1.0, -1.0])


def test_the_fitted_targets_never_depend_on_the_validation_or_test_scores(rated):
    """Each split's targets come from its own rows: rescoring the test photos leaves train's targets as they were."""
    params = dataclasses.replace(PARAMS, objective="regress", target_scale="zscore")
    _, before, _ = training_inputs(rated, params)
    rescored = rated.assign(score=np.where(rated["split"] == "test", rated["score"] ** 3, rated["score"]))
    _, after, _ = training_inputs(rescored, params)
    train = (before["split"] == "train").to_numpy()
    np.testing.assert_array_equal(after.loc[train, REGRESSION_TARGET], before.loc[train, REGRESSION_TARGET])
    assert not np.allclose(after.loc[~train, REGRESSION_TARGET], before.loc[~train, REGRESSION_TARGET])


def test_regress_calibration_is_fitted_out_of_fold_so_new_photos_get_honest_probabilities():
    """A deep, barely regularised regressor fits its own noisy rows almost exactly; calibrated on those rows it would
    call new photos near-certain and lose more than a constant guess. Out-of-fold, it stays near the base rate."""
    photos = scored_photos(700, signal=0.3, seed=8)
    train, new = photos.iloc[:300], photos.iloc[300:]
    overfitting = dataclasses.replace(REGRESS, depth=6, iterations=300, learning_rate=0.3, l2_leaf_reg=0.1)
    model = fit_classifier(train, train.iloc[0:0], ["a", "b", "c"], overfitting)
    probabilities = model.predict_proba(new[["a", "b", "c"]])[:, 1]
    constant = log_loss(new["label"], np.full(len(new), train["label"].mean()))
    assert log_loss(new["label"], probabilities) < constant + 0.02
    assert abs(probabilities.mean() - new["label"].mean()) < 0.05


def test_a_regress_model_file_gives_the_calibrated_probability_wherever_it_is_loaded(rated, tmp_path):
    params = dataclasses.replace(REGRESS, ridge_score=True, pca_components=4)
    spec, inputs, columns = training_inputs(rated, params)
    model = fit_classifier(inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"], columns, params)
    stamp_model(model, STAMPED_FEATURES, 0.5)
    stamp_inputs(model, spec)
    model.save_model(str(tmp_path / "model.cbm"))
    loaded, metadata = load_model(tmp_path / "model.cbm")
    assert metadata["objective"] == "regress" and loaded.get_all_params()["loss_function"] == "RMSE"
    held_out = rated[rated["split"] != "train"]
    probabilities = keep_probability(loaded, held_out)
    np.testing.assert_allclose(probabilities, model.predict_proba(spec.frame(held_out)[columns])[:, 1], atol=1e-6)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert roc_auc_score(held_out["label"], probabilities) > 0.9


def test_regress_needs_two_photos_of_each_class_to_calibrate():
    photos = scored_photos(50, signal=5.0, seed=9)
    one_trash = pd.concat([photos[photos["label"] == 1], photos[photos["label"] == 0].head(1)])
    with pytest.raises(KeeptrashError, match="train.objective regress .* needs at least 2 keep and 2 trash"):
        fit_classifier(one_trash, one_trash.iloc[0:0], ["a", "b", "c"], REGRESS)


@pytest.mark.parametrize("objective", ["classify", "regress"])
def test_learning_curves_follow_the_keep_probability_tree_by_tree(data, objective):
    train, val, columns = data
    train, val = (rows.assign(**{REGRESSION_TARGET: rows["a"].rank(pct=True)}) for rows in (train, val))
    model = fit_classifier(train, val, columns, dataclasses.replace(PARAMS, objective=objective))
    curves = learning_curves(model, train, val, columns)
    assert set(curves) == {"train", "val"} and all(len(values) == model.tree_count_ for curve in curves.values() for values in curve.values())
    final = model.predict_proba(val[columns])[:, 1]
    assert curves["val"]["logloss"][-1] == pytest.approx(log_loss(val["label"], final))
    assert curves["val"]["accuracy"][-1] == pytest.approx(np.mean((final >= 0.5) == val["label"]))
    assert curves["train"]["logloss"][-1] < curves["train"]["logloss"][0]
    if objective == "classify":  # the same accuracy CatBoost reports for its own Logloss model
        assert curves["val"]["accuracy"] == pytest.approx(model.get_evals_result()["validation"]["Accuracy"])
