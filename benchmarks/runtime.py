"""features.runtime: images/s of each runtime through the whole extraction pipeline, and agreement with torch eager.

Run from the repo root (it reads params.yaml's features section; the runtime there is ignored):
    python benchmarks/runtime.py [--large ../shared/data/large] [--ava-photos 160] [--large-copies 2] [--rounds 3]

Two workloads:
  AVA-sized    - the first --ava-photos of the LIVE-C photos (500 x 500) and the 15 AVA photos (120-800 px) in data/sample
  camera-sized - the JPEGs in --large (2-15 MP), each --large-copies times under distinct keys
Each runtime runs keeptrash's extraction (loaded_features into an empty feature store: decoding, image
statistics, the model in the worker processes with one thread each, cache writes) at the params'
backbone, pooling, resolution and batch size. The machine is shared, so the runtimes are interleaved:
every round runs each of them once on each workload, in an order rotated between rounds, and a
runtime's speed is given as its ratio to torch within the same round (the median over rounds), beside
the median images/s. The one-time ONNX export and the features' agreement with torch eager (in float16
steps, the feature store's precision) are measured first.
"""

import argparse
import dataclasses
import json
import os
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from keeptrash.features.backbones import BACKBONES
from keeptrash.features.extract import decoding_workers, photo_file
from keeptrash.features.table import loaded_features
from keeptrash.features.runtimes import RUNTIMES, SESSIONS, exported_model, float16_steps
from keeptrash.features.store import FeatureStore
from keeptrash.params import FeaturesParams, load_params

AVA_SIZED = (Path("data/sample/livec/images"), Path("data/sample/ava/images"))
MAX_PIXELS = 300_000_000
WARM_UP_PHOTOS = 8


def ava_sized(count: int) -> dict[str, Path]:
    livec, ava = (sorted(folder.glob("*.jpg")) for folder in AVA_SIZED)
    return {path.name: path for path in [*livec[: max(0, count - len(ava))], *ava]}


def camera_sized(folder: Path, copies: int) -> dict[str, Path]:
    return {f"{path.name}#{copy}": path for path in sorted(folder.glob("*.jpg")) for copy in range(copies)}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the feature workers, once an extraction has ended)."""
    return sum(usage.ru_utime + usage.ru_stime for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def extract(photos: dict[str, Path], params: FeaturesParams, root: Path) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds to extract every photo into an empty store, and the embeddings in the order given."""
    # A new namespace in `root` is an empty store whose parent folder holds the exported model.
    store = FeatureStore(root, f"features-{uuid.uuid4().hex}")
    start, start_cpu = time.perf_counter(), cpu_seconds()
    table, failures, _ = loaded_features({key: photo_file(path) for key, path in photos.items()}, params, store, MAX_PIXELS)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    if failures:
        raise SystemExit(f"photos failed to decode: {failures}")
    return seconds, cpu, table.filter(like="cnn_").to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    parser.add_argument("--ava-photos", type=int, default=160)
    parser.add_argument("--large-copies", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()

    base = load_params().features
    runtimes = ["torch", *[runtime for runtime in args.runtimes if runtime != "torch"]]
    workloads = {"AVA-sized": ava_sized(args.ava_photos), "camera-sized": camera_sized(args.large, args.large_copies)}
    if not workloads["camera-sized"]:
        parser.error(f"--large {args.large}: no .jpg photos there")
    print(f"{base.backbone} {base.pooling} {base.resolution} px, batch {base.batch_size}, {decoding_workers(base.workers)} worker processes; "
          f"{', '.join(f'{name}: {len(photos)} photos' for name, photos in workloads.items())}; load average {os.getloadavg()[0]:.1f}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        exports = root / "exported"
        start = time.perf_counter()
        exported = exported_model(BACKBONES[base.backbone], base.pooling, exports)
        export_seconds = time.perf_counter() - start
        print(f"ONNX export (once, then cached): {export_seconds:.1f} s", flush=True)
        opening = {}
        for runtime in runtimes[1:]:
            start = time.perf_counter()
            SESSIONS[runtime](exported, 1)
            opening[runtime] = time.perf_counter() - start
            print(f"{runtime}: opening a one-thread session takes {opening[runtime]:.2f} s (once per worker process and run)", flush=True)

        params = {runtime: dataclasses.replace(base, runtime=runtime) for runtime in runtimes}
        agreement = {}
        for name, photos in workloads.items():
            warm_up = dict(list(photos.items())[:WARM_UP_PHOTOS])
            reference = None
            for runtime in runtimes:
                _, _, embeddings = extract(warm_up, params[runtime], root)
                if reference is None:
                    reference = embeddings
                else:
                    steps = float16_steps(reference.astype(np.float16), embeddings.astype(np.float16))
                    agreement.setdefault(runtime, []).append(steps)

        seconds: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for round_number in range(args.rounds):
            order = runtimes[round_number % len(runtimes) :] + runtimes[: round_number % len(runtimes)]
            for name, photos in workloads.items():
                for runtime in order:
                    elapsed, used, _ = extract(photos, params[runtime], root)
                    seconds.setdefault((name, runtime), []).append(elapsed)
                    cpu.setdefault((name, runtime), []).append(used)
                    print(f"round {round_number + 1} {name:12s} {runtime:11s} {len(photos) / elapsed:6.1f} images/s, "
                          f"{1000 * used / len(photos):5.0f} ms CPU per image (load average {os.getloadavg()[0]:.1f})", flush=True)

    results = {"export_seconds": export_seconds, "session_seconds": opening, "runtimes": {}}
    print(f"\n| runtime | {' | '.join(f'{name} images/s | x torch | CPU ms/image | x torch' for name in workloads)} "
          "| max float16 steps from torch | values equal to torch's |")
    print(f"|---|{'---|---|---|---|' * len(workloads)}---|---|")
    for runtime in runtimes:
        cells, entry = [], {}
        for name, photos in workloads.items():
            rates = [len(photos) / elapsed for elapsed in seconds[(name, runtime)]]
            ratios = [torch_seconds / elapsed for torch_seconds, elapsed in zip(seconds[(name, "torch")], seconds[(name, runtime)])]
            cpu_ms = [1000 * used / len(photos) for used in cpu[(name, runtime)]]
            cpu_ratios = [torch_used / used for torch_used, used in zip(cpu[(name, "torch")], cpu[(name, runtime)])]
            entry[name] = {"images_per_second": rates, "ratio_to_torch": ratios, "cpu_ms_per_image": cpu_ms, "cpu_ratio_to_torch": cpu_ratios}
            cells.append(f"{statistics.median(rates):.1f} | {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                         f"| {statistics.median(cpu_ms):.0f} | {statistics.median(cpu_ratios):.2f} ({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})")
        if runtime in agreement:
            steps = np.concatenate([block.ravel() for block in agreement[runtime]])
            entry["max_float16_steps"], entry["equal_fraction"] = float(steps.max()), float((steps == 0).mean())
            cells += [f"{steps.max():.0f}", f"{(steps == 0).mean():.2%}"]
        else:
            cells += ["-", "-"]
        results["runtimes"][runtime] = entry
        print(f"| {runtime} | {' | '.join(cells)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
