"""Backbone ensembles, measured on the ridge score alone: does concatenating two or three backbones' multi-level
features beat one?

Run from the repo root after `dvc repro` (it reads data/labels.parquet and data/manifest.parquet; features come
from the feature cache, extracted first where missing, at the committed pooling and resolution):
    python benchmarks/backbone_ensembles.py
Per row: the ridge score (the train stage's RidgeScore on the standardised embedding, target train.target_scale)
cross-validated on train+val with the train stage's folds (train.cv_folds x train.cv_repeats, same seed), ROC AUC
and Spearman within each source as mean +- sd, and the paired per-fold difference from the first row with the corrected resampled t-test's p.
"""

import dataclasses

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from keeptrash import paths
from keeptrash.benchmark.evaluation import spearman_within_sources
from keeptrash.features.extract import cache_namespace
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.features.table import manifest_features
from keeptrash.images import OK
from keeptrash.io import read_table
from keeptrash.model.cross_validation import cv_folds, paired_difference
from keeptrash.model.model_inputs import EMBEDDING_PREFIX, RidgeScore, score_target
from keeptrash.params import load_params

ENSEMBLES = (
    ("efficientnet_lite0",),
    ("efficientnet_lite2",),
    ("efficientnet_lite0", "efficientnet_lite2"),
    ("efficientnet_lite0", "mobilenet_v2"),
    ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"),
)


def embedding(params, backbone: str, photos: pd.DataFrame) -> np.ndarray:
    features = dataclasses.replace(params.features, backbone=backbone)
    manifest = read_table(paths.MANIFEST, "download")
    table, _ = manifest_features(manifest[manifest["status"] == OK], features, FeatureStore(default_cache_root(), cache_namespace(features)), 10**9)
    table = table.set_index("key").loc[photos["key"]]
    return table[[column for column in table.columns if column.startswith(EMBEDDING_PREFIX)]].to_numpy(dtype=np.float64)


def main() -> None:
    params = load_params()
    labels = read_table(paths.LABELS, "labels")
    pool = labels[labels["split"].isin(("train", "val"))].reset_index(drop=True)
    keep = pool["label"].to_numpy()
    folds = cv_folds(pool["label"], params.train.cv_folds, params.train.cv_repeats, params.train.seed)
    embeddings = {backbone: embedding(params, backbone, pool) for backbone in sorted({name for row in ENSEMBLES for name in row})}
    print(f"{params.features.pooling} at {params.features.resolution} px; ridge score alone, target {params.train.target_scale}; "
          f"{params.train.cv_folds}-fold x {params.train.cv_repeats} on {len(pool)} train+val photos\n")
    print("| backbones | CV Spearman | CV ROC AUC | paired Spearman vs first row (folds better, corrected p) | paired ROC AUC (folds better, corrected p) |\n|---|---|---|---|---|")
    first = None
    for row in ENSEMBLES:
        inputs = np.hstack([embeddings[backbone] for backbone in row])
        scores = []
        for fitted, held_out in folds:
            ridge, _ = RidgeScore.fit(inputs[fitted], score_target(pool.iloc[fitted], params.train.target_scale))
            score = ridge.apply(inputs[held_out])
            scores.append({"spearman": spearman_within_sources(score, pool.iloc[held_out].reset_index(drop=True)), "roc_auc": roc_auc_score(keep[held_out], score)})
        scores = pd.DataFrame(scores)
        first = scores if first is None else first
        paired = [paired_difference(scores, first, params.train.cv_folds, metric) for metric in ("spearman", "roc_auc")]
        print(f"| {' + '.join(row)} | {scores['spearman'].mean():.3f} ± {scores['spearman'].std(ddof=1):.3f} | {scores['roc_auc'].mean():.3f} ± {scores['roc_auc'].std(ddof=1):.3f} | "
              + " | ".join(f"{difference['mean']:+.4f} ± {difference['sd']:.4f} ({difference['better']}/{difference['folds']}, p {difference['p']:.2f})" for difference in paired)
              + " |", flush=True)


if __name__ == "__main__":
    main()
