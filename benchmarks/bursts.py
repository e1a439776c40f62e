"""Series of takes at camera size, grouping throughput on 1,000 photos, and what the series evaluation adds to dvc repro.

Run from the repo root after `dvc repro` (it uses models/model.cbm, data/labels.parquet and data/manifest.parquet):
    python benchmarks/bursts.py [--large ../shared/data/large] [--photos 1000]

1. large:      every camera-sized photo in --large becomes a series of the six takes of keeptrash.analysis.series,
               written at full size; the model ranks them and the folder is grouped (the analyze stage's metrics).
2. throughput: grouping alone (EXIF time, a 64-px draft decode, the perceptual hash, the walk in shooting order)
               on --photos distinct camera-sized JPEGs (benchmarks/cull.py's crops), in one process.
3. demo cost:  the analyze stage's series evaluation on the demo with an empty feature cache, as a fresh
               `dvc repro` runs it.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from cull import make_photos  # benchmarks/cull.py: distinct camera-sized crops of the --large photos
from keeptrash import paths
from keeptrash.analysis.series import series_analysis
from keeptrash.features.extract import cache_namespace
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.grouping import group_series, read_signatures
from keeptrash.io import read_table
from keeptrash.params import load_params
from keeptrash.model.trained import TrainedModel

FULL_SIZE = 100_000  # a decode side no photo reaches: the takes are made from the whole-resolution photo


def large_series(large: Path, model, params, threshold: float) -> dict:
    found = sorted(large.glob("*.jpg"))
    if not found:
        sys.exit(f"{large}: no .jpg photos; pass --large with camera-sized JPEGs")
    photos = pd.DataFrame({"path": [str(path) for path in found], "label": 1})  # wallpapers: all worth keeping
    store = FeatureStore(default_cache_root(), cache_namespace(params.features))
    started = time.perf_counter()
    metrics, _ = series_analysis(model, photos, params.features, store, threshold, params.grouping, params.download.max_image_pixels, FULL_SIZE)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def grouping_throughput(large: Path, count: int, params) -> dict:
    with tempfile.TemporaryDirectory(prefix="keeptrash-bursts-") as folder:
        make_photos(large, Path(folder), count)
        photos = sorted(Path(folder).glob("*.jpg"))
        started, cpu_started = time.perf_counter(), time.process_time()
        signatures = read_signatures(photos, params.download.max_image_pixels)
        groups = group_series(signatures, params.grouping)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        megabytes = sum(os.path.getsize(photo) for photo in photos) / len(photos) / 1e6
    return {
        "photos": len(photos),
        "seconds": round(seconds, 2),
        "photos_per_second": round(len(photos) / seconds, 1),
        # One process, one thread: CPU time per photo is what an idle core would take, whatever else the machine runs.
        "cpu_milliseconds_per_photo": round(1000 * cpu_seconds / len(photos), 1),
        "mean_file_megabytes": round(megabytes, 2),
        "series_found": int(pd.Series(groups).value_counts().gt(1).sum()),  # distinct crops: ideally none
    }


def demo_cost(model, params, threshold: float) -> dict:
    labels, manifest = read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download")
    test = labels[(labels["split"] == "test") & (labels["source"] == "own")].sort_values("key").head(params.analyze.series_photos)
    photos = test[["key", "label"]].merge(manifest[["key", "path"]], on="key")
    with tempfile.TemporaryDirectory(prefix="keeptrash-empty-cache-") as cache:
        store = FeatureStore(Path(cache), cache_namespace(params.features))
        started = time.perf_counter()
        metrics, _ = series_analysis(
            model, photos, params.features, store, threshold, params.grouping, params.download.max_image_pixels, params.features.resolution
        )
    return {"seconds_with_empty_cache": round(time.perf_counter() - started, 1), "original_first_share": metrics["original_first_share"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--only", choices=("large", "throughput", "demo"), help="run one of the three measurements")
    args = parser.parse_args()
    params = load_params()
    model = TrainedModel.load(paths.MODEL, params.features)
    params = dataclasses.replace(params, features=model.features)
    threshold = model.threshold
    measurements = {
        "large": lambda: large_series(args.large, model, params, threshold),
        "throughput": lambda: grouping_throughput(args.large, args.photos, params),
        "demo": lambda: demo_cost(model, params, threshold),
    }
    results = {name: measure() for name, measure in measurements.items() if args.only in (None, name)}
    results["cpus"], results["load_average"] = os.cpu_count(), os.getloadavg()
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
