"""Extract features for every verified photo, computing only those the cache does not have yet."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.features.backbones import BACKBONES, Backbone
from keeptrash.features.image_stats import ANALYSIS_SIDE, STAT_NAMES, image_statistics
from keeptrash.features.store import FeatureStore
from keeptrash.params import FeaturesParams
from keeptrash.torchvision_compat import import_torchvision

# Features are flushed to the cache every this many images, which bounds the work an interruption loses.
SHARD_SIZE = 256
_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def cache_namespace(params: FeaturesParams) -> str:
    return f"{params.backbone}-{params.image_size}px-v{PREPROCESSING_VERSION}"


def embedding_columns(backbone: Backbone) -> list[str]:
    return [f"cnn_{index:04d}" for index in range(backbone.dim)]


def open_photo(path: Path, decode_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """An upright RGB image at least `decode_side` on its short side where possible, and the original upright size.

    JPEGs are decoded at the smallest DCT scale that still covers decode_side (Pillow's draft mode),
    which makes camera-sized photos several times cheaper to open.
    """
    image = Image.open(path)
    width, height = image.size
    if image.getexif().get(_ORIENTATION_TAG) in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    image.draft("RGB", (decode_side, decode_side))
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB"), (width, height)


class _PhotoDataset(Dataset):
    def __init__(self, paths: list[str], image_size: int):
        transforms = import_torchvision().transforms
        self.paths = paths
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
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        path = self.paths[index]
        try:
            image, original_size = open_photo(Path(path), self.decode_side)
        except (OSError, ValueError) as error:
            raise KeeptrashError(f"{path}: no longer decodes ({error}); it changed after the download stage, rerun dvc repro") from None
        return self.to_model_input(image), image_statistics(image, original_size)


def choose_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise KeeptrashError("features.device is cuda but no CUDA GPU is visible; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def compute_missing(paths: list[str], digests: list[str], params: FeaturesParams, store: FeatureStore) -> None:
    """Run the backbone on the photos whose digests are not cached, flushing a shard every SHARD_SIZE images."""
    backbone = BACKBONES[params.backbone]
    device = choose_device(params.device)
    model = backbone.build().eval().to(device)
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255
    progress = tqdm(total=len(paths), desc=f"extracting {params.backbone} features", unit="img", disable=None)
    with torch.inference_mode():
        for start in range(0, len(paths), SHARD_SIZE):
            loader = DataLoader(_PhotoDataset(paths[start : start + SHARD_SIZE], params.image_size), batch_size=params.batch_size)
            embeddings, statistics = [], []
            for pixels, stats in loader:
                batch = (pixels.to(device).float() - mean) / std
                embeddings.append(model(batch).float().cpu().numpy())
                statistics.append(stats.numpy())
                progress.update(len(pixels))
            store.append(digests[start : start + SHARD_SIZE], np.concatenate(embeddings), np.concatenate(statistics))
    progress.close()


def feature_table(manifest: pd.DataFrame, params: FeaturesParams, store: FeatureStore) -> tuple[pd.DataFrame, int]:
    """Features of every photo in `manifest` (key, path, sha256) and how many had to be computed."""
    index, embeddings, statistics = store.load()
    unique = manifest.drop_duplicates("sha256")
    todo = unique[~unique["sha256"].isin(index)]
    if len(todo):
        compute_missing(todo["path"].tolist(), todo["sha256"].tolist(), params, store)
        index, embeddings, statistics = store.load()
    rows = manifest["sha256"].map(index).to_numpy()
    backbone = BACKBONES[params.backbone]
    table = pd.concat(
        [
            manifest[["key"]].reset_index(drop=True),
            pd.DataFrame(embeddings[rows].astype(np.float32), columns=embedding_columns(backbone)),
            pd.DataFrame(statistics[rows], columns=list(STAT_NAMES)),
        ],
        axis=1,
    )
    return table, len(todo)
