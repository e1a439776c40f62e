"""The ridge-score head's linear algebra (keeptrash.model.ridge): the same ridges and leave-one-out predictions as
scikit-learn's RidgeCV, from chunked sufficient statistics whose chunk size changes nothing."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV

from keeptrash.model.model_inputs import RIDGE_ALPHAS, RidgeScore
from keeptrash.model.ridge import column_moments, fit_ridges, standardised


def embedding_like(rows: int, columns: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A float32 embedding with correlated columns, a constant column and a few missing values, and a score rank it predicts."""
    rng = np.random.default_rng(seed)
    inputs = (rng.normal(size=(rows, 8)) @ rng.normal(size=(8, columns)) + rng.normal(scale=0.5, size=(rows, columns))).astype(np.float32)
    inputs[:, 3] = 2.5
    inputs[rng.integers(0, rows, 5), rng.integers(0, columns, 5)] = np.nan
    score = np.nan_to_num(inputs[:, :4]) @ np.array([1.0, -0.5, 0.0, 0.2]) + rng.normal(size=rows)
    return inputs, pd.Series(score).rank(pct=True).to_numpy()


def sklearn_reference(inputs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, RidgeCV]:
    """What the head used to compute: nanmean/nanstd in float64, then RidgeCV's efficient leave-one-out."""
    values = inputs.astype(np.float64)
    mean, scale = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    scale[~(scale > 0)] = 1.0
    ridge = RidgeCV(alphas=RIDGE_ALPHAS, scoring="neg_mean_squared_error", store_cv_results=True)
    return mean, scale, ridge.fit(standardised(values, mean, scale), target)


# Fewer rows than columns (the demo's shape, the rows' Gram matrix) and more (AVA's, the columns' Gram matrix).
@pytest.mark.parametrize(("rows", "columns"), [(90, 300), (400, 60)])
def test_ridges_and_leave_one_out_predictions_agree_with_sklearn(rows, columns):
    inputs, target = embedding_like(rows, columns, seed=1)
    mean, scale, reference = sklearn_reference(inputs, target)
    np.testing.assert_allclose(column_moments(inputs), (mean, scale), rtol=1e-12)
    (fit,) = fit_ridges(inputs, target, mean, scale, RIDGE_ALPHAS)
    np.testing.assert_allclose(fit.left_out, reference.cv_results_, rtol=1e-6, atol=1e-9)
    best = fit.best(target)
    assert RIDGE_ALPHAS[best] == reference.alpha_
    np.testing.assert_allclose(fit.coefficients[best], reference.coef_, rtol=1e-6, atol=1e-9)
    assert fit.intercepts[best] == pytest.approx(reference.intercept_, rel=1e-9)


def test_the_head_keeps_sklearns_ridge_and_its_left_out_predictions():
    inputs, target = embedding_like(120, 80, seed=2)
    _, _, reference = sklearn_reference(inputs, target)
    ridge, left_out = RidgeScore.fit(pd.DataFrame(inputs), target)
    np.testing.assert_allclose(left_out, reference.cv_results_[:, RIDGE_ALPHAS.index(reference.alpha_)], rtol=1e-6)
    np.testing.assert_allclose(ridge.apply(inputs), reference.predict(standardised(inputs.astype(np.float64), ridge.mean, ridge.scale)), rtol=1e-9)
    decoded = RidgeScore.decode(ridge.encode())  # the model file's form: float32 fields, unchanged names
    np.testing.assert_allclose(decoded.apply(inputs), ridge.apply(inputs), atol=1e-4)


@pytest.mark.parametrize(("rows", "columns"), [(60, 150), (300, 40)])
def test_chunk_size_changes_nothing(rows, columns):
    inputs, target = embedding_like(rows, columns, seed=3)
    moments = [column_moments(inputs, chunk_rows) for chunk_rows in (7, 10_000)]
    np.testing.assert_allclose(moments[0], moments[1], rtol=1e-12)
    fits = [fit_ridges(inputs, target, *moments[0], RIDGE_ALPHAS, chunk_rows)[0] for chunk_rows in (7, 10_000)]
    np.testing.assert_allclose(fits[0].left_out, fits[1].left_out, rtol=1e-9)
    np.testing.assert_allclose(fits[0].coefficients, fits[1].coefficients, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fits[0].intercepts, fits[1].intercepts, rtol=1e-12)


