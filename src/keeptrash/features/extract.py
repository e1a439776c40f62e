"""Extract features for every verified photo, computing only those the cache does not have yet."""

import ctypes
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.features import FINAL_MAP_SUFFIX, PREPROCESSING_VERSION
from keeptrash.features.backbones import BACKBONES, Backbone
from keeptrash.features.image_stats import ANALYSIS_SIDE, image_statistics
from keeptrash.features.runtimes import EXPORTS_FOLDER, ExportedEmbedder, embedded_by_shape, exported_model
from keeptrash.features.store import FeatureStore
from keeptrash.images import DECODE_ERRORS, ImageTooLarge, decode_failure, open_photo, pixel_limit
from keeptrash.params import FeaturesParams

# Features are flushed to the cache every this many images, which bounds the work an interruption loses.
SHARD_SIZE = 256
# Batches each worker keeps ready ahead of the main process.
PREFETCH_BATCHES = 2


def cache_namespace(params: FeaturesParams) -> str:
    # A RAW's features depend on whether its preview or its decode is read; auto follows the resolution, already named.
    raw = f"-rawpreview{params.raw_preview_side}px" if params.raw_preview_side else ""
    return f"{params.backbone}-{params.pooling}-{params.resolution}px{raw}-v{PREPROCESSING_VERSION}"


def embedding_columns(backbone: Backbone, pooling: str) -> list[str]:
    """cnn_0000, cnn_0001, ...; a column that pools a final feature map ends in FINAL_MAP_SUFFIX, so what learns from
    the embedding can weigh the final map against the blocks (keeptrash.model.model_inputs.RidgeScore)."""
    return [f"cnn_{index:04d}{FINAL_MAP_SUFFIX if final else ''}" for index, final in enumerate(backbone.final_map_columns(pooling))]


# Given the least short and long sides to decode at, an upright RGB image and the size statistics should report.
PhotoLoader = Callable[[int, int], tuple[Image.Image, tuple[int, int]]]


def photo_file(path: str | Path, raw_preview_side: int | None = None) -> PhotoLoader:
    """Opens the photo at the sides asked; a RAW file's preview must also reach raw_preview_side (features.raw_preview_side)."""
    return functools.partial(open_photo, Path(path), raw_preview_side=raw_preview_side or 0)


# The model sees the whole photo, except that a long side beyond this many short sides is cut first:
# otherwise a 40000 x 1 strip would reach the model as a 500 x 1 sliver no convolution can read.
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


def working_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """(width, height) with the long side at `resolution` and the aspect ratio kept."""
    width, height = size
    scale = resolution / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def model_input(image: Image.Image, resolution: int) -> torch.Tensor:
    """The whole photo (extreme strips cut to MAX_ASPECT) resized to `resolution` on its long side, as uint8 (3, H, W).

    Small photos are enlarged too, so every photo reaches the network at one scale and a downscaled
    photo looks as soft to it as it would to a person viewing it at that size.
    """
    band = central_band(image)
    resized = band.resize(working_size(band.size, resolution), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1)


class PhotoDataset(Dataset):
    """Model input and statistics per photo; a photo that fails to decode yields its reason instead."""

    def __init__(self, loaders: list[PhotoLoader], resolution: int, max_pixels: int):
        self.loaders, self.max_pixels, self.resolution = loaders, max_pixels, resolution
        # Decoding at a reduced JPEG scale must still cover the working size (also of a strip's central band)
        # and the statistics' analysis copy.
        self.short_side, self.long_side = -(-resolution // MAX_ASPECT), max(resolution, ANALYSIS_SIDE)

    def __len__(self) -> int:
        return len(self.loaders)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str]:
        try:
            with pixel_limit(self.max_pixels):
                image, original_size = self.loaders[index](self.short_side, self.long_side)
        except ImageTooLarge as error:
            return index, None, None, f"too large: {error}"
        except DECODE_ERRORS as error:
            return index, None, None, decode_failure(error)
        return index, model_input(image, self.resolution), image_statistics(image, original_size), ""


def _collate(items: list[tuple]) -> tuple[list[int], list[torch.Tensor] | None, np.ndarray | None, list[tuple[int, str]]]:
    """Photos of one batch keep their own shapes (the whole photo, any aspect ratio); the embedder groups equal ones."""
    decoded = [item for item in items if item[1] is not None]
    failures = [(index, reason) for index, pixels, _, reason in items if pixels is None]
    if not decoded:
        return [], None, None, failures
    return (
        [index for index, *_ in decoded],
        [pixels for _, pixels, _, _ in decoded],
        np.stack([stats for _, _, stats, _ in decoded]),
        failures,
    )


