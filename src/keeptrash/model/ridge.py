"""Ridge regression with an unpenalised intercept on standardised inputs, fitted in memory that does not grow with rows.

The inputs (the float16 embedding, n x p with p = 6,176 for the default features) are read in row chunks, each turned into float64 only
while it is used: the fit keeps the column moments, the p x p Gram matrix and one eigendecomposition of it, shared
by every ridge strength (with fewer rows than columns, of the smaller n x n Gram matrix instead). Each row's exact leave-one-out prediction comes from the hat matrix's diagonal,
h_ii = 1/n + sum_j t_ij^2 / (s_j + alpha), where t_i are the centred row's coordinates in the Gram matrix's
eigenbasis and s_j its eigenvalues (the 1/n term is the intercept's, fitted on the other n - 1 rows too):
leave-one-out residual = residual / (1 - h_ii). Time is two n x p^2 passes plus one p^3 decomposition; scikit-learn's
RidgeCV gives the same numbers but holds several float64 copies of the whole input.
"""

from collections.abc import Iterator
from dataclasses import dataclass

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
    companions: Inputs | None = None, companion_of: np.ndarray | None = None,
) -> RidgeFit:
    """Ridge regressions of `target` on standardised(inputs), one per alpha, with their exact leave-one-out predictions.

    companions: rows that are not fitted but belong to a fitted row (companion_of: its position), such as a photo's
    noisy copy; each is predicted by the ridge fitted without the row it belongs to. Removing row i moves the
    prediction at any point c by h_ci r_i / (1 - h_ii), where h_ci = 1/n + sum_j t_cj t_ij / (s_j + alpha) is the hat
    matrix's entry between them and r_i the row's residual, so this costs one more pass over the companions.
    """
    rows, columns = len(inputs), len(mean)
    target = np.asarray(target, dtype=np.float64)
    target_mean = target.mean()
    column_sum, cross = np.zeros(columns), np.zeros(columns)
    for part, chunk in row_chunks(inputs, chunk_rows):
        values = standardised(chunk, mean, scale)
        column_sum += values.sum(axis=0)
        cross += values.T @ (target[part] - target_mean)  # the centred cross products: the targets' deviations sum to 0
    column_mean = column_sum / rows
    eigenvalues, basis = _centred_eigenbasis(inputs, mean, scale, column_mean, chunk_rows)
    shrink = 1.0 / (eigenvalues[None, :] + np.asarray(alphas)[:, None])  # (alphas, eigenvectors)
    shrunk = shrink * (basis.T @ cross)  # each alpha's coefficients in the eigenbasis
    coefficients = shrunk @ basis.T
    intercepts = target_mean - coefficients @ column_mean
    left_out = np.empty((rows, len(alphas)))
    if companions is not None:
        companion_of = np.asarray(companion_of)
        companion_coordinates = np.vstack(
            [np.empty((0, basis.shape[1]))] + [(standardised(chunk, mean, scale) - column_mean) @ basis for _, chunk in row_chunks(companions, chunk_rows)]
        )
        companions_left_out = companion_coordinates @ shrunk.T + target_mean  # the full ridges' predictions, corrected below
    for part, chunk in row_chunks(inputs, chunk_rows):
        coordinates = (standardised(chunk, mean, scale) - column_mean) @ basis
        residual = (target[part] - target_mean)[:, None] - coordinates @ shrunk.T
        leverage = 1.0 / rows + (coordinates**2) @ shrink.T
        left_out[part] = target[part][:, None] - residual / (1.0 - leverage)
        if companions is not None:
            belong = np.flatnonzero((companion_of >= part.start) & (companion_of < part.stop))
            own = companion_of[belong] - part.start
            cross = 1.0 / rows + (companion_coordinates[belong] * coordinates[own]) @ shrink.T
            companions_left_out[belong] -= cross * residual[own] / (1.0 - leverage[own])
    return RidgeFit(tuple(alphas), coefficients, intercepts, left_out, companions_left_out if companions is not None else None)


def _centred_eigenbasis(
    inputs: Inputs, mean: np.ndarray, scale: np.ndarray, column_mean: np.ndarray, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues and eigenvectors (columns) of the centred, standardised inputs' Gram matrix X^T X, but for
    eigenvalue 0, whose directions no row has: they change neither a prediction nor a leverage."""
    rows, columns = len(inputs), len(mean)
    if rows < columns:
        # Fewer rows than columns: X X^T (n x n) has the same non-zero eigenvalues and is cheaper to decompose, and all
        # the rows in float64 take less memory than X^T X would.
        centred = standardised(np.asarray(inputs, dtype=np.float64), mean, scale) - column_mean
        row_eigenvalues, row_basis = np.linalg.eigh(centred @ centred.T)
        kept = row_eigenvalues > row_eigenvalues.max() * rows * np.finfo(np.float64).eps
        return row_eigenvalues[kept], centred.T @ (row_basis[:, kept] / np.sqrt(row_eigenvalues[kept]))
    gram = np.zeros((columns, columns))
    for _, chunk in row_chunks(inputs, chunk_rows):
        centred = standardised(chunk, mean, scale) - column_mean
        gram += centred.T @ centred
    eigenvalues, basis = np.linalg.eigh(gram)
    return np.clip(eigenvalues, 0.0, None), basis  # rounding can leave the null space's eigenvalues slightly negative


def ridge_predictions(
    inputs: Inputs, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, intercept: float, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """The ridge's prediction for every row, a chunk of rows at a time."""
    predictions = np.empty(len(inputs))
    for part, chunk in row_chunks(inputs, chunk_rows):
        predictions[part] = standardised(chunk, mean, scale) @ weights + intercept
    return predictions
