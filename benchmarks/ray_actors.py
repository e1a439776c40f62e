"""The Ray engine's speed-up per added actor: the same photos extracted with 1 and with 2 local actors of one CPU each.

Run from the repo root (it needs no pipeline outputs):
    python benchmarks/ray_actors.py [--photos 512] [--cpus-per-actor 1]
Each run extracts the photos into an empty feature cache through features.table.loaded_features with
features.engine ray (a local Ray started by the run, in a fresh process), so decoding, statistics, the
model and the cache writes are all counted. Shards hold 256 photos, so the default 512 photos make two
equal shards: two actors can each take one. An actor of one CPU stands in for a node: on a cluster
each added node brings its own actors, and the photos are read from shared storage.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keeptrash.features.extract import photo_file
from keeptrash.features.store import FeatureStore
from keeptrash.features.table import loaded_features
from keeptrash.params import load_params

DEMO_PHOTOS = Path("data/sample/livec/images")
MAX_PIXELS = 300_000_000


def timed_run(actors: int, cpus_per_actor: int, photos: list[str]) -> dict:
    """In this process: seconds to extract the photos with `actors` Ray actors, Ray's start-up included and apart."""
    import ray

    features = dataclasses.replace(load_params().features, engine="ray", ray_actors=actors, ray_cpus_per_actor=cpus_per_actor)
    started = time.perf_counter()
    ray.init(num_cpus=actors * cpus_per_actor, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_ready = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keeptrash-ray-actors-") as cache:
        loaded_features({str(index): photo_file(path) for index, path in enumerate(photos)}, features, FeatureStore(Path(cache), "bench"), MAX_PIXELS)
    finished = time.perf_counter()
    ray.shutdown()
    return {"actors": actors, "ray_start_seconds": ray_ready - started, "extract_seconds": finished - ray_ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=512)
    parser.add_argument("--cpus-per-actor", type=int, default=1)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job = json.loads(args.job)
        print(json.dumps(timed_run(job["actors"], job["cpus_per_actor"], job["photos"])))
        return
    photos = [str(path) for path in sorted(DEMO_PHOTOS.glob("*.jpg"))[: args.photos]]
    print(f"{len(photos)} demo photos, {args.cpus_per_actor} CPU per actor, load average before: {os.getloadavg()}")
    results = []
    for actors in (1, 2):
        job = json.dumps({"actors": actors, "cpus_per_actor": args.cpus_per_actor, "photos": photos})
        output = subprocess.run([sys.executable, __file__, "--job", job], capture_output=True, text=True, check=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"load average after {actors} actor(s): {os.getloadavg()}")
    print("\n| actors | Ray start s | extraction s | photos/s | speed-up |\n|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result['actors']} | {result['ray_start_seconds']:.1f} | {result['extract_seconds']:.1f} | "
            f"{len(photos) / result['extract_seconds']:.1f} | {results[0]['extract_seconds'] / result['extract_seconds']:.2f} |"
        )


if __name__ == "__main__":
    main()
