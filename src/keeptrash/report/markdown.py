"""The report's text: the headline table with paired verdicts first, then plots and changed decisions."""

import numpy as np
import pandas as pd

from keeptrash.benchmark.evaluation import BETTER, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, HEADLINE_METRICS, WORSE
from keeptrash.report.comparison import Pairing
from keeptrash.report.revisions import Revision

FIGURE_NAMES = {
    "accuracy": "Test accuracy",
    "balanced_accuracy": "Test balanced accuracy",
    "roc_auc": "Test ROC AUC",
    "spearman": "Test Spearman vs people's ratings",
}
PLOT_TITLES = {
    "learning_curve": "Learning curve: scores against training-set size",
    "learning_curve_logloss": "Learning curve: log loss per iteration",
    "roc": "ROC curve, test split",
    "calibration": "Calibration, test split",
    "degradation": "Keep probability as photos degrade",
}
CHANGED_ROWS_LISTED = 30


def _number(value, digits: int = 3, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _cross_validation(revision: Revision, key: str, digits: int) -> str:
    spread = revision.train.get("cv", {}).get(key)
    return f"{_number(spread['mean'], digits)} ± {_number(spread['sd'], digits)}" if spread else "n/a"


def headline_table(base: Revision, new: Revision, comparison: dict) -> str:
    show_cv = "cv" in base.train or "cv" in new.train
    header = f"| Figure | {base.name} | {new.name} | Change | 95% interval of the change | Verdict |"
    header += f" CV mean ± sd ({base.name} → {new.name}) |" if show_cv else ""
    lines = [header, "|" + "---|" * (7 if show_cv else 6)]
    for name in HEADLINE_METRICS:
        figure = comparison[name]
        low, high = figure["ci95"]
        row = (
            f"| {FIGURE_NAMES[name]} | {_number(figure['base'])} | {_number(figure['new'])} | {_number(figure['change'], signed=True)} "
            f"| {_number(low, signed=True)} to {_number(high, signed=True)} | **{figure['verdict']}** |"
        )
        if show_cv:
            row += f" {_cross_validation(base, name, 3)} → {_cross_validation(new, name, 3)} |"
        lines.append(row)
    base_gap, new_gap = base.train.get("overfitting_gap"), new.train.get("overfitting_gap")
    change = new_gap - base_gap if base_gap is not None and new_gap is not None else None
    intervals = ", ".join(
        f"{revision.name} {revision.summary['overfitting_gap_95ci']}"
        for revision in (base, new)
        if "overfitting_gap_95ci" in revision.summary
    )
    row = (
        f"| Overfitting gap (points, train − validation accuracy) | {_number(base_gap, 1)} | {_number(new_gap, 1)} "
        f"| {_number(change, 1, signed=True)} | {intervals or 'n/a'} (each on its own split, not paired) "
        f"| **{base.train.get('overfitting_verdict', 'n/a')} → {new.train.get('overfitting_verdict', 'n/a')}** |"
    )
    if show_cv:
        row += f" {_cross_validation(base, 'overfitting_gap', 1)} → {_cross_validation(new, 'overfitting_gap', 1)} |"
    lines.append(row)
    return "\n".join(lines)


def conclusion(comparison: dict, base: Revision, new: Revision) -> str:
    """One sentence a reviewer can act on: which revision is better on what, and whether any of it is real."""
    named = {
        verdict: [FIGURE_NAMES[name] for name in HEADLINE_METRICS if comparison[name]["verdict"] == verdict]
        for verdict in (BETTER, WORSE)
    }
    if named[BETTER] and named[WORSE]:
        sentence = f"{new.name} is better than {base.name} on {', '.join(named[BETTER])} and worse on {', '.join(named[WORSE])}."
    elif named[BETTER] or named[WORSE]:
        verdict = BETTER if named[BETTER] else WORSE
        sentence = f"{new.name} is {verdict} than {base.name} on {', '.join(named[verdict])}; the other figures are within noise."
    else:
        sentence = f"No headline figure of {new.name} differs from {base.name} beyond noise."
    before, after = base.train.get("overfitting_verdict"), new.train.get("overfitting_verdict")
    if before != after:
        sentence += f" Its overfitting verdict moves from {before} to {after}."
    return sentence


def verdict_sentence(comparison: dict) -> str:
    parts = [
        f"{FIGURE_NAMES[name]} {comparison[name]['verdict']} ({_number(comparison[name]['change'], signed=True)})"
        for name in HEADLINE_METRICS
    ]
    return "; ".join(parts) + "."


def pairing_note(pairing: Pairing, base: Revision, new: Revision) -> str:
    note = f"Both revisions scored the same {len(pairing.photos)} test photos"
    differences = []
    if pairing.only_base:
        differences.append(f"{pairing.only_base} test photos only {base.name} scored")
    if pairing.only_new:
        differences.append(f"{pairing.only_new} only {new.name} scored")
    if pairing.relabelled:
        differences.append(f"{pairing.relabelled} whose label differs between them")
    if differences:
        note = (
            f"The test sets differ: the comparison pairs the {len(pairing.photos)} test photos both revisions "
            f"scored with the same label, leaving out {', '.join(differences)}"
        )
    return (
        f"{note}. Verdicts come from a paired bootstrap: {BOOTSTRAP_RESAMPLES} resamples of those photos "
        f"(seed {BOOTSTRAP_SEED}), each scored by both models; **better** or **worse** when the 95% interval of "
        f"{new.name} minus {base.name} lies wholly above or below zero, otherwise **within noise**. "
        f"Decision thresholds: {base.name} {base.threshold:g}, {new.name} {new.threshold:g}."
    )


def changed_section(changed: pd.DataFrame, photos: int, base: Revision, new: Revision, sheet: str | None) -> str:
    lines = [f"## Decisions that changed ({len(changed)} of {photos} test photos)", ""]
    if changed.empty:
        lines.append("Every test photo gets the same keep/trash decision from both revisions.")
        return "\n".join(lines)
    if sheet:
        lines += [f"![Test photos whose decision changed, with both keep probabilities]({sheet})", ""]
    lines += [f"| Photo | Truly | {base.name} P(keep) | {new.name} P(keep) |", "|---|---|---|---|"]
    for photo in changed.head(CHANGED_ROWS_LISTED).itertuples():
        truly = "keep" if photo.label == 1 else "trash"
        lines.append(
            f"| {photo.key} | {truly} | {photo.probability_base:.3f} ({photo.decision_base}) | {photo.probability_new:.3f} ({photo.decision_new}) |"
        )
    if len(changed) > CHANGED_ROWS_LISTED:
        lines.append(f"\n{len(changed) - CHANGED_ROWS_LISTED} more not listed (the largest swings in probability come first).")
    return "\n".join(lines)


def report_markdown(
    base: Revision, new: Revision, pairing: Pairing, comparison: dict, plots: dict[str, str], changed: pd.DataFrame, sheet: str | None
) -> str:
    commits = " ".join(f"{revision.name} = {revision.commit[:10]}" for revision in (base, new) if revision.commit)
    sections = [
        f"# keeptrash review: {new.name} against {base.name}",
        "",
        f"**{conclusion(comparison, base, new)}**",
        "",
        verdict_sentence(comparison) + (f" ({commits})" if commits else ""),
        "",
        "## Headline",
        "",
        headline_table(base, new, comparison),
        "",
        pairing_note(pairing, base, new),
        "",
        "## Plots",
        "",
        *(f"![{PLOT_TITLES[name]}]({file})\n" for name, file in plots.items()),
        changed_section(changed, len(pairing.photos), base, new, sheet),
        "",
    ]
    return "\n".join(sections)
