"""Extract features for every verified photo, computing only those the cache does not have yet."""

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.features.backbones import BACKBONES, Backbone
from keeptrash.features.image_stats import ANALYSIS_SIDE, STAT_NAMES, image_statistics
from keeptrash.features.store import FeatureStore
from keeptrash.images import DECODE_ERRORS, ImageTooLarge, open_photo, pixel_limit
from keeptrash.params import FeaturesParams
from keeptrash.torchvision_compat import import_torchvision

# Features are flushed to the cache every this many images, which bounds the work an interruption loses.
SHARD_SIZE = 256


def cache_namespace(params: FeaturesParams) -> str:
    return f"{params.backbone}-{params.image_size}px-v{PREPROCESSING_VERSION}"


def embedding_columns(backbone: Backbone) -> list[str]:
    return [f"cnn_{index:04d}" for index in range(backbone.dim)]


# Given the short side to decode at, an upright RGB image and the size statistics should report.
PhotoLoader = Callable[[int], tuple[Image.Image, tuple[int, int]]]


def photo_file(path: str | Path) -> PhotoLoader:
    return functools.partial(open_photo, Path(path))


# The model only ever sees a central square, so a long side beyond this many short sides is cut first:
# otherwise a 40000 x 1 strip would be resized to 256 x 10 million pixels.
MAX_ASPECT = 4


def central_band(image: Image.Image) -> Image.Image:
    """The middle of an extreme panorama or strip, at most MAX_ASPECT times as long as it is wide; others unchanged."""
    width, height = image.size
    short = min(width, height)
    if max(width, height) <= MAX_ASPECT * short:
        return image
    keep = MAX_ASPECT * short
    if width > height:
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    top = (height - keep) // 2
    return image.crop((0, top, width, top + keep))


class _PhotoDataset(Dataset):
    """Model input and statistics per photo; a photo that fails to decode yields its reason instead."""

    def __init__(self, loaders: list[PhotoLoader], image_size: int, max_pixels: int):
        transforms = import_torchvision().transforms
        self.loaders, self.max_pixels = loaders, max_pixels
        # The usual ImageNet evaluation crop: short side to size/0.875, then the central size x size square.
        self.to_model_input = transforms.Compose(
            [
                transforms.Resize(round(image_size / 0.875), antialias=True),
                transforms.CenterCrop(image_size),
                transforms.PILToTensor(),
            ]
        )
        self.decode_side = max(ANALYSIS_SIDE, round(image_size / 0.875))

    def __len__(self) -> int:
        return len(self.loaders)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str]:
        try:
            with pixel_limit(self.max_pixels):
                image, original_size = self.loaders[index](self.decode_side)
        except ImageTooLarge as error:
            return index, None, None, f"too large: {error}"
        except DECODE_ERRORS as error:
            return index, None, None, f"not a decodable image: {error}"
        return index, self.to_model_input(central_band(image)), image_statistics(image, original_size), ""


def _collate(items: list[tuple]) -> tuple[list[int], torch.Tensor | None, np.ndarray | None, list[tuple[int, str]]]:
    decoded = [item for item in items if item[1] is not None]
    failures = [(index, reason) for index, pixels, _, reason in items if pixels is None]
    if not decoded:
        return [], None, None, failures
    return (
        [index for index, *_ in decoded],
        torch.stack([pixels for _, pixels, _, _ in decoded]),
        np.stack([stats for _, _, stats, _ in decoded]),
        failures,
    )


def choose_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise KeeptrashError("features.device is cuda but no CUDA GPU is visible; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def compute_missing(loaders: list[PhotoLoader], keys: list[str], params: FeaturesParams, store: FeatureStore, max_pixels: int) -> dict[str, str]:
    """Run the backbone on these photos, cached under their keys, flushing a shard every SHARD_SIZE images.

    Returns key -> reason for the photos that could not be decoded.
    """
    backbone = BACKBONES[params.backbone]
    device = choose_device(params.device)
    model = backbone.build().eval().to(device)
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255
    failures = {}
    progress = tqdm(total=len(loaders), desc=f"extracting {params.backbone} features", unit="img", disable=None)
    with torch.inference_mode():
        for start in range(0, len(loaders), SHARD_SIZE):
            chunk = _PhotoDataset(loaders[start : start + SHARD_SIZE], params.image_size, max_pixels)
            done_keys, embeddings, statistics = [], [], []
            for indices, pixels, stats, failed in DataLoader(chunk, batch_size=params.batch_size, collate_fn=_collate):
                failures.update((keys[start + index], reason) for index, reason in failed)
                if indices:
                    batch = (pixels.to(device).float() - mean) / std
                    embeddings.append(model(batch).float().cpu().numpy())
                    statistics.append(stats)
                    done_keys.extend(keys[start + index] for index in indices)
                progress.update(len(indices) + len(failed))
            if done_keys:
                store.append(done_keys, np.concatenate(embeddings), np.concatenate(statistics))
    progress.close()
    return failures


def loaded_features(
    loaders: dict[str, PhotoLoader], params: FeaturesParams, store: FeatureStore, max_pixels: int
) -> tuple[pd.DataFrame, dict[str, str], int]:
    """Features ("sha256" key + columns) of every photo that loads, key -> reason for those that do not, and how many were computed.

    Photos whose key is already in the cache are not loaded at all.
    """
    index, embeddings, statistics = store.load()
    todo = {key: loader for key, loader in loaders.items() if key not in index}
    failures = {}
    if todo:
        failures = compute_missing(list(todo.values()), list(todo), params, store, max_pixels)
        index, embeddings, statistics = store.load()
    wanted = [key for key in loaders if key in index]
    columns = embedding_columns(BACKBONES[params.backbone])
    rows = [index[key] for key in wanted]
    table = pd.concat(
        [
            pd.DataFrame({"sha256": wanted}),
            pd.DataFrame(embeddings[rows].astype(np.float32) if rows else None, columns=columns),
            pd.DataFrame(statistics[rows] if rows else None, columns=list(STAT_NAMES)),
        ],
        axis=1,
    )
    return table, failures, len(todo) - len(failures)


def feature_table(
    paths: list[str], digests: list[str], params: FeaturesParams, store: FeatureStore, max_pixels: int
) -> tuple[pd.DataFrame, dict[str, str], int]:
    """Features of photo files keyed by their sha256; failures by path. Files with equal bytes are decoded once."""
    first_path = {}
    for path, digest in zip(paths, digests):
        first_path.setdefault(digest, path)
    table, failures, computed = loaded_features(
        {digest: photo_file(path) for digest, path in first_path.items()}, params, store, max_pixels
    )
    return table, {path: failures[digest] for path, digest in zip(paths, digests) if digest in failures}, computed


def manifest_features(manifest: pd.DataFrame, params: FeaturesParams, store: FeatureStore, max_pixels: int) -> tuple[pd.DataFrame, int]:
    """Features by key for the verified photos of the download manifest (key, path, sha256), and how many were computed."""
    table, failures, extracted = feature_table(manifest["path"].tolist(), manifest["sha256"].tolist(), params, store, max_pixels)
    if failures:
        path, reason = next(iter(failures.items()))
        raise KeeptrashError(f"{path}: no longer decodes ({reason}); it changed after the download stage, rerun dvc repro")
    return manifest[["key", "sha256"]].merge(table, on="sha256", how="left").drop(columns="sha256"), extracted
