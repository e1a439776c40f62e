"""The report's pure parts: pairing two revisions' test predictions, changed decisions, the headline text."""

import subprocess
import sys

import numpy as np
import pandas as pd

from keeptrash.report.comparison import changed_decisions, compare, pair_predictions
from keeptrash.report.markdown import conclusion, headline_table, pairing_note, report_markdown
from keeptrash.report.revisions import Revision


def predictions(keys, labels, probabilities) -> pd.DataFrame:
    return pd.DataFrame(
        {"key": keys, "source": "own", "score": np.linspace(10, 90, len(keys)), "label": labels, "keep_probability": probabilities}
    )


def revision(name: str, frame: pd.DataFrame, gap: float, verdict: str, cv: dict | None = None) -> Revision:
    train = {"overfitting_gap": gap, "overfitting_verdict": verdict, **({"cv": cv} if cv else {})}
    return Revision(name, None, frame, 0.5, train, {}, {})


def test_pairing_keeps_common_photos_with_the_same_label_and_counts_the_rest():
    base = predictions(["a", "b", "c", "d"], [1, 0, 1, 0], [0.9, 0.2, 0.6, 0.4])
    new = predictions(["b", "c", "d", "e"], [0, 1, 1, 1], [0.3, 0.4, 0.7, 0.8])  # d relabelled, e new
    pairing = pair_predictions(base, new)
    assert list(pairing.photos["key"]) == ["b", "c"]
    assert list(pairing.photos["probability_base"]) == [0.2, 0.6] and list(pairing.photos["probability_new"]) == [0.3, 0.4]
    assert (pairing.only_base, pairing.only_new, pairing.relabelled) == (1, 1, 1)
    note = pairing_note(pairing, revision("main", base, 1, "none"), revision("exp", new, 1, "none"))
    assert note.startswith("The test sets differ: the comparison pairs the 2 test photos both revisions scored with the same label")
    assert "1 test photos only main scored" in note and "1 only exp scored" in note and "1 whose label differs" in note


def test_changed_decisions_list_both_probabilities_largest_swing_first():
    base = predictions(list("abcd"), [1, 1, 0, 0], [0.9, 0.55, 0.45, 0.2])
    new = predictions(list("abcd"), [1, 1, 0, 0], [0.8, 0.1, 0.48, 0.7])
    changed = changed_decisions(pair_predictions(base, new), 0.5, 0.5)
    assert list(changed["key"]) == ["d", "b"]
    assert list(changed["decision_base"]) == ["trash", "keep"] and list(changed["decision_new"]) == ["keep", "trash"]
    # A threshold moves decisions too: at 0.85 the new revision trashes a.
    assert "a" in set(changed_decisions(pair_predictions(base, new), 0.5, 0.85)["key"])


def test_headline_table_shows_cross_validation_and_the_overfitting_verdict_change():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    frame = predictions([f"k{i:02d}" for i in range(60)], labels, np.clip(labels * 0.4 + rng.random(60) * 0.6, 0, 1))
    cv = {name: {"mean": 0.8, "sd": 0.05} for name in ("accuracy", "balanced_accuracy", "roc_auc", "spearman")}
    cv["overfitting_gap"] = {"mean": 6.0, "sd": 2.0}
    base, new = revision("main", frame, 3.5, "none"), revision("exp", frame, 11.0, "significant", cv)
    pairing = pair_predictions(frame, frame)
    comparison = compare(pairing, 0.5, 0.5)
    table = headline_table(base, new, comparison)
    assert "| Test ROC AUC |" in table and "within noise" in table
    assert "n/a → 0.800 ± 0.050" in table
    assert "| 3.5 | 11.0 | +7.5 |" in table and "**none → significant**" in table and "n/a → 6.0 ± 2.0" in table
    text = report_markdown(base, new, pairing, comparison, {"roc": "roc.png"}, changed_decisions(pairing, 0.5, 0.5), None)
    assert text.startswith("# keeptrash review: exp against main")
    assert "**No headline figure of exp differs from main beyond noise. Its overfitting verdict moves from none to significant.**" in text
    assert "![ROC curve, test split](roc.png)" in text


def test_report_outside_a_repository_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keeptrash.cli", "report", "--out", str(tmp_path / "r")], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"keeptrash: error: {tmp_path}: not a git repository; run keeptrash report in the keeptrash project"]
    assert not (tmp_path / "r").exists()


def test_conclusion_names_what_is_better_and_worse():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 80)
    good = np.clip(labels * 0.5 + rng.random(80) * 0.5, 0, 1)
    frame = predictions([f"k{i:02d}" for i in range(80)], labels, good)
    noise = frame.assign(keep_probability=rng.random(80))
    base, new = revision("main", noise, 3.0, "none"), revision("exp", frame, 3.0, "none")
    comparison = compare(pair_predictions(noise, frame), 0.5, 0.5)
    assert conclusion(comparison, base, new).startswith("exp is better than main on Test accuracy, Test balanced accuracy, Test ROC AUC")
    assert conclusion(compare(pair_predictions(frame, noise), 0.5, 0.5), new, base).startswith("main is worse than exp on Test accuracy")
