"""Camera-sized bursts: does the model rank each real photograph above its physically faulted takes? (issue 27)

Run from the repo root after `dvc repro` (it uses models/model.cbm and the shared feature cache):
    python benchmarks/camera_bursts.py [--large ../shared/data/large] [--takes ~/.cache/keeptrash/camera_bursts]

Photos: every JPEG of --large and the photographs listed in camera_bursts_photos.tsv (Debian's wallpaper packages),
each at its native resolution (at most MAX_TAKE_PIXELS: larger ones are scaled down to it, as a 12-MP camera's
photo). Each becomes a series: the original and, per fault of keeptrash.analysis.faults, a take at each of its
three strengths. All takes, the original too, are written as JPEG quality 95 (a camera's fine JPEG), decoded once
per photo, and kept under --takes, so a rerun only scores them (their features are cached by their bytes).

Reports per fault and strength the share of series whose original ranks above that take (a series of the
original and that take), and per strength the share whose original ranks first among all the faults' takes,
each with its 95 % Wilson interval. A tie counts against the original.
"""

import argparse
import csv
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from scipy.stats import binomtest
from tqdm import tqdm

from keeptrash import paths
from keeptrash.analysis.faults import FAULTS, FAULTS_VERSION, STRENGTH_NAMES
from keeptrash.features.extract import cache_namespace
from keeptrash.features.native import NATIVE_NAMES, decoded_once, native_measures
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.features.table import feature_table
from keeptrash.images import file_digest
from keeptrash.model.trained import TrainedModel
from keeptrash.params import load_params

PHOTOS_FILE = Path(__file__).with_name("camera_bursts_photos.tsv")
MAX_TAKE_PIXELS = 12_000_000
TAKE_QUALITY = 95
ORIGINAL = "original"


def listed_photos(large: Path) -> dict[str, Path]:
    """name -> path of every photo of the benchmark; a listed photo whose package is not installed is reported."""
    if not large.is_dir():
        sys.exit(f"{large}: not a folder; pass --large with the camera-sized JPEGs (../shared/data/large from the main checkout)")
    photos = {path.stem: path for path in sorted(large.glob("*.jpg"))}
    with PHOTOS_FILE.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t"))
    missing = [row for row in rows if not Path(row["path"]).is_file()]
    if missing:
        packages = " ".join(sorted({row["debian_package"] for row in missing}))
        print(f"camera_bursts: {len(missing)} listed photos missing; apt-get install {packages}", file=sys.stderr)
    photos.update({row["name"]: Path(row["path"]) for row in rows if row not in missing})
    if not photos:
        sys.exit(f"{large}: no photos; pass --large with camera-sized JPEGs")
    return photos


def take_names(strengths: tuple[str, ...]) -> list[tuple[str, str, float]]:
    """(take, fault, strength) of every take of a series at these strengths, the original first."""
    takes = [(ORIGINAL, ORIGINAL, 0.0)]
    for fault, spec in FAULTS.items():
        takes += [(f"{fault}_{name}", fault, strength) for name, strength in zip(STRENGTH_NAMES, spec.strengths) if name in strengths]
    return takes


