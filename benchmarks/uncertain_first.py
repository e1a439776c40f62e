"""Does labelling the photos `keeptrash cull --order uncertain` lists first teach the model more than labelling as many
photos picked at random? A simulation of a new user's first labels, on the demo own photos (LIVE-C, rated).

Run from the repo root after `dvc repro` (it reads data/labels.parquet, manifest and features):
    python benchmarks/uncertain_first.py [--repeats 20] [--seed-photos 40] [--labels 50]

Each repeat: a new user has labelled SEED photos drawn at random from the train+val own photos. A model is fitted on
them as the train stage does (two thirds train, one third validation for the decision threshold, the committed
train params). That model scores the rest of the pool, the way `keeptrash cull` scores a folder; the user then labels
LABELS more photos, either the nearest the threshold (--order uncertain) or random ones, and the model is refitted on
seed + those. Both refits are scored on the labels stage's test split (never used to choose anything), and compared
paired, repeat by repeat.
"""

import argparse
import dataclasses

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from keeptrash import paths
from keeptrash.cull.ordering import uncertain_first
from keeptrash.io import read_table
from keeptrash.model.model_inputs import keep_probability, stamp_inputs
from keeptrash.params import load_params
from keeptrash.model.training import NOISE_COPY, decision_threshold, fit_classifier, join_features, training_inputs


def fitted(rows: pd.DataFrame, params, noise_copies: pd.DataFrame, validation_share: float, rng: np.random.Generator):
    """A model fitted on rows (and their noisy copies) as the train stage fits one (a validation share picks the
    threshold), and that threshold."""
    split = np.where(rng.random(len(rows)) < validation_share, "val", "train")
    table = rows.assign(split=split)
    spec, inputs, columns = training_inputs(table, params, noise_copies)
    val = inputs[inputs["split"] == "val"]
    model = fit_classifier(inputs[inputs["split"] == "train"], val, columns, params, inputs[inputs["split"] == NOISE_COPY])
    stamp_inputs(model, spec)
    return model, decision_threshold(model, val, columns, params)


def test_auc(model, test: pd.DataFrame) -> float:
    return roc_auc_score(test["label"], keep_probability(model, test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed-photos", type=int, default=40)
    parser.add_argument("--labels", type=int, default=50)
    args = parser.parse_args()
    params = load_params().train
    params = dataclasses.replace(params, cv_folds=0)
    table, _, _ = join_features(read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features"))
    noise_copies = read_table(paths.NOISE_COPIES, "features")
    own = table[table["source"] == "own"].reset_index(drop=True)
    test = own[own["split"] == "test"]
    pool = own[own["split"] != "test"].reset_index(drop=True)
    print(f"pool {len(pool)} own photos (train+val), test {len(test)}; seed {args.seed_photos}, then {args.labels} more labels; "
          f"{args.repeats} repeats")
    results = []
    for repeat in range(args.repeats):
        rng = np.random.default_rng(repeat)
        order = rng.permutation(len(pool))
        seed, rest = pool.iloc[order[: args.seed_photos]], pool.iloc[order[args.seed_photos :]]
        if seed["label"].nunique() < 2:
            continue
        seed_model, threshold = fitted(seed, params, noise_copies, 1 / 3, rng)
        scored = rest.assign(keep_probability=keep_probability(seed_model, rest), path=rest["key"])
        uncertain = uncertain_first(scored, threshold).head(args.labels)["key"]
        chosen = {
            "uncertain": rest[rest["key"].isin(uncertain)],
            "random": rest.iloc[rng.permutation(len(rest))[: args.labels]],
        }
        row = {"repeat": repeat, "seed_auc": test_auc(seed_model, test)}
        for name, picked in chosen.items():
            model, _ = fitted(pd.concat([seed, picked]), params, noise_copies, 1 / 3, np.random.default_rng(1000 + repeat))
            row[f"{name}_auc"] = test_auc(model, test)
            row[f"{name}_keep_share"] = picked["label"].mean()
        results.append(row)
        print(", ".join(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}" for key, value in row.items()), flush=True)
    frame = pd.DataFrame(results)
    difference = frame["uncertain_auc"] - frame["random_auc"]
    low, high = stats.t.interval(0.95, len(difference) - 1, loc=difference.mean(), scale=stats.sem(difference))
    for name in ("seed", "random", "uncertain"):
        print(f"{name:>9}: test ROC AUC {frame[f'{name}_auc'].mean():.3f} +- {frame[f'{name}_auc'].std():.3f} (mean +- sd over repeats)")
    print(f"uncertain - random: {difference.mean():+.3f} (95% CI {low:+.3f} to {high:+.3f}, paired t over {len(difference)} repeats); "
          f"uncertain better in {(difference > 0).sum()} of {len(difference)}; "
          f"keep share of the labels picked: uncertain {frame['uncertain_keep_share'].mean():.2f}, random {frame['random_keep_share'].mean():.2f}")


if __name__ == "__main__":
    main()