@pytest.mark.parametrize(("rows", "columns"), [(50, 120), (200, 30)])
def test_a_companion_is_predicted_by_the_ridge_fitted_without_its_row(rows, columns):
    inputs, target = embedding_like(rows, columns, seed=4)
    rng = np.random.default_rng(5)
    companion_of = rng.integers(0, rows, 12)
    companions = np.nan_to_num(inputs[companion_of]) + rng.normal(scale=0.3, size=(12, columns)).astype(np.float32)
    mean, scale = column_moments(inputs)
    (fit,) = fit_ridges(inputs, target, mean, scale, RIDGE_ALPHAS, 17, companions=companions, companion_of=companion_of)
    for companion, row in enumerate(companion_of):
        others = np.arange(rows) != row
        (without,) = fit_ridges(inputs[others], target[others], mean, scale, RIDGE_ALPHAS)
        refitted = standardised(companions[companion : companion + 1].astype(np.float64), mean, scale) @ without.coefficients.T + without.intercepts
        np.testing.assert_allclose(fit.companions_left_out[companion], refitted[0], rtol=1e-6, atol=1e-9)
    # The companions change nothing the rows get.
    np.testing.assert_array_equal(fit.left_out, fit_ridges(inputs, target, mean, scale, RIDGE_ALPHAS, 17)[0].left_out)


def test_the_final_maps_weight_against_the_blocks_is_chosen_by_leave_one_out():
    """Blocks' columns carry the score, the many final-map columns mostly noise: the ridge weighs the final map down,
    and the weight lives in its scale, so it applies to the embedding as it is."""
    rng = np.random.default_rng(6)
    rows, blocks, final = 150, 20, 200
    embedding = rng.normal(size=(rows, blocks + final)).astype(np.float32)
    target = embedding[:, :blocks] @ rng.normal(size=blocks) + 0.3 * embedding[:, blocks] + rng.normal(size=rows)
    named = pd.DataFrame(embedding, columns=[f"cnn_{index:04d}" for index in range(blocks)] + [f"cnn_{index:04d}_final" for index in range(blocks, blocks + final)])
    weighed, left_out = RidgeScore.fit(named, target)
    unweighed, unweighed_left_out = RidgeScore.fit(embedding, target)  # unnamed columns: one weight for all
    _, standard_scale = column_moments(embedding)
    final_map_weight = standard_scale[blocks:] / weighed.scale[blocks:]
    assert np.allclose(final_map_weight, final_map_weight[0]) and final_map_weight[0] < 1.0
    np.testing.assert_allclose(weighed.scale[:blocks], standard_scale[:blocks])
    np.testing.assert_allclose(unweighed.scale, standard_scale)
    assert np.mean((target - left_out) ** 2) < np.mean((target - unweighed_left_out) ** 2)
    np.testing.assert_allclose(weighed.apply(named), standardised(embedding.astype(np.float64), weighed.mean, weighed.scale) @ weighed.weights + weighed.intercept[0])
    fixed, _ = RidgeScore.fit(named, target, final_map_weights=(0.5,))  # train.final_map_weight 0.5
    np.testing.assert_allclose(standard_scale / fixed.scale, [1.0] * blocks + [0.5] * final, rtol=1e-12)


# Both Gram matrices (the rows' and the columns'), with a noisy copy of some rows as companions.
@pytest.mark.parametrize(("rows", "columns"), [(70, 160), (260, 50)])
def test_weightings_sharing_one_gram_matrix_fit_what_each_fits_alone(rows, columns):
    """Weighing columns by w is standardising them with scale / w: each weighting of one shared fit is the fit of
    the inputs so standardised. A power of two scales every float exactly, so those fits are the same to the bit;
    others, such as 0.7, to rounding."""
    inputs, target = embedding_like(rows, columns, seed=7)
    rng = np.random.default_rng(8)
    companion_of = rng.integers(0, rows, 9)
    companions = np.nan_to_num(inputs[companion_of]) + rng.normal(scale=0.3, size=(9, columns)).astype(np.float32)
    mean, scale = column_moments(inputs)
    final_map = np.arange(columns) >= columns // 3
    weights = (1.0, 0.7, 0.5, 0.35, 0.25)
    column_weights = tuple(np.where(final_map, weight, 1.0) for weight in weights)
    shared = fit_ridges(inputs, target, mean, scale, RIDGE_ALPHAS, 23, companions, companion_of, column_weights)
    for weight, fit, weighting in zip(weights, shared, column_weights):
        (alone,) = fit_ridges(inputs, target, mean, scale / weighting, RIDGE_ALPHAS, 23, companions, companion_of)
        for field in ("coefficients", "intercepts", "left_out", "companions_left_out"):
            if weight in (1.0, 0.5, 0.25):
                np.testing.assert_array_equal(getattr(fit, field), getattr(alone, field), err_msg=f"{field}, weight {weight}")
            else:
                np.testing.assert_allclose(getattr(fit, field), getattr(alone, field), rtol=1e-10, atol=1e-13, err_msg=f"{field}, weight {weight}")
