"""Where each stage reads and writes; dvc.yaml declares the same paths as deps and outs."""

from pathlib import Path

METADATA = Path("data/metadata.parquet")
LABELS = Path("data/labels.parquet")
MANIFEST = Path("data/manifest.parquet")
FEATURES = Path("data/features.parquet")
NOISE_COPIES = Path("data/noise_copies.parquet")
MODEL = Path("models/model.cbm")
PREDICTIONS = Path("data/test_predictions.parquet")

METRICS = Path("metrics")
METADATA_METRICS = METRICS / "metadata.json"
LABELS_METRICS = METRICS / "labels.json"
DOWNLOAD_METRICS = METRICS / "download.json"
FEATURES_METRICS = METRICS / "features.json"
TRAIN_METRICS = METRICS / "train.json"
TRAIN_CURVES = METRICS / "train_curves"
BENCHMARK_METRICS = METRICS / "benchmark.json"
BENCHMARK_PLOTS = METRICS / "benchmark_plots"
SUMMARY_METRICS = METRICS / "summary.json"
ANALYSIS_METRICS = METRICS / "analysis.json"
ANALYSIS_PLOTS = METRICS / "analysis"
