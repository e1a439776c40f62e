"""The features of photos, read from the feature cache; what the cache lacks is extracted first, by the engine
features.engine names (this process, or Ray)."""

from pathlib import Path

import numpy as np
import pandas as pd

from keeptrash.errors import KeeptrashError
from keeptrash.features.backbones import BACKBONES
from keeptrash.features.extract import PhotoLoader, compute_missing_locally, embedding_columns, photo_file
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.features.noise_copies import copies_of
from keeptrash.features.store import FeatureStore
from keeptrash.params import FeaturesParams
from keeptrash.raw import RENDERING_VERSION, is_raw


def compute_missing(loaders: list[PhotoLoader], keys: list[str], params: FeaturesParams, store: FeatureStore, max_pixels: int) -> dict[str, str]:
    """Extract these photos' features into the store; key -> reason for the photos that could not be decoded."""
    if params.engine == "ray":
        from keeptrash.features.ray_engine import compute_missing_on_ray  # Ray is imported only when asked for

        return compute_missing_on_ray(loaders, keys, params, store, max_pixels)
    return compute_missing_locally(loaders, keys, params, store, max_pixels)


def loaded_features(
    loaders: dict[str, PhotoLoader], params: FeaturesParams, store: FeatureStore, max_pixels: int
) -> tuple[pd.DataFrame, dict[str, str], int]:
    """Features ("sha256" key + columns) of every photo that loads, key -> reason for those that do not, and how many were computed.

    Photos whose key is already in the cache are not loaded at all.
    """
    cached = store.digests()
    todo = {key: loader for key, loader in loaders.items() if key not in cached}
    failures = compute_missing(list(todo.values()), list(todo), params, store, max_pixels) if todo else {}
    index, embeddings, statistics = store.load()
    wanted = [key for key in loaders if key in index]
    columns = embedding_columns(BACKBONES[params.backbone], params.pooling)
    rows = [index[key] for key in wanted]
    table = pd.concat(
        [
            pd.DataFrame({"sha256": wanted}),
            # float16, as the store holds them: widening would double every later copy of the table for no information.
            # The gathered rows are a new array already; the frame takes it as it is rather than copying it again.
            pd.DataFrame(embeddings[rows] if rows else None, columns=columns, dtype=np.float16, copy=False),
            pd.DataFrame(statistics[rows] if rows else None, columns=list(STAT_NAMES)),
        ],
        axis=1,
    )
    return table, failures, len(todo) - len(failures)


def feature_table(
    paths: list[str], digests: list[str], params: FeaturesParams, store: FeatureStore, max_pixels: int
) -> tuple[pd.DataFrame, dict[str, str], int]:
    """Features of photo files keyed by their sha256; failures by path. Files with equal bytes are decoded once."""
    keys = [cache_key(path, digest) for path, digest in zip(paths, digests)]
    first_path = {}
    for path, key in zip(paths, keys):
        first_path.setdefault(key, path)
    table, failures, computed = loaded_features(
        {key: photo_file(path, params.raw_preview_side) for key, path in first_path.items()}, params, store, max_pixels
    )
    table["sha256"] = table["sha256"].map(dict(zip(keys, digests)))
    return table, {path: failures[key] for path, key in zip(paths, keys) if key in failures}, computed


def cache_key(path: str | Path, digest: str) -> str:
    """A photo's key in the feature cache: its sha256, and for a RAW file also how keeptrash renders RAW files
    (keeptrash.raw.RENDERING_VERSION). Features of the same bytes read another way are then not reused: those an older
    keeptrash cached from the thumbnail Pillow finds in a DNG's or NEF's first directory, or from an older rendering."""
    return f"{digest}-raw-v{RENDERING_VERSION}" if is_raw(path) else digest


def manifest_features(manifest: pd.DataFrame, params: FeaturesParams, store: FeatureStore, max_pixels: int) -> tuple[pd.DataFrame, int]:
    """Features by key for the verified photos of the download manifest (key, path, sha256), and how many were computed."""
    table, failures, extracted = feature_table(manifest["path"].tolist(), manifest["sha256"].tolist(), params, store, max_pixels)
    if failures:
        path, reason = next(iter(failures.items()))
        raise KeeptrashError(f"{path}: no longer decodes ({reason}); it changed after the download stage, rerun dvc repro")
    return manifest[["key", "sha256"]].merge(table, on="sha256", how="left").drop(columns="sha256"), extracted


def noise_copy_features(manifest: pd.DataFrame, count: int, params: FeaturesParams, store: FeatureStore, max_pixels: int) -> tuple[pd.DataFrame, int]:
    """Features of the noisy copies of `count` verified photos of the download manifest (features.noise_copies): the
    original's key, the copy's level and its feature columns; and how many were computed."""
    copies = copies_of(manifest, count)
    cache_keys = [loader.cache_key for loader in copies["loader"]]
    table, failures, extracted = loaded_features(dict(zip(cache_keys, copies["loader"])), params, store, max_pixels)
    if failures:
        original = copies["key"].iloc[cache_keys.index(next(iter(failures)))]
        raise KeeptrashError(f"{original}: its noisy copy does not decode ({next(iter(failures.values()))}); it changed after the download stage, rerun dvc repro")
    return copies.drop(columns="loader").assign(sha256=cache_keys).merge(table, on="sha256").drop(columns="sha256"), extracted
