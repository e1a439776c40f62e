"""train.noise_penalty: the training photos' noisy copies teach CatBoost that a noisy take is worse than its photo,
without any held-out photo's copy reaching the model that scores it."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.features.noise_copies import NOISE_LEVELS
from keeptrash.model.cross_validation import cv_folds, fold_metrics
from keeptrash.model.model_inputs import fit_inputs, keep_probability, score_target, stamp_inputs
from keeptrash.model.training import NOISE_COPY, REGRESSION_TARGET, copy_targets, fit_classifier, training_inputs
from keeptrash.params import TrainParams

PARAMS = TrainParams(
    iterations=150, depth=2, learning_rate=0.1, l2_leaf_reg=3.0, rsm=1.0, bootstrap_type="MVS", subsample=0.8,
    feature_set="stats", pca_components=0, ridge_score=True, monotone_faults=True, early_stopping_rounds=0,
    class_weights="none", decision_threshold=None, seed=0, objective="regress", target_scale="zscore",
)
TEXTURE = "cnn_0001"  # what people like in a photo, and what noise adds more of


@pytest.fixture(scope="module")
def photos() -> pd.DataFrame:
    """Rated photos whose score follows their content (cnn_0000) and their fine texture (cnn_0001), with the
    statistics, of which `noise` is low: people rated clean photos, and liked texture."""
    rng = np.random.default_rng(7)
    n = 300
    table = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"cnn_{i:04d}" for i in range(12)])
    for name in STAT_NAMES:
        table[name] = rng.normal(size=n)
    table["noise"] = rng.uniform(0.0, 0.01, size=n)
    score = 50 + 10 * table["cnn_0000"] + 6 * table[TEXTURE] + rng.normal(scale=3, size=n)
    split = np.where(np.arange(n) < 200, "train", np.where(np.arange(n) < 250, "val", "test"))
    return table.assign(key=[f"own:{i}.jpg" for i in range(n)], source="own", score=score, label=(score >= 50).astype(int), split=split)


def noisy_copies(photos: pd.DataFrame) -> pd.DataFrame:
    """Every photo's copies as the features stage writes them: noise shows as more texture and in the noise statistic."""
    copies = []
    for level, noise in enumerate(NOISE_LEVELS):
        copy = photos.drop(columns=["source", "score", "label", "split"]).copy()
        copy[TEXTURE] += noise.luminance / 10
        copy["noise"] += noise.luminance / 200
        copies.append(copy.assign(level=level, penalty_share=noise.penalty_share))
    return pd.concat(copies, ignore_index=True)


def copy_below_photo_share(photos: pd.DataFrame, penalty: float) -> float:
    """Fitted on the train split (and its copies): the share of test photos whose strongest copy scores below them."""
    params = dataclasses.replace(PARAMS, noise_penalty=penalty)
    spec, inputs, columns = training_inputs(photos, params, noisy_copies(photos))
    model = fit_classifier(inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"], columns, params, inputs[inputs["split"] == NOISE_COPY])
    stamp_inputs(model, spec)
    test = photos[photos["split"] == "test"]
    strongest = noisy_copies(test).query(f"level == {len(NOISE_LEVELS) - 1}")
    return float(np.mean(keep_probability(model, strongest) < keep_probability(model, test)))


def test_without_a_penalty_the_model_prefers_the_noisy_copy_and_with_one_the_photo(photos):
    assert copy_below_photo_share(photos, 0.0) < 0.2
    assert copy_below_photo_share(photos, 1.0) > 0.9


def test_a_copys_target_is_its_photos_lowered_by_the_penalty_share(photos):
    train = photos[photos["split"] == "train"]
    params = dataclasses.replace(PARAMS, noise_penalty=0.8)
    _, _, copy_inputs = fit_inputs(train, params, noisy_copies(photos))
    assert len(copy_inputs) == len(NOISE_LEVELS) * len(train)  # the train photos' copies, none of the others'
    targets = copy_targets(copy_inputs, train, params)
    photo_target = pd.Series(score_target(train, "zscore"), index=train["key"].to_numpy()).loc[targets["key"]].to_numpy()
    np.testing.assert_allclose(targets[REGRESSION_TARGET], photo_target - 0.8 * targets["penalty_share"])
    assert (targets["label"].to_numpy() == train.set_index("key").loc[targets["key"], "label"].to_numpy()).all()


def test_a_copys_ridge_score_comes_from_the_ridge_fitted_without_its_photo(photos):
    """A copy identical to its photo must get exactly the photo's own leave-one-out score, not the fitted ridge's."""
    train = photos[photos["split"] == "train"].head(40)  # few photos: each one moves the ridge visibly
    identical = train.drop(columns=["source", "score", "label", "split"]).assign(level=0, penalty_share=1.0).iloc[::-1]
    spec, train_inputs, copy_inputs = fit_inputs(train, dataclasses.replace(PARAMS, noise_penalty=1.0), identical)
    left_out = pd.Series(train_inputs["ridge_score"].to_numpy(), index=train["key"].to_numpy())
    np.testing.assert_allclose(copy_inputs["ridge_score"], left_out.loc[copy_inputs["key"]], rtol=1e-5)
    fitted = spec.frame(identical)["ridge_score"].to_numpy()
    assert np.abs(fitted - copy_inputs["ridge_score"].to_numpy()).mean() > 0.05


def test_held_out_photos_copies_never_reach_a_fold(photos):
    pool = photos[photos["split"].isin(("train", "val"))].reset_index(drop=True)
    fitted, held_out = cv_folds(pool["label"], 4, 1, 0)[0]
    params = dataclasses.replace(PARAMS, noise_penalty=1.0)
    held_out_copies = noisy_copies(pool.iloc[held_out])
    with_held_out_copies = fold_metrics(pool.iloc[fitted], pool.iloc[held_out], params, held_out_copies)
    without_copies = fold_metrics(pool.iloc[fitted], pool.iloc[held_out], dataclasses.replace(params, noise_penalty=0.0), held_out_copies)
    assert with_held_out_copies == without_copies
    # ...while the fold's own photos' copies do change it.
    assert fold_metrics(pool.iloc[fitted], pool.iloc[held_out], params, noisy_copies(pool)) != without_copies
