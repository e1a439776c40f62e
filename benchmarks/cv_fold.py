"""Seconds per cross-validation fold at a given train.cv_max_rows: what choosing its default is about.

    python benchmarks/cv_fold.py [--work DIR] [--max-rows 20000 0]

Run in a folder holding params.yaml and data/labels, manifest and features parquet files (the repository after
`dvc repro`, or a `benchmarks/scale.py --work` folder after its train stage). For each --max-rows value (0 = every
train+val row) it fits and scores the first fold of the train stage's cross-validation once, with the folder's params,
and prints the rows the cross-validation would use and the seconds of that fold; the whole cross-validation is
cv_folds x cv_repeats such folds.
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

from keeptrash import paths
from keeptrash.io import read_table
from keeptrash.model.cross_validation import cv_folds, cv_rows, fold_metrics
from keeptrash.model.training import join_features
from keeptrash.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("."))
    parser.add_argument("--max-rows", type=int, nargs="+", default=[20_000, 0])
    args = parser.parse_args()
    os.chdir(args.work)
    params = load_params()
    table, _, _ = join_features(
        read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features")
    )
    noise_copies = read_table(paths.NOISE_COPIES, "features")
    for max_rows in args.max_rows:
        train = dataclasses.replace(params.train, cv_max_rows=max_rows)
        pool = table.iloc[cv_rows(table, train)].reset_index(drop=True)
        fitted, held_out = cv_folds(pool["label"], train.cv_folds, train.cv_repeats, train.seed)[0]
        started = time.perf_counter()
        fold_metrics(pool.iloc[fitted], pool.iloc[held_out], train, noise_copies)
        seconds = time.perf_counter() - started
        folds = train.cv_folds * train.cv_repeats
        print(f"cv_max_rows {max_rows}: {len(pool)} rows, {seconds:.1f} s per fold, about {folds * seconds / 60:.1f} min for {folds} folds")


if __name__ == "__main__":
    main()
