"""Ridge regression with an unpenalised intercept on standardised inputs, fitted in memory that does not grow with rows.

The inputs (the float16 embedding, n x p with p = 6,176 for the default features) are read in row chunks, each turned into float64 only
while it is used: the fit keeps the column moments, the p x p Gram matrix and one eigendecomposition of it, shared
by every ridge strength (with fewer rows than columns, of the smaller n x n Gram matrix instead). Each row's exact leave-one-out prediction comes from the hat matrix's diagonal,
h_ii = 1/n + sum_j t_ij^2 / (s_j + alpha), where t_i are the centred row's coordinates in the Gram matrix's
eigenbasis and s_j its eigenvalues (the 1/n term is the intercept's, fitted on the other n - 1 rows too):
leave-one-out residual = residual / (1 - h_ii). Several weightings of the columns (fit_ridges' column_weights: the
final feature map's weight against the blocks') share the column sums, the cross products and the Gram matrix, each
scaled to its weighting, and are decomposed one at a time. Time, in multiply-adds, is n p^2 / 2 (the symmetric Gram
matrix) plus, per weighting, one p^3 decomposition and an n p^2 pass (the rows' coordinates in its own eigenbasis: not
shared, as sharing that pass would hold every weighting's p x p basis at once to save only the O(n p) reading of the
rows); scikit-learn's RidgeCV gives the same numbers but holds several float64 copies of the whole input.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

# Rows turned into float64 at a time: 4,096 x 6,176 values are 200 MB, large enough for BLAS to run at full speed.
CHUNK_ROWS = 4096

Inputs = np.ndarray | pd.DataFrame


def row_chunks(inputs: Inputs, chunk_rows: int, dtype: type = np.float64) -> Iterator[tuple[slice, np.ndarray]]:
    """Consecutive row chunks of `inputs` (an array, or a frame of numeric columns) as arrays of `dtype`, with their rows."""
    for start in range(0, len(inputs), chunk_rows):
        rows = slice(start, min(start + chunk_rows, len(inputs)))
        chunk = inputs[rows] if isinstance(inputs, np.ndarray) else inputs.iloc[rows]
        yield rows, np.asarray(chunk, dtype=dtype)


def standardised(chunk: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inputs on the ridge's scale; a missing value becomes 0, its column's mean."""
    return np.nan_to_num((chunk - mean) / scale)


