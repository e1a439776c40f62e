"""Shared paths and small fixtures: real files from the repo's data folder, copied into tmp_path."""

import contextlib
import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "params.yaml"
AVA_TXT = REPO / "data" / "ava" / "AVA_partial.txt"
LIVEC_IMAGES = REPO / "data" / "sample" / "livec" / "images"
# Feature settings for tests that are not about the features themselves: the smallest that still sees the photo.
CHEAP_FEATURES = {"pooling": "last", "resolution": 160}
# A handful of real LIVE-C photos (all 500x500 RGB JPEGs).
PHOTO_NAMES = ("100.jpg", "1002.jpg", "1003.jpg", "1004.jpg", "1007.jpg")


@contextlib.contextmanager
def tiny_filesystem(folder: Path, size: str):
    """A tmpfs of `size` (e.g. "64k") mounted at folder for the duration; skips the test where mounting needs root."""
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tiny tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def download_params(**changes):
    """The committed download params with these fields changed."""
    from keeptrash.params import load_params

    return dataclasses.replace(load_params(PARAMS_YAML).download, **changes)


@pytest.fixture(scope="session")
def ava_lines() -> list[str]:
    """The first 20 lines of the shipped AVA_partial.txt, verbatim (canonical 15 columns)."""
    with AVA_TXT.open(encoding="utf-8") as handle:
        return [next(handle).rstrip("\n") for _ in range(20)]


@pytest.fixture
def photo(tmp_path) -> Path:
    """A copy of one real JPEG photo."""
    target = tmp_path / "photo.jpg"
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], target)
    return target


def copy_photos(names, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in names:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
        copies.append(folder / name)
    return copies


def train_livec_model(
    photos: int, iterations: int, cache_root: Path, path: Path, pca_components: int = 0, ridge_score: bool = False,
    objective: str = "classify",
) -> Path:
    """A CatBoost model on real features of the first `photos` LIVE-C photos (keep: MOS >= 50), stamped the
    way the train stage stamps one, so `keeptrash cull` reads its backbone, size and threshold from it."""
    import hashlib

    import pandas as pd

    from keeptrash.features.extract import cache_namespace
    from keeptrash.features.table import feature_table
    from keeptrash.features.store import FeatureStore
    from keeptrash.model.model_inputs import stamp_inputs
    from keeptrash.params import FeaturesParams, TrainParams
    from keeptrash.model.training import fit_classifier, stamp_model, training_inputs

    features_params = FeaturesParams(backbone="efficientnet_lite0", batch_size=16, device="cpu", **CHEAP_FEATURES)
    ratings = pd.read_csv(REPO / "data" / "sample" / "livec" / "labels.csv").sort_values("file").head(photos)
    paths = [str(LIVEC_IMAGES / name) for name in ratings["file"]]
    digests = [hashlib.sha256(Path(photo).read_bytes()).hexdigest() for photo in paths]
    store = FeatureStore(cache_root, cache_namespace(features_params))
    features, failures, _ = feature_table(paths, digests, features_params, store, 300_000_000)
    assert not failures
    table = pd.DataFrame(
        {
            "key": [f"own:{name}" for name in ratings["file"]], "sha256": digests, "label": (ratings["mos"] >= 50).astype(int).to_numpy(),
            "split": "train", "source": "own", "score": ratings["mos"].to_numpy(),
        }
    )
    table = table.merge(features, on="sha256")
    params = TrainParams(
        iterations=iterations, depth=4, learning_rate=0.1, l2_leaf_reg=3.0, rsm=1.0, bootstrap_type="MVS", subsample=0.8,
        feature_set="all", pca_components=pca_components, ridge_score=ridge_score, monotone_faults=False, early_stopping_rounds=0,
        class_weights="none", decision_threshold=None, seed=0, objective=objective,
    )
    spec, inputs, columns = training_inputs(table, params)
    model = fit_classifier(inputs, inputs.iloc[0:0], columns, params)
    stamp_model(model, features_params, 0.5)
    stamp_inputs(model, spec)
    model.save_model(str(path))
    return path


# Photos (the first by name) and trees of the small LIVE-C model the cull tests score with.
CULL_MODEL_PHOTOS = 60


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    """A feature cache of the module's own, which the console scripts it starts find through the environment."""
    from keeptrash.features.store import CACHE_ENV

    root = tmp_path_factory.mktemp("feature-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, cache_root) -> Path:
    """A small real model trained on CULL_MODEL_PHOTOS LIVE-C photos, for the module."""
    return train_livec_model(CULL_MODEL_PHOTOS, 60, cache_root, tmp_path_factory.mktemp("model") / "model.cbm")



@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory) -> Path:
    """The default pipeline repo (dvc_repos.build_pipeline_repo), built once for the session. Nothing runs in it:
    tests take pipeline_repo, their module's own copy."""
    from dvc_repos import build_pipeline_repo

    return build_pipeline_repo(tmp_path_factory.mktemp("demo-pipeline"))


@pytest.fixture(scope="module")
def pipeline_repo(demo_pipeline, tmp_path_factory) -> Path:
    """The module's own copy of demo_pipeline and its feature cache, which the module's commands use: its tests may run
    dvc in it and change it."""
    from dvc_repos import copy_pipeline_repo, with_its_feature_cache

    with with_its_feature_cache(copy_pipeline_repo(demo_pipeline, tmp_path_factory.mktemp("pipeline"))) as repo:
        yield repo