def choose_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise KeeptrashError("features.device is cuda but no CUDA GPU is visible; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory_for_reuse() -> None:
    """Make glibc's malloc keep the memory of freed activations for the next batch instead of returning it.

    By default blocks above a few MB are mapped fresh and unmapped on free, so every forward pass on
    a CPU faulted its activations in again page by page: measured on 2 cores, 3,500 page faults per
    photo and half the speed (efficientnet_lite0, batch 4: 58 photos/s, 108 with this). Other C
    libraries are left alone.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    # Both are needed: a fixed trim threshold alone switches off glibc's adaptive mmap threshold.
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


class Embedder:
    """The backbone on a device: uint8 model inputs (3, H, W) of any sizes in, float32 embeddings (N, dim) out."""

    def __init__(self, backbone: Backbone, pooling: str, device: torch.device):
        self.device = device
        if device.type == "cpu":
            keep_freed_memory_for_reuse()
        # Channels-last lets oneDNN (CPU) and cuDNN (GPU) run the depthwise convolutions without layout copies.
        self.model = backbone.build(pooling).eval().to(device, memory_format=torch.channels_last)
        self.mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def __call__(self, pixels: list[torch.Tensor]) -> np.ndarray:
        """Photos of equal shape share a forward pass; the rows come back in the order given."""
        return embedded_by_shape(pixels, self._forward)

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        batch = (batch.to(self.device, non_blocking=True).float() - self.mean) / self.std
        return self.model(batch.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()


def make_embedder(params: FeaturesParams, exports_folder: Path) -> Embedder | ExportedEmbedder:
    """The backbone on the device and runtime the params ask for; exported models are cached in `exports_folder`."""
    device = choose_device(params.device)
    backbone = BACKBONES[params.backbone]
    if params.runtime == "torch" or device.type != "cpu":
        return Embedder(backbone, params.pooling, device)
    keep_freed_memory_for_reuse()
    return ExportedEmbedder(params.runtime, exported_model(backbone, params.pooling, exports_folder))


def available_cores() -> int:
    """The cores this process may use: OMP_NUM_THREADS when set (Ray sets it to an actor's CPUs), else its CPU affinity."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decoding_workers(requested: int | None) -> int:
    """Processes that decode and measure photos (and on a CPU run the model on them); `requested` None means one per core."""
    return available_cores() if requested is None else requested


def _embedded_in_worker(embed: Embedder | ExportedEmbedder, items: list[tuple]) -> tuple[list[int], np.ndarray | None, np.ndarray | None, list[tuple[int, str]]]:
    indices, pixels, statistics, failures = _collate(items)
    return indices, embed(pixels) if indices else None, statistics, failures


def extracted_batches(
    loaders: list[PhotoLoader], params: FeaturesParams, max_pixels: int, embed: Embedder | ExportedEmbedder
) -> Iterator[tuple[list[int], np.ndarray | None, np.ndarray | None, list[tuple[int, str]]]]:
    """Per batch: the indices of the photos that decoded, their embeddings and statistics, and (index, reason) of those that did not.

    Worker processes decode and measure photos in parallel. On a CPU each worker also runs the model
    on its own batches with one thread, so the cores are shared by processes rather than by the
    threads of one model, which wait for each other at every layer whenever a core is taken away,
    by a decoding worker or by another program (measured in README, "Feature extraction speed").
    A GPU is fed from this process while the workers decode.
    """
    workers = min(decoding_workers(params.workers), len(loaders))
    model_in_workers = workers > 0 and embed.device.type == "cpu"
    batches = DataLoader(
        PhotoDataset(loaders, params.resolution, max_pixels),
        batch_size=params.batch_size,
        collate_fn=functools.partial(_embedded_in_worker, embed) if model_in_workers else _collate,
        num_workers=workers,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
        pin_memory=embed.device.type == "cuda",
    )
    for indices, inputs, statistics, failures in batches:
        embeddings = inputs if model_in_workers or not indices else embed(inputs)
        yield indices, embeddings, statistics, failures


@dataclass
class ExtractedShard:
    """Photos finished together: keys with their rows of embeddings and statistics, and key -> reason for failures."""

    keys: list[str]
    embeddings: np.ndarray | None
    statistics: np.ndarray | None
    failures: dict[str, str]


def extracted_shards(
    loaders: list[PhotoLoader], keys: list[str], params: FeaturesParams, max_pixels: int, embed: Embedder | ExportedEmbedder, shard_size: int
) -> Iterator[ExtractedShard]:
    """extracted_batches grouped into shards of at least shard_size finished photos (the last may be smaller)."""
    done, embeddings, statistics, failures = [], [], [], {}

    def shard() -> ExtractedShard:
        return ExtractedShard(done, np.concatenate(embeddings) if done else None, np.concatenate(statistics) if done else None, failures)

    for indices, embedded, stats, failed in extracted_batches(loaders, params, max_pixels, embed):
        failures.update((keys[index], reason) for index, reason in failed)
        if indices:
            done.extend(keys[index] for index in indices)
            embeddings.append(embedded)
            statistics.append(stats)
        if len(done) >= shard_size:
            yield shard()
            done, embeddings, statistics, failures = [], [], [], {}
    if done or failures:
        yield shard()


def compute_missing_locally(loaders: list[PhotoLoader], keys: list[str], params: FeaturesParams, store: FeatureStore, max_pixels: int) -> dict[str, str]:
    """Run the backbone on these photos in this process, cached under their keys, flushing a shard every SHARD_SIZE images.

    Returns key -> reason for the photos that could not be decoded.
    """
    embed = make_embedder(params, store.folder.parent / EXPORTS_FOLDER)
    failures = {}
    progress = tqdm(total=len(loaders), desc=f"extracting {params.backbone} features", unit="img", disable=None)
    for shard in extracted_shards(loaders, keys, params, max_pixels, embed, SHARD_SIZE):
        store_shard(store, shard)
        failures.update(shard.failures)
        progress.update(len(shard.keys) + len(shard.failures))
    progress.close()
    return failures


def store_shard(store: FeatureStore, shard: ExtractedShard) -> None:
    if shard.keys:
        store.append(shard.keys, shard.embeddings, shard.statistics)
