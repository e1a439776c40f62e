"""Feature-extraction throughput and peak memory: the model alone, a naive loop, and keeptrash's pipeline.

Run from the repo root (it reads params.yaml's features section):
    python benchmarks/features.py [--large ../shared/data/large] [--large-copies 6] [--repeats 3]

Two workloads, the same photos for every variant:
  AVA-sized    - the 547 LIVE-C photos (500 x 500) and the 15 AVA photos (120-800 px) shipped in data/sample
  camera-sized - the JPEGs in --large (2-15 MP), each repeated --large-copies times
Three variants, each in a fresh process (so peak memory is its own, its workers included), run once
on the first photos to warm up, then --repeats times over the workload; the fastest run counts:
  (a) model only - the backbone on photos already decoded, resized and stacked as uint8: the limit
  (b) naive      - Pillow decodes each photo in full, torchvision resizes and crops it, batches of 32, one process
  (c) pipeline   - keeptrash's extraction (loaded_features into an empty feature cache): decoding, image
                   statistics and cache writes included
Each table also times (c) with decoding in the main process, and the CPU time per photo of each step
of (c), measured one photo at a time, shows where the time goes. Last, the model alone at several
batch sizes (--batch-sizes), which is how features.batch_size was chosen.
"""

import argparse
import dataclasses
import functools
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from keeptrash.features.backbones import BACKBONES
from keeptrash.features.extract import (
    SHARD_SIZE,
    Embedder,
    PhotoDataset,
    available_cores,
    choose_device,
    model_input,
    photo_file,
    working_size,
)
from keeptrash.features.image_stats import ANALYSIS_SIDE, STAT_NAMES, image_statistics
from keeptrash.features.store import FeatureStore
from keeptrash.features.table import loaded_features
from keeptrash.images import open_photo
from keeptrash.params import FeaturesParams, load_params
from keeptrash.features.torchvision_compat import import_torchvision

AVA_SIZED = (Path("data/sample/livec/images"), Path("data/sample/ava/images"))
WARM_UP_PHOTOS = 32
MODEL_TIMING_PHOTOS = 128
BATCH_SIZE_PHOTOS = 256
MAX_PIXELS = 300_000_000


def best_rate(run: Callable[[int], None], count: int, repeats: int) -> float:
    """Photos per second of the fastest of `repeats` runs over `count` photos, after a warm-up run on the first few."""
    run(min(count, WARM_UP_PHOTOS))
    fastest = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(count)
        fastest = min(fastest, time.perf_counter() - started)
    return count / fastest


def model_only(photos: list[Path], params: FeaturesParams) -> Callable[[int], None]:
    """The first `count` photos' model inputs, decoded before the clock starts, through the pipeline's model in its batches."""
    embed = Embedder(BACKBONES[params.backbone], params.pooling, choose_device(params.device))
    dataset = PhotoDataset([photo_file(path) for path in photos], params.resolution, MAX_PIXELS)
    inputs = [dataset[index][1] for index in range(len(dataset))]

    def run(count: int) -> None:
        for start in range(0, count, params.batch_size):
            embed(inputs[start : min(count, start + params.batch_size)])

    return run


def naive_loop(photos: list[Path], params: FeaturesParams) -> Callable[[int], None]:
    transforms = import_torchvision().transforms
    backbone = BACKBONES[params.backbone]
    model = backbone.build(params.pooling).eval()
    normalise = transforms.Compose([transforms.ToTensor(), transforms.Normalize(backbone.mean, backbone.std)])

    def prepare(path: Path) -> torch.Tensor:
        image = Image.open(path).convert("RGB")
        return normalise(image.resize(working_size(image.size, params.resolution)))

    def run(count: int) -> None:
        # Whole photos differ in shape, so the naive loop runs them one at a time.
        with torch.no_grad():
            for path in photos[:count]:
                model(prepare(path)[None]).numpy()

    return run


