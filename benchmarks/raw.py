"""Camera RAW files: reading the embedded preview against decoding, and `keeptrash cull` on RAW and RAW+JPEG folders.

Run from the repo root after `dvc repro` (cull uses models/model.cbm, or --model):
    python benchmarks/raw.py [--photos 28] [--large ../shared/data/large] [--raw ../shared/data/raw]

The DNGs are written from the camera-sized JPEGs in --large at their full size (1.9-14.7 MP) by tests/raw_files.py:
a Bayer mosaic LibRaw demosaics, and a full-size JPEG preview as Canon and Nikon bodies embed one. Per file, the
median wall and CPU milliseconds of:
  - rawpy (LibRaw) extract_thumb, and python-exiv2's PreviewManager, each reading the largest preview's bytes;
  - open_raw as cull runs it: the preview decoded at a reduced scale to the 512 px the model and statistics need;
  - LibRaw's half-size decode (the fallback) and its full decode (AHD demosaicing).
Then each library on the real, cut-short camera files of --raw (what each finds, or the error it raises), and
`keeptrash cull` (a fresh process each: cold caches, then warm; after one warm-up run that exports the backbone) on
a folder of DNGs with previews, one without (every file decoded, then read back from the decode cache), and one of
RAW+JPEG pairs. The machine may be shared: the load average is printed, and CPU time is the steadier figure.
"""

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import exiv2
import rawpy
from PIL import Image

from keeptrash import paths
from keeptrash.raw import DECODE_CACHE_ENV, open_raw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from raw_files import write_dng  # noqa: E402  (the tests' DNG writer)

exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)


def rawpy_preview(path: Path) -> bytes:
    with rawpy.imread(str(path)) as raw:
        return raw.extract_thumb().data


def exiv2_preview(path: Path) -> bytes:
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    manager = exiv2.PreviewManager(image)
    largest = max(manager.getPreviewProperties(), key=lambda properties: properties.width_ * properties.height_)
    return bytes(manager.getPreviewImage(largest).data())


def half_size_decode(path: Path) -> None:
    with rawpy.imread(str(path)) as raw:
        raw.postprocess(half_size=True, use_camera_wb=True)


def full_decode(path: Path) -> None:
    with rawpy.imread(str(path)) as raw:
        raw.postprocess(use_camera_wb=True)


def timed(read: Callable[[Path], object], files: list[Path]) -> tuple[float, float]:
    """Median wall and CPU milliseconds per file."""
    walls, cpus = [], []
    for path in files:
        wall, cpu = time.perf_counter(), time.process_time()
        read(path)
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (time.process_time() - cpu))
    return statistics.median(walls), statistics.median(cpus)


def outcome(read: Callable[[Path], bytes], path: Path) -> str:
    try:
        data = read(path)
    except Exception as error:  # noqa: BLE001 - each library's own failure, reported as it is
        return f"{type(error).__name__}: {error.args[-1] if error.args else ''}"
    try:
        with Image.open(io.BytesIO(data)) as preview:
            preview.load()
            return f"{preview.width}x{preview.height} {preview.format}"
    except (OSError, ValueError) as error:
        return f"{len(data)} bytes that do not decode ({error})"


def write_cards(large: Path, folder: Path, count: int) -> dict[str, Path]:
    """Folders of DNGs with full-size previews, of DNGs without, and of RAW+JPEG pairs, from the photos in large."""
    sources = sorted(large.glob("*.jpg"))
    cards = {name: folder / name for name in ("raw", "raw-no-preview", "raw+jpeg")}
    for card in cards.values():
        card.mkdir(parents=True)
    for index in range(count):
        with Image.open(sources[index % len(sources)]) as image:
            photo = image.convert("RGB")
        if index >= len(sources):
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # bytes of its own: the caches cannot recognise it
        stem = f"IMG_{index:04d}"
        write_dng(photo, cards["raw"] / f"{stem}.dng", preview_side=max(photo.size))
        write_dng(photo, cards["raw-no-preview"] / f"{stem}.dng", preview_side=None)
        write_dng(photo, cards["raw+jpeg"] / f"{stem}.dng", preview_side=max(photo.size))
        photo.save(cards["raw+jpeg"] / f"{stem}.jpg", "JPEG", quality=92)
    return cards


