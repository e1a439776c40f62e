"""Throughput of `keeptrash cull` on 200 distinct camera-sized photos, end to end.

Run from the repo root after `dvc repro` (it uses models/model.cbm):
    python benchmarks/cull.py [--photos 200] [--large ../shared/data/large]

The photos are made from the camera-sized JPEGs in --large: each is a different crop (85-100%
of the frame), sometimes mirrored, re-encoded at quality 90, so every file is 2-14 MP and has its
own bytes (the feature cache cannot recognise one as another). Three runs, each a fresh process:
  cold  - empty feature cache: every photo is decoded and run through the CNN, plus the contact sheet
  warm  - the same folder again: features come from the cache, thumbnails are still decoded
  copy  - warm, and copying every photo into keep/ and trash/
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from keeptrash import paths


def make_photos(large: Path, folder: Path, count: int) -> None:
    sources = sorted(large.glob("*.jpg"))
    if not sources:
        sys.exit(f"{large}: no .jpg photos; pass --large with camera-sized JPEGs")
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for index in range(count):
        target = folder / f"IMG_{index:04d}.jpg"
        if target.exists():
            continue
        with Image.open(sources[index % len(sources)]) as image:
            width, height = image.size
            scale = rng.uniform(0.85, 1.0)
            crop_w, crop_h = int(width * scale), int(height * scale)
            left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
            photo = image.convert("RGB").crop((left, top, left + crop_w, top + crop_h))
            if rng.random() < 0.5:
                photo = ImageOps.mirror(photo)
            photo.save(target, "JPEG", quality=90)


def run_cull(folder: Path, out: Path, cache: Path, *extra: str) -> tuple[float, str]:
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(folder), "--model", str(paths.MODEL), "--out", str(out), *extra]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"KEEPTRASH_FEATURE_CACHE": str(cache)}, check=True)
    return time.perf_counter() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keeptrash-cull-bench-") as scratch:
        scratch = Path(scratch)
        folder = scratch / "photos"
        make_photos(args.large, folder, args.photos)
        megapixels = sum(Image.open(path).size[0] * Image.open(path).size[1] for path in folder.iterdir()) / 1e6
        size_mb = sum(path.stat().st_size for path in folder.iterdir()) / 1e6
        print(f"{args.photos} photos, {megapixels / args.photos:.1f} MP and {size_mb / args.photos:.1f} MB each on average; "
              f"{os.cpu_count()} CPU cores")
        print("| run | seconds | photos/s | scoring seconds |")
        print("|---|---|---|---|")
        for name, extra in (("cold", ()), ("warm", ()), ("copy", ("--copy",))):
            seconds, stdout = run_cull(folder, scratch / f"out-{name}", scratch / "cache", *extra)
            scoring = re.search(r"scoring ([\d.]+) s", stdout).group(1)
            print(f"| {name} | {seconds:.1f} | {args.photos / seconds:.1f} | {scoring} |")


if __name__ == "__main__":
    main()
