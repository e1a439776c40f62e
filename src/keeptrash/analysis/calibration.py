"""How trustworthy the keep probabilities are: their distribution per class, calibration, confident mistakes."""

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from keeptrash.labels import KEEP, TRASH

CONFIDENT_MISTAKES_LISTED = 5


def probability_histogram(labels: pd.Series, probabilities: np.ndarray, bins: int) -> pd.DataFrame:
    """Counts of keep probabilities in equal-width bins, separately for truly kept and truly trashed photos."""
    edges = np.linspace(0, 1, bins + 1)
    is_keep = (labels == KEEP).to_numpy()
    return pd.DataFrame(
        {
            "keep_probability": ((edges[:-1] + edges[1:]) / 2).round(4),
            "true_keep": np.histogram(probabilities[is_keep], edges)[0],
            "true_trash": np.histogram(probabilities[~is_keep], edges)[0],
        }
    )


def calibration(labels: pd.Series, probabilities: np.ndarray, bins: int) -> tuple[pd.DataFrame, dict]:
    """Reliability curve (quantile bins), Brier score, log loss and expected calibration error."""
    both_classes = labels.nunique() == 2
    fraction_keep, mean_predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="quantile")
    # Expected calibration error over the same quantile bins as sklearn's curve (tied scores share a bin):
    # mean |observed - predicted| weighted by bin size.
    edges = np.percentile(probabilities, np.linspace(0, 100, bins + 1))
    bin_of = np.searchsorted(edges[1:-1], probabilities)
    observed = labels.to_numpy(dtype=float)
    ece = sum(
        abs(observed[bin_of == b].mean() - probabilities[bin_of == b].mean()) * (bin_of == b).mean()
        for b in np.unique(bin_of)
    )
    curve = pd.DataFrame({"mean_predicted": mean_predicted.round(4), "fraction_keep": fraction_keep.round(4)})
    metrics = {
        "brier_score": round(float(brier_score_loss(labels, probabilities)), 4),
        "log_loss": round(float(log_loss(labels, probabilities, labels=[TRASH, KEEP])), 4) if both_classes else np.nan,
        "expected_calibration_error": round(float(ece), 4),
        "mean_keep_probability": round(float(probabilities.mean()), 4),
        "keep_fraction": round(float(observed.mean()), 4),
    }
    return curve, metrics


PERFECT_CALIBRATION = pd.DataFrame({"mean_predicted": [0.0, 1.0], "fraction_keep": [0.0, 1.0]})


def confident_mistakes(test: pd.DataFrame, probabilities: np.ndarray, listed: int = CONFIDENT_MISTAKES_LISTED) -> pd.DataFrame:
    """The trash photos given the highest keep probability (over-confident) and the keep photos given the lowest (under-confident)."""
    scored = test[["key", "source", "score", "label"]].assign(keep_probability=probabilities.round(4))
    over = scored[scored["label"] == TRASH].nlargest(listed, "keep_probability").assign(kind="over_confident_keep")
    under = scored[scored["label"] == KEEP].nsmallest(listed, "keep_probability").assign(kind="under_confident_keep")
    return pd.concat([over, under], ignore_index=True)[["kind", "key", "source", "score", "label", "keep_probability"]]