def camera_sized(path: Path) -> Image.Image:
    """The whole upright photo, scaled down to MAX_TAKE_PIXELS where it is larger."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    pixels = upright.width * upright.height
    if pixels > MAX_TAKE_PIXELS:
        scale = (MAX_TAKE_PIXELS / pixels) ** 0.5
        upright = upright.resize((round(upright.width * scale), round(upright.height * scale)), Image.Resampling.LANCZOS)
    return upright


def write_takes(name: str, photo: Path, folder: Path, strengths: tuple[str, ...]) -> list[dict]:
    """The series of one photo under folder/name, made where missing; a row per take."""
    series = folder / name
    wanted = [(take, fault, strength, series / f"{take}.jpg") for take, fault, strength in take_names(strengths)]
    missing = [row for row in wanted if not row[3].exists()]
    if missing:
        series.mkdir(parents=True, exist_ok=True)
        upright = camera_sized(photo)
        seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        for take, fault, strength, path in missing:
            image = upright if fault == ORIGINAL else FAULTS[fault].make(upright, strength, seed)
            partial = path.with_suffix(".partial")
            image.save(partial, "JPEG", quality=TAKE_QUALITY)
            partial.replace(path)  # a take is there whole or not at all: an interrupted run resumes
    return [{"series": name, "take": take, "fault": fault, "strength": strength, "path": str(path)} for take, fault, strength, path in wanted]


def _write_takes(item: tuple[str, Path], folder: Path, strengths: tuple[str, ...]) -> list[dict]:
    return write_takes(*item, folder, strengths)


def wilson(successes: int, trials: int) -> tuple[float, float]:
    interval = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    return round(interval.low, 3), round(interval.high, 3)


def share(wins: pd.Series) -> dict:
    successes, trials = int(wins.sum()), int(len(wins))
    return {"original_first": successes, "series": trials, "share": round(successes / trials, 3), "wilson_95": wilson(successes, trials)}


def ranking_report(takes: pd.DataFrame) -> dict:
    """Per fault and strength: the original above that take; per strength: the original above all takes at it."""
    original = takes[takes["fault"] == ORIGINAL].set_index("series")["keep_probability"]
    faulted = takes[takes["fault"] != ORIGINAL].assign(original=lambda frame: frame["series"].map(original))
    faulted = faulted.assign(original_wins=faulted["original"] > faulted["keep_probability"], strength_name=faulted["take"].str.rsplit("_", n=1).str[1])
    present = [name for name in STRENGTH_NAMES if name in set(faulted["strength_name"])]
    per_fault = {
        fault: {name: share(rows.loc[rows["strength_name"] == name, "original_wins"]) | {"strength": FAULTS[fault].strengths[STRENGTH_NAMES.index(name)]} for name in present}
        for fault, rows in faulted.groupby("fault", sort=False)
    }
    per_strength = {name: share(rows.groupby("series")["original_wins"].all()) for name, rows in faulted.groupby("strength_name", sort=False)}
    mean_probability = faulted.groupby("take", sort=False)["keep_probability"].mean().round(4).to_dict()
    return {"per_fault": per_fault, "all_faults_at_strength": per_strength, "mean_keep_probability": {ORIGINAL: round(float(original.mean()), 4), **mean_probability}}


# The native measure each fault should move, and whether higher is better: does the measure see the fault at 100 %?
FAULT_MEASURES = {
    "noise": ("noise_native", False),
    "pushed": ("noise_native", False),
    "defocus": ("sharpness_native", True),
    "shake": ("sharpness_native", True),
    "underexposed": ("exposure_ev", True),
    "overexposed": ("highlights_clipped_native", False),
    "jpeg": ("blockiness", False),
}


def measured_takes(takes: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """takes with the native measures of each take, cached in folder/native_measures.parquet by path."""
    cache = folder / "native_measures.parquet"
    known = pd.read_parquet(cache) if cache.exists() else None
    if known is None or list(known.columns) != ["path", *NATIVE_NAMES]:  # measured by another version of the measures
        known = pd.DataFrame(columns=["path", *NATIVE_NAMES])
    todo = sorted(set(takes["path"]) - set(known["path"]))
    rows = [{"path": path, **dict(zip(NATIVE_NAMES, native_measures(decoded_once(Path(path), 500)[0]).tolist()))} for path in tqdm(todo, desc="native measures", unit="take")]
    if rows:
        known = pd.concat([known, pd.DataFrame(rows)], ignore_index=True)
        known.to_parquet(cache)
    return takes.merge(known.astype({name: float for name in NATIVE_NAMES}), on="path")


def measure_report(takes: pd.DataFrame) -> dict:
    """Per fault and strength: the share of series whose original is better than the take on the fault's measure."""
    original = takes[takes["fault"] == ORIGINAL].set_index("series")
    report = {}
    for fault, (measure, higher_is_better) in FAULT_MEASURES.items():
        rows = takes[takes["fault"] == fault]
        difference = rows["series"].map(original[measure]).to_numpy() - rows[measure].to_numpy()
        better = difference > 0 if higher_is_better else difference < 0
        report[fault] = {"measure": measure} | {
            name: share(pd.Series(better[rows["take"].str.endswith(name).to_numpy()])) for name in STRENGTH_NAMES if rows["take"].str.endswith(name).any()
        }
    return report