def column_moments(inputs: Inputs, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation over its present values (numpy's nanmean and nanstd), in float64.
    A column without spread gets scale 1, so standardising leaves it at 0."""
    present, total = 0, 0.0
    for _, chunk in row_chunks(inputs, chunk_rows):
        present = present + np.sum(~np.isnan(chunk), axis=0)
        total = total + np.nansum(chunk, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / present
    squares = 0.0
    for _, chunk in row_chunks(inputs, chunk_rows):
        squares = squares + np.nansum((chunk - mean) ** 2, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.sqrt(squares / present)
    scale[~(scale > 0)] = 1.0
    return mean, scale


@dataclass(frozen=True)
class RidgeFit:
    """Every ridge strength's fit on the standardised inputs: coefficients, intercepts and leave-one-out predictions."""

    alphas: tuple[float, ...]
    coefficients: np.ndarray  # (len(alphas), p)
    intercepts: np.ndarray  # (len(alphas),)
    left_out: np.ndarray  # (n, len(alphas)): each row's prediction by the ridge fitted without it
    # (companions, len(alphas)): each companion's prediction by the ridge fitted without the row it belongs to
    companions_left_out: np.ndarray | None = None

    def best(self, target: np.ndarray) -> int:
        """The strength with the least leave-one-out squared error (the first of equals, as RidgeCV)."""
        return int(np.argmin(np.mean((target[:, None] - self.left_out) ** 2, axis=0)))


def fit_ridges(
    inputs: Inputs, target: np.ndarray, mean: np.ndarray, scale: np.ndarray, alphas: tuple[float, ...], chunk_rows: int = CHUNK_ROWS,
    companions: Inputs | None = None, companion_of: np.ndarray | None = None, column_weights: tuple[np.ndarray, ...] | None = None,
) -> tuple[RidgeFit, ...]:
    """Ridge regressions of `target` on standardised(inputs) * w, one per alpha, with their exact leave-one-out
    predictions: one RidgeFit for each w of column_weights (each a weight per column; default one, all 1).

    The weightings share the pass for the column sums and cross products and the Gram matrix: weighing the columns by
    w multiplies their means and cross products by w and the centred Gram matrix by w w^T, so each weighting costs
    only its own eigendecomposition and leave-one-out pass. A weight that is a power of two scales exactly, so its
    fit is bit for bit that of the inputs standardised with scale / w.

    companions: rows that are not fitted but belong to a fitted row (companion_of: its position), such as a photo's
    noisy copy; each is predicted by the ridge fitted without the row it belongs to. Removing row i moves the
    prediction at any point c by h_ci r_i / (1 - h_ii), where h_ci = 1/n + sum_j t_cj t_ij / (s_j + alpha) is the hat
    matrix's entry between them and r_i the row's residual, so this costs one more pass over the companions.
    """
    rows, columns = len(inputs), len(mean)
    column_weights = (np.ones(columns),) if column_weights is None else column_weights
    target = np.asarray(target, dtype=np.float64)
    target_mean = target.mean()
    column_sum, cross = np.zeros(columns), np.zeros(columns)
    for part, chunk in row_chunks(inputs, chunk_rows):
        values = standardised(chunk, mean, scale)
        column_sum += values.sum(axis=0)
        cross += values.T @ (target[part] - target_mean)  # the centred cross products: the targets' deviations sum to 0
    column_mean = column_sum / rows
    centring = partial(_centred, mean=mean, scale=scale, column_mean=column_mean)
    fits = []
    for weights, (eigenvalues, basis) in zip(column_weights, _centred_eigenbases(inputs, centring, column_weights, chunk_rows)):
        fits.append(_left_out_fit(
            inputs, target, centring, weights, column_mean * weights, cross * weights, eigenvalues, basis, alphas, chunk_rows, companions, companion_of
        ))
        del eigenvalues, basis  # the next weighting's eigendecomposition needs the room (p x p each)
    return tuple(fits)


def _centred(chunk: np.ndarray, mean: np.ndarray, scale: np.ndarray, column_mean: np.ndarray) -> np.ndarray:
    return standardised(chunk, mean, scale) - column_mean


def _left_out_fit(
    inputs: Inputs, target: np.ndarray, centring: Callable[[np.ndarray], np.ndarray], weights: np.ndarray, column_mean: np.ndarray, cross: np.ndarray,
    eigenvalues: np.ndarray, basis: np.ndarray, alphas: tuple[float, ...], chunk_rows: int, companions: Inputs | None, companion_of: np.ndarray | None,
) -> RidgeFit:
    """Every alpha's ridge on the inputs weighted by `weights`, from their eigendecomposition, and its leave-one-out
    predictions from a pass over the inputs and the companions (`centring`: a chunk of them standardised and centred)."""
    rows = len(inputs)
    target_mean = target.mean()
    shrink = 1.0 / (eigenvalues[None, :] + np.asarray(alphas)[:, None])  # (alphas, eigenvectors)
    shrunk = shrink * (basis.T @ cross)  # each alpha's coefficients in the eigenbasis
    coefficients = shrunk @ basis.T
    intercepts = target_mean - coefficients @ column_mean
    left_out = np.empty((rows, len(alphas)))
    if companions is not None:
        companion_of = np.asarray(companion_of)
        companion_coordinates = np.vstack(
            [np.empty((0, basis.shape[1]))] + [(centring(chunk) * weights) @ basis for _, chunk in row_chunks(companions, chunk_rows)]
        )
        companions_left_out = companion_coordinates @ shrunk.T + target_mean  # the full ridges' predictions, corrected below
    for part, chunk in row_chunks(inputs, chunk_rows):
        coordinates = (centring(chunk) * weights) @ basis
        residual = (target[part] - target_mean)[:, None] - coordinates @ shrunk.T
        leverage = 1.0 / rows + (coordinates**2) @ shrink.T
        left_out[part] = target[part][:, None] - residual / (1.0 - leverage)
        if companions is not None:
            belong = np.flatnonzero((companion_of >= part.start) & (companion_of < part.stop))
            own = companion_of[belong] - part.start
            between = 1.0 / rows + (companion_coordinates[belong] * coordinates[own]) @ shrink.T
            companions_left_out[belong] -= between * residual[own] / (1.0 - leverage[own])
    return RidgeFit(tuple(alphas), coefficients, intercepts, left_out, companions_left_out if companions is not None else None)


def _centred_eigenbases(
    inputs: Inputs, centring: Callable[[np.ndarray], np.ndarray], column_weights: tuple[np.ndarray, ...], chunk_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each weighting w, the eigenvalues and eigenvectors (columns) of the Gram matrix X^T X of the inputs
    (`centring`: standardised and centred) weighted by w, but for eigenvalue 0, whose directions no row has: they
    change neither a prediction nor a leverage. One weighting at a time, as they are used."""
    rows, columns = inputs.shape
    if rows < columns:
        # Fewer rows than columns: X X^T (n x n) has the same non-zero eigenvalues and is cheaper to decompose, and all
        # the rows in float64 take less memory than X^T X would.
        centred = centring(np.asarray(inputs, dtype=np.float64))
        for weights in column_weights:
            weighted = centred * weights
            row_eigenvalues, row_basis = np.linalg.eigh(weighted @ weighted.T)
            kept = row_eigenvalues > row_eigenvalues.max() * rows * np.finfo(np.float64).eps
            yield row_eigenvalues[kept], weighted.T @ (row_basis[:, kept] / np.sqrt(row_eigenvalues[kept]))
        return
    gram = np.zeros((columns, columns))
    for _, chunk in row_chunks(inputs, chunk_rows):
        centred = centring(chunk)
        gram += centred.T @ centred
    for weights in column_weights:
        eigenvalues, basis = np.linalg.eigh(gram * np.outer(weights, weights))
        yield np.clip(eigenvalues, 0.0, None), basis  # rounding can leave the null space's eigenvalues slightly negative
        del basis  # before the next decomposition, as the caller's copy


def ridge_predictions(
    inputs: Inputs, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, intercept: float, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """The ridge's prediction for every row, a chunk of rows at a time."""
    predictions = np.empty(len(inputs))
    for part, chunk in row_chunks(inputs, chunk_rows):
        predictions[part] = standardised(chunk, mean, scale) @ weights + intercept
    return predictions
