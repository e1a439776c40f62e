"""Do a person's corrections train the model? The best-rated own photos decided trash, the model refitted as the train
stage fits it, and those photos' keep probability before and after, under both train.objective values; and the
cross-validated figures of a decisions file that only confirms the ratings against none.

Run from the repo root after `dvc repro` (it reads data/labels.parquet, manifest, features and noise copies):
    python benchmarks/decided_targets.py [--photos 20]

The decisions are applied to the labels table as the labels stage applies a decisions file
(keeptrash.labels.own_decisions.decide). "label only" is the rule before issue 26: the label follows the decision and
the rating stays the photo's score, so the score target still ranks a trashed photo among the best.
`keep_probability` scores the photos from their stored features, exactly what `keeptrash cull` computes for them.
"""

import argparse
import dataclasses

import pandas as pd

from keeptrash import paths
from keeptrash.io import read_table
from keeptrash.labels.labelling import KEEP, TRASH
from keeptrash.labels.own_decisions import decide
from keeptrash.model.cross_validation import cross_validate
from keeptrash.model.model_inputs import keep_probability, stamp_inputs
from keeptrash.model.training import NOISE_COPY, fit_classifier, join_features, training_inputs
from keeptrash.params import load_params


def fitted(table: pd.DataFrame, params, noise_copies: pd.DataFrame):
    """The model the train stage would fit on table."""
    spec, inputs, columns = training_inputs(table, params, noise_copies)
    model = fit_classifier(
        inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"], columns, params, inputs[inputs["split"] == NOISE_COPY]
    )
    stamp_inputs(model, spec)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20, help="the best-rated own photos decided trash")
    args = parser.parse_args()
    params = load_params()
    table, _, _ = join_features(read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features"))
    noise_copies = read_table(paths.NOISE_COPIES, "features")
    own = table[table["source"] == "own"]
    best = own.nlargest(args.photos, "score").index
    print(f"{args.photos} best-rated own photos (ratings {own.loc[best, 'score'].min():.1f} to {own.loc[best, 'score'].max():.1f}), "
          f"by split: {table.loc[best, 'split'].value_counts().to_dict()}")
    trashed = pd.Series(TRASH, index=best)
    tables = {"none": table, "label only": table.assign(label=table["label"].where(~table.index.isin(best), TRASH)), "decided": decide(table, trashed)}
    fitted_rows = table.loc[best, "split"].isin(("train", "val")).to_numpy()
    objectives = {
        "regress": dataclasses.replace(params.train, objective="regress"),
        "classify": dataclasses.replace(params.train, objective="classify", noise_penalty=0.0),  # classify learns no copies' targets
    }
    for objective, train_params in objectives.items():
        for name, decided in tables.items():
            probabilities = keep_probability(fitted(decided, train_params, noise_copies), table.loc[best])
            print(f"{objective:>8}, {name:>10}: mean keep probability {probabilities.mean():.3f} "
                  f"(train+val {probabilities[fitted_rows].mean():.3f}, test {probabilities[~fitted_rows].mean():.3f})", flush=True)

    rated = own["score"].notna()
    confirming = pd.Series((own.loc[rated, "score"] >= params.labels.rated_own_threshold).map({True: KEEP, False: TRASH}), index=own.index[rated])
    confirmed = decide(table, confirming)
    print(f"confirm-only decisions for all {len(confirming)} rated own photos: labels table unchanged: {confirmed.equals(table)}")
    for name, rows in (("none", table), ("confirm-only", confirmed)):
        cv = cross_validate(rows, params.train, noise_copies)
        print(f"{name:>12}: CV ({cv['folds']}-fold x {cv['repeats']}, {cv['rows']} photos) "
              + ", ".join(f"{metric} {cv[metric]['mean']:.3f} +- {cv[metric]['sd']:.3f}" for metric in ("spearman", "roc_auc", "accuracy")), flush=True)


if __name__ == "__main__":
    main()