def _cell(counts: dict) -> str:
    return f"{counts['original_first']}/{counts['series']} ({counts['share']:.2f}, {counts['wilson_95'][0]:.2f}-{counts['wilson_95'][1]:.2f})"


def measures_table(report: dict) -> str:
    present = [name for name in STRENGTH_NAMES if name in next(iter(report.values()))]
    lines = ["| fault | measure | " + " | ".join(present) + " |", "|---|---|" + "---|" * len(present)]
    lines += [f"| {fault} | `{cells['measure']}` | " + " | ".join(_cell(cells[name]) for name in present) + " |" for fault, cells in report.items()]
    return "\n".join(lines)


# A first rule for section 2 of issue 27 (the best take by comparison with its siblings), to be validated on photos
# it was not chosen on: penalties in logits of the keep probability, per decade of sharpness below the sharpest
# clean sibling, per doubling of noise above the cleanest sibling, per EV away from the series' median, per
# percentage point of highlights clipped beyond the least-clipped sibling, per doubling of blocking above the least
# blocky sibling. Noise under VISIBLE_NOISE (about one 8-bit level) and blocking under VISIBLE_BLOCKINESS are not
# seen at 100 %; a noisier take's sharpness is not trusted (its noise passes for detail), so sharpness is compared
# with the clean takes' only.
SIBLING_WEIGHTS = {"sharpness": 4.0, "noise": 2.0, "exposure": 2.0, "highlights": 0.1, "blockiness": 1.0}
VISIBLE_NOISE = 0.004
VISIBLE_BLOCKINESS = 1.0  # block edges stepping twice as much as the blocks' insides


def sibling_scores(takes: pd.DataFrame) -> pd.Series:
    series = takes.groupby("series")
    clean_sharpness = takes["sharpness_native"].where(takes["noise_native"] <= VISIBLE_NOISE)
    sharpest = clean_sharpness.groupby(takes["series"]).transform("max").fillna(series["sharpness_native"].transform("max"))
    visible_noise = takes["noise_native"].clip(lower=VISIBLE_NOISE)
    visible_blocks = takes["blockiness"].clip(lower=VISIBLE_BLOCKINESS)
    penalties = (
        SIBLING_WEIGHTS["sharpness"] * (sharpest - takes["sharpness_native"]).clip(lower=0)
        + SIBLING_WEIGHTS["noise"] * np.log2(visible_noise / visible_noise.groupby(takes["series"]).transform("min"))
        + SIBLING_WEIGHTS["exposure"] * (takes["exposure_ev"] - series["exposure_ev"].transform("median")).abs()
        + SIBLING_WEIGHTS["highlights"] * 100 * (takes["highlights_clipped_native"] - series["highlights_clipped_native"].transform("min"))
        + SIBLING_WEIGHTS["blockiness"] * (visible_blocks - visible_blocks.groupby(takes["series"]).transform("min"))
    )
    probability = takes["keep_probability"].clip(1e-6, 1 - 1e-6)
    return np.log(probability / (1 - probability)) - penalties


