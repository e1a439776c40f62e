"""The quality/speed frontier of the feature settings: backbone x pooling x resolution.

Run from the repo root after `dvc repro` (it reads data/labels.parquet and data/manifest.parquet):
    python benchmarks/frontier.py [--large ../shared/data/large] [--speed-photos 24] [--quality-only] [--settings backbone:pooling:resolution ...]
Per setting: the committed train params' cross-validated Spearman and ROC AUC on train+val (features
from the shared feature cache, extracted once per setting) and the per-fold Spearman difference from the committed
feature setting on the same folds with the corrected resampled t-test's p (cross-validated as well when it is not among the rows), then images/s of the whole extraction
(decode, statistics, model; features.workers as committed) on a subsample of AVA-sized photos (the
demo photos) and of camera-sized photos, each in a fresh process whose largest peak RSS is reported.
Speed rows run back to back so they share the machine's load; the load average is printed with them.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from keeptrash import paths
from keeptrash.model.cross_validation import fold_scores, paired_difference
from keeptrash.features.extract import cache_namespace, photo_file
from keeptrash.features.table import loaded_features, manifest_features, noise_copy_features
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.images import OK
from keeptrash.io import read_table
from keeptrash.params import FeaturesParams, load_params
from keeptrash.model.training import join_features

# resnet50 is left out: its weights download on first use, and this machine is offline.
SETTINGS = (
    ("efficientnet_lite0", "last", 224),
    ("efficientnet_lite0", "multilevel", 224),
    ("efficientnet_lite0", "multilevel", 384),
    ("efficientnet_lite0", "last", 500),
    ("efficientnet_lite0", "multilevel", 500),
    ("efficientnet_lite0", "multilevel_std", 500),
    ("efficientnet_lite0", "multilevel", 640),
    ("efficientnet_lite1", "multilevel", 500),
    ("efficientnet_lite2", "multilevel", 500),
    ("mobilenet_v2", "multilevel", 500),
)
AVA_SIZED = Path("data/sample/livec/images")
MAX_PIXELS = 300_000_000


def cv_quality(params, features: FeaturesParams) -> pd.DataFrame:
    manifest = read_table(paths.MANIFEST, "download")
    store = FeatureStore(default_cache_root(), cache_namespace(features))
    usable = manifest[manifest["status"] == OK]
    table, _ = manifest_features(usable, features, store, params.download.max_image_pixels)
    noise_copies, _ = noise_copy_features(usable, params.features.noise_copies, features, store, params.download.max_image_pixels)
    joined, _, _ = join_features(read_table(paths.LABELS, "labels"), manifest, table)
    return fold_scores(joined, params.train, noise_copies)


def quality_cells(scores: pd.DataFrame, committed: pd.DataFrame, cv_folds: int) -> str:
    """CV Spearman, ROC AUC and gap as mean +- sd over the folds, and the paired Spearman difference from the committed setting
    with its corrected p."""
    paired = paired_difference(scores, committed, cv_folds)
    return " | ".join(
        [f"{scores[name].mean():.3f} ± {scores[name].std(ddof=1):.3f}" for name in ("spearman", "roc_auc")]
        + [f"{scores['overfitting_gap'].mean():.1f} ± {scores['overfitting_gap'].std(ddof=1):.1f}",
           f"{paired['mean']:+.3f} ± {paired['sd']:.3f} ({paired['better']}/{paired['folds']}, p {paired['p']:.2f})"]
    )


def speed_job(features: FeaturesParams, photos: list[str]) -> dict:
    """In a fresh process: photos/s of the whole extraction into an empty cache, and the largest peak RSS."""
    keys = [hashlib.sha256(f"{position}:{path}".encode()).hexdigest() for position, path in enumerate(photos)]
    with tempfile.TemporaryDirectory(prefix="keeptrash-frontier-") as cache:
        started = time.perf_counter()
        loaded_features({key: photo_file(path) for key, path in zip(keys, photos)}, features, FeatureStore(Path(cache), "bench"), MAX_PIXELS)
        seconds = time.perf_counter() - started
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"images_per_second": len(photos) / seconds, "peak_rss_mb": peak / 1024}


def measure_speed(features: FeaturesParams, photos: list[Path]) -> dict:
    job = json.dumps({"features": dataclasses.asdict(features), "photos": [str(photo) for photo in photos]})
    result = subprocess.run([sys.executable, __file__, "--job", job], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"), help="folder of camera-sized JPEGs")
    parser.add_argument("--speed-photos", type=int, default=24, help="AVA-sized photos per speed row (camera-sized: a third)")
    parser.add_argument("--quality-only", action="store_true", help="the CV columns only (speed needs an idle machine)")
    parser.add_argument("--settings", nargs="*", help="backbone:pooling:resolution rows to run (default: all)")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job = json.loads(args.job)
        print(json.dumps(speed_job(FeaturesParams(**job["features"]), job["photos"])))
        return
    params = load_params()
    ava_sized = sorted(AVA_SIZED.glob("*.jpg"))[: args.speed_photos]
    camera_sized = sorted(args.large.glob("*.jpg"))[: max(1, args.speed_photos // 3)]
    chosen = [(b, p, int(r)) for b, p, r in (row.split(":") for row in args.settings)] if args.settings else SETTINGS
    settings = [dataclasses.replace(params.features, backbone=b, pooling=p, resolution=r) for b, p, r in chosen]
    quality = {}
    for features in dict.fromkeys([params.features, *settings]):
        started = time.perf_counter()
        quality[features] = cv_quality(params, features)
        print(f"{features.backbone} {features.pooling} {features.resolution}: CV in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    committed = quality[params.features]
    quality_columns = "CV Spearman | CV ROC AUC | CV gap (points) | Spearman vs committed, paired (folds better, corrected p)"
    if args.quality_only:
        print(f"| backbone | pooling | resolution | {quality_columns} |\n|---|---|---|---|---|---|---|")
        for features in settings:
            print(f"| {features.backbone} | {features.pooling} | {features.resolution} | {quality_cells(quality[features], committed, params.train.cv_folds)} |")
        return
    print(f"load average before the speed rows: {os.getloadavg()}", file=sys.stderr)
    speed = {features: (measure_speed(features, ava_sized), measure_speed(features, camera_sized)) for features in settings}
    print(f"load average after the speed rows: {os.getloadavg()}", file=sys.stderr)
    print(f"CV: {params.train.cv_folds}-fold x {params.train.cv_repeats} on train+val, committed train params; speed: {len(ava_sized)} AVA-sized "
          f"and {len(camera_sized)} camera-sized photos, workers {params.features.workers or 'auto'}, {os.cpu_count()} cores\n")
    print(f"| backbone | pooling | resolution | {quality_columns} | img/s AVA-sized | img/s camera-sized | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for features in settings:
        small, large = speed[features]
        print(
            f"| {features.backbone} | {features.pooling} | {features.resolution} | {quality_cells(quality[features], committed, params.train.cv_folds)} | "
            f"{small['images_per_second']:.1f} | {large['images_per_second']:.1f} | {max(small['peak_rss_mb'], large['peak_rss_mb']):.0f} |"
        )


if __name__ == "__main__":
    main()
