"""Compare the offline backbones on the current labels: validation and test scores of the train params.

Run from the repo root after `dvc repro` (it reads data/labels.parquet and data/manifest.parquet):
    python benchmarks/backbones.py
Features come from the shared feature cache, so a backbone is extracted once.
"""

import dataclasses

from keeptrash import paths
from keeptrash.evaluation import classification_metrics
from keeptrash.features.extract import cache_namespace, manifest_features
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.images import OK
from keeptrash.io import read_table
from keeptrash.params import load_params
from keeptrash.training import decision_threshold, fit_classifier, join_features, training_inputs

OFFLINE_BACKBONES = ("efficientnet_lite0", "mobilenet_v2")


def main() -> None:
    params = load_params()
    labels, manifest = read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download")
    print("| backbone | val accuracy | val balanced | val ROC AUC | test accuracy | test ROC AUC |")
    print("|---|---|---|---|---|---|")
    for backbone in OFFLINE_BACKBONES:
        feature_params = dataclasses.replace(params.features, backbone=backbone)
        store = FeatureStore(default_cache_root(), cache_namespace(feature_params))
        features, _ = manifest_features(
            manifest[manifest["status"] == OK], feature_params, store, params.download.max_image_pixels
        )
        table, _, _ = join_features(labels, manifest, features)
        _, inputs, columns = training_inputs(table, params.train)
        train, val, test = (inputs[inputs["split"] == split] for split in ("train", "val", "test"))
        model = fit_classifier(train, val, columns, params.train)
        threshold = decision_threshold(model, val, columns, params.train)
        scores = {
            name: classification_metrics(rows["label"], model.predict_proba(rows[columns])[:, 1], threshold)
            for name, rows in (("val", val), ("test", test))
        }
        print(
            f"| {backbone} | {scores['val']['accuracy']:.3f} | {scores['val']['balanced_accuracy']:.3f} | "
            f"{scores['val']['roc_auc']:.3f} | {scores['test']['accuracy']:.3f} | {scores['test']['roc_auc']:.3f} |"
        )


if __name__ == "__main__":
    main()