def pipeline(photos: list[Path], params: FeaturesParams) -> Callable[[int], None]:
    # A key per position, so a repeated file is extracted every time, like a distinct photo.
    keys = [hashlib.sha256(f"{position}:{path}".encode()).hexdigest() for position, path in enumerate(photos)]

    def run(count: int) -> None:
        loaders = {key: photo_file(path) for key, path in zip(keys[:count], photos[:count])}
        with tempfile.TemporaryDirectory(prefix="keeptrash-features-bench-") as cache:
            loaded_features(loaders, params, FeatureStore(Path(cache), "bench"), MAX_PIXELS)

    return run


VARIANTS = {"model": ("(a) model only", model_only), "naive": ("(b) naive loop", naive_loop), "pipeline": ("(c) pipeline", pipeline)}


def measure_variant(variant: str, photos: list[Path], params: FeaturesParams, repeats: int) -> dict:
    _, make_run = VARIANTS[variant]
    rate = best_rate(make_run(photos, params), len(photos), repeats)
    # ru_maxrss is in KiB on Linux; for the children it is the largest decoding worker's, pages shared with this process included.
    return {
        "images_per_second": rate,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def cpu_milliseconds(items: list, step: Callable[[object], object]) -> float:
    started = time.thread_time()
    for item in items:
        step(item)
    return (time.thread_time() - started) * 1000 / len(items)


def where_the_time_goes(photos: list[Path], params: FeaturesParams) -> dict[str, float]:
    """CPU milliseconds per photo of each step of the pipeline, one photo at a time (the model per photo of a batch)."""
    dataset = PhotoDataset([], params.resolution, MAX_PIXELS)
    decode = functools.partial(open_photo, decode_side=dataset.short_side, long_side=dataset.long_side)
    opened = [decode(path) for path in photos]
    embed = Embedder(BACKBONES[params.backbone], params.pooling, choose_device(params.device))
    batch = [model_input(image, params.resolution) for image, _ in opened[: params.batch_size]]
    rows = np.zeros((SHARD_SIZE, BACKBONES[params.backbone].dims[params.pooling]), np.float32), np.zeros((SHARD_SIZE, len(STAT_NAMES)), np.float32)
    keys = [hashlib.sha256(str(row).encode()).hexdigest() for row in range(SHARD_SIZE)]
    # One model thread, as each of the pipeline's workers runs it on a CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="keeptrash-features-bench-") as cache:
        embed(batch)
        steps = {
            "decode": cpu_milliseconds(photos, decode),
            "resize": cpu_milliseconds([image for image, _ in opened], lambda image: model_input(image, params.resolution)),
            "statistics": cpu_milliseconds(opened, lambda item: image_statistics(*item)),
            "model": cpu_milliseconds([batch] * (MODEL_TIMING_PHOTOS // len(batch)), embed) / len(batch),
            "cache write": cpu_milliseconds([FeatureStore(Path(cache), "bench")], lambda store: store.append(keys, *rows)) / SHARD_SIZE,
        }
        torch.set_num_threads(threads)
        return steps


def workload(name: str, photos: list[Path]) -> str:
    pixels = [Image.open(path).size for path in photos]
    megapixels = np.mean([width * height for width, height in pixels]) / 1e6
    return f"{name}: {len(photos)} photos, {megapixels:.2f} MP on average"


def run_in_process(variant: str, photos: list[Path], params: FeaturesParams, repeats: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as job:
        json.dump({"variant": variant, "photos": [str(path) for path in photos], "params": dataclasses.asdict(params), "repeats": repeats}, job)
        job.flush()
        result = subprocess.run([sys.executable, __file__, "--job", job.name], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def report(name: str, photos: list[Path], params: FeaturesParams, repeats: int, target: tuple[str, float]) -> None:
    print(f"\n{workload(name, photos)}\n")
    results = {variant: run_in_process(variant, photos, params, repeats) for variant in VARIANTS}
    rows = [(label, results[variant]) for variant, (label, _) in VARIANTS.items()]
    if params.workers != 0:
        rows.append(("(c) pipeline, decoding in the main process (features.workers: 0)", run_in_process("pipeline", photos, dataclasses.replace(params, workers=0), repeats)))
    pipeline_rate = results["pipeline"]["images_per_second"]
    print("| variant | images/s | peak RSS MB | (c) / variant |")
    print("|---|---|---|---|")
    for label, result in rows:
        memory = f"{result['peak_rss_mb']:.0f}"
        if result["worker_peak_rss_mb"]:
            memory += f" + workers of {result['worker_peak_rss_mb']:.0f} each"
        print(f"| {label} | {result['images_per_second']:.1f} | {memory} | {pipeline_rate / result['images_per_second']:.2f} |")
    versus, wanted = target
    achieved = pipeline_rate / results[versus]["images_per_second"]
    print(f"\n(c) / {VARIANTS[versus][0][:3]} = {achieved:.2f}, target >= {wanted}: {'met' if achieved >= wanted else 'missed'}")
    steps = where_the_time_goes(photos[:: max(1, len(photos) // 64)], params)
    print("\nCPU ms per photo in (c): " + ", ".join(f"{step} {ms:.1f}" for step, ms in steps.items()))
    overlapped = available_cores() * 1000 / sum(steps.values())
    print(f"Every step perfectly overlapped on {available_cores()} cores: {overlapped:.0f} images/s, "
          f"{overlapped / results['model']['images_per_second']:.2f} x (a)")


def report_batch_sizes(photos: list[Path], params: FeaturesParams, batch_sizes: list[int], repeats: int) -> None:
    print(f"\n(a) model only by batch size, {len(photos)} AVA-sized photos\n")
    print("| batch size | images/s |")
    print("|---|---|")
    for batch_size in batch_sizes:
        result = run_in_process("model", photos, dataclasses.replace(params, batch_size=batch_size), repeats)
        print(f"| {batch_size} | {result['images_per_second']:.1f} |")


def job_main(job_file: Path) -> None:
    job = json.loads(job_file.read_text())
    params = FeaturesParams(**job["params"])
    print(json.dumps(measure_variant(job["variant"], [Path(path) for path in job["photos"]], params, job["repeats"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    parser.add_argument("--large-copies", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="instead of features.batch_size")
    parser.add_argument("--workers", type=int, help="instead of features.workers")
    parser.add_argument("--batch-sizes", default="2,4,8,16,32", help="batch sizes to time the model alone at (empty: none)")
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        return job_main(args.job)
    params = load_params().features
    params = dataclasses.replace(
        params,
        batch_size=args.batch_size or params.batch_size,
        workers=params.workers if args.workers is None else args.workers,
    )
    ava_sized = sorted(path for folder in AVA_SIZED for path in folder.glob("*.jpg"))
    camera_sized = sorted(args.large.glob("*.jpg")) * args.large_copies
    if not ava_sized or not camera_sized:
        sys.exit(f"no photos: run from the repo root, and pass --large with camera-sized JPEGs (looked in {args.large})")
    print(f"{params.backbone} {params.pooling} at {params.resolution} px, batch {params.batch_size}, workers {'auto' if params.workers is None else params.workers}, "
          f"device {choose_device(params.device)}, {torch.get_num_threads()} torch threads; statistics at {ANALYSIS_SIDE} px")
    report("AVA-sized photos", ava_sized, params, args.repeats, ("model", 0.9))
    report("Camera-sized photos", camera_sized, params, args.repeats, ("naive", 3.0))
    if args.batch_sizes:
        report_batch_sizes(ava_sized[:BATCH_SIZE_PHOTOS], params, [int(size) for size in args.batch_sizes.split(",")], args.repeats)


if __name__ == "__main__":
    main()