def run_cull(card: Path, out: Path, model: Path, scratch: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the process and its workers) and stdout of one `keeptrash cull` dry run."""
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(card), "--model", str(model), "--out", str(out)]
    environment = os.environ | {"KEEPTRASH_FEATURE_CACHE": str(scratch / "features"), DECODE_CACHE_ENV: str(scratch / "decodes")}
    before, started = os.times(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    seconds, after = time.perf_counter() - started, os.times()
    return seconds, (after.children_user - before.children_user) + (after.children_system - before.children_system), result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=28)
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    parser.add_argument("--raw", type=Path, default=Path("../shared/data/raw"))
    parser.add_argument("--model", type=Path, default=paths.MODEL)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{load:.1f}' for load in os.getloadavg())}; {os.cpu_count()} CPU cores; "
          f"LibRaw {'.'.join(map(str, rawpy.libraw_version))}, Exiv2 {exiv2.version()}")
    with tempfile.TemporaryDirectory(prefix="keeptrash-raw-bench-") as scratch:
        scratch = Path(scratch)
        cards = write_cards(args.large, scratch / "cards", args.photos)
        with_preview = sorted(cards["raw"].glob("*.dng"))
        megapixels = statistics.mean(Image.open(path).size[0] * Image.open(path).size[1] for path in sorted(args.large.glob("*.jpg"))) / 1e6
        print(f"\n{len(with_preview)} DNGs, {megapixels:.1f} MP on average, each with a full-size JPEG preview\n")
        print("| per file | median ms | median CPU ms |\n|---|---|---|")
        os.environ[DECODE_CACHE_ENV] = str(scratch / "decodes-timing")
        for name, read in (
            ("preview bytes, rawpy extract_thumb", rawpy_preview),
            ("preview bytes, exiv2 PreviewManager", exiv2_preview),
            ("preview at 512 px, upright (open_raw)", lambda path: open_raw(path, 128, 512)),
            ("half-size decode (LibRaw)", half_size_decode),
            ("full decode (LibRaw, AHD)", full_decode),
        ):
            wall, cpu = timed(read, with_preview)
            print(f"| {name} | {wall:.1f} | {cpu:.1f} |")
        print("\n| real camera file | rawpy extract_thumb | exiv2 PreviewManager |\n|---|---|---|")
        for path in sorted(args.raw.iterdir()):
            if path.suffix != ".txt":
                print(f"| {path.name} | {outcome(rawpy_preview, path)} | {outcome(exiv2_preview, path)} |")
        # The backbone is exported to ONNX once per feature cache: done here, so no measured run pays for it.
        warm_up = scratch / "warm-up"
        warm_up.mkdir()
        Image.new("RGB", (64, 64), (90, 120, 60)).save(warm_up / "warm-up.jpg")
        run_cull(warm_up, scratch / "out-warm-up", args.model, scratch)
        startup, startup_cpu, _ = run_cull(warm_up, scratch / "out-start-up", args.model, scratch)
        print(f"\nA cull of one small cached JPEG (process start, model load): {startup:.1f} s, {startup_cpu:.1f} CPU s.\n")
        print(f"| keeptrash cull, {args.photos} shots | run | seconds | CPU s | CPU s per shot beyond start-up | shots/s after model load |")
        print("|---|---|---|---|---|---|")
        for name, card in cards.items():
            for run in ("cold", "warm"):
                seconds, cpu, stdout = run_cull(card, scratch / f"out-{name}-{run}", args.model, scratch)
                if not re.search(r"skipped 0\b", stdout):
                    sys.exit(f"cull skipped photos of {card}:\n{stdout}")
                # cull counts files: a RAW+JPEG shot is two.
                files_per_second = float(re.search(r"([\d.]+) images/s", stdout).group(1))
                shots_per_second = files_per_second * args.photos / len(list(card.iterdir()))
                print(f"| {name} | {run} | {seconds:.1f} | {cpu:.1f} | {(cpu - startup_cpu) / args.photos:.3f} | {shots_per_second:.2f} |")
    print(f"\nload average after: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