def markdown_table(report: dict) -> str:
    every = report["all_faults_at_strength"]
    present = [name for name in STRENGTH_NAMES if name in every]
    header = "| fault (unit) | " + " | ".join(present) + " |\n|---|" + "---|" * len(present)
    lines = [header]
    for fault, cells in report["per_fault"].items():
        row = [f"{cells[name]['strength']:g}: {_cell(cells[name])}" for name in present]
        lines.append(f"| {fault} ({FAULTS[fault].unit}) | " + " | ".join(row) + " |")
    lines.append("| all faults at once | " + " | ".join(_cell(every[name]) for name in present) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    parser.add_argument("--takes", type=Path, default=default_cache_root().parent / "camera_bursts", help="where the takes are kept between runs")
    parser.add_argument("--model", type=Path, default=paths.MODEL)
    parser.add_argument("--workers", type=int, default=2, help="processes making takes")
    parser.add_argument("--table", type=Path, help="also write every take's row (series, take, keep_probability, measures) to this parquet")
    parser.add_argument("--strengths", nargs="+", choices=STRENGTH_NAMES, default=list(STRENGTH_NAMES), help="only the takes at these strengths")
    parser.add_argument("--measures", action="store_true", help="also: does each fault's native measure (keeptrash.features.native) see it, and the ranking with sibling_scores")
    args = parser.parse_args()
    photos = listed_photos(args.large)
    folder = args.takes / f"v{FAULTS_VERSION}"
    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        made_series = pool.imap(functools.partial(_write_takes, folder=folder, strengths=tuple(args.strengths)), photos.items())
        rows = [row for series in tqdm(made_series, total=len(photos), desc="series", unit="photo") for row in series]
    takes = pd.DataFrame(rows)
    made = time.perf_counter()
    params = load_params()
    model = TrainedModel.load(args.model, params.features)
    params = dataclasses.replace(params, features=model.features)
    store = FeatureStore(default_cache_root(), cache_namespace(params.features))
    digests = [file_digest(Path(path)) for path in takes["path"]]
    extracted, failures, computed = feature_table(list(takes["path"]), digests, params.features, store, params.download.max_image_pixels)
    if failures:
        sys.exit(f"camera_bursts: a take does not decode: {next(iter(failures.values()))}")
    scored = pd.DataFrame({"sha256": digests}).merge(extracted, on="sha256", how="left")
    takes = takes.assign(keep_probability=model.keep_probability(scored))
    report = ranking_report(takes)
    megapixels = [Image.open(photo).size for photo in photos.values()]
    report |= {
        "photos": len(photos),
        "megapixels": {"min": round(min(w * h for w, h in megapixels) / 1e6, 1), "max": round(min(max(w * h for w, h in megapixels), MAX_TAKE_PIXELS) / 1e6, 1)},
        "takes": len(takes),
        "faults_version": FAULTS_VERSION,
        "seconds_making_takes": round(made - started, 1),
        "seconds_scoring": round(time.perf_counter() - made, 1),
        "takes_extracted": computed,
        "cpus": os.cpu_count(),
        "load_average": [round(load, 1) for load in os.getloadavg()],
    }
    if args.measures:
        takes = measured_takes(takes, folder)
        report["native_measures"] = measure_report(takes)
        report["with_siblings"] = ranking_report(takes.assign(keep_probability=sibling_scores(takes)))
    if args.table:
        takes.to_parquet(args.table)
    json.dump(report, sys.stdout, indent=1)
    print()
    print(markdown_table(report))
    if args.measures:
        print("\nthe original better on the fault's native measure:\n" + measures_table(report["native_measures"]))
        print("\nranked by the model's keep probability and the comparison with the siblings (SIBLING_WEIGHTS):\n" + markdown_table(report["with_siblings"]))
    worst = takes.assign(rank=takes.groupby("series")["keep_probability"].rank(ascending=False, method="min"))
    print("\nseries whose original is not first among all takes:", sorted(worst.loc[(worst["take"] == ORIGINAL) & (worst["rank"] > 1), "series"]))


if __name__ == "__main__":
    main()
