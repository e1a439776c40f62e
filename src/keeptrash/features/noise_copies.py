"""Noisy copies of a few photos, extracted like any photo: what sensor noise alone does to the embedding.

A noisy take of a scene is worse than the clean one, and nothing else about it differs: the one thing about photo
quality that is known without asking anyone. On the demo photos more measured noise comes with more fine texture,
which people like, so a model that learns from rated photos alone is indifferent to noise or rewards it, and ranks a
high-ISO take level with the clean original (issues 13 and 16). With train.noise_penalty the train stage gives
CatBoost the training photos' copies too, each scored below its photo (keeptrash.model.model_inputs).

The copies' noise is shot-like (its strength follows the square root of brightness, as photon noise does), luminance
plus colour, at NOISE_LEVELS. It is deliberately not the noise the analyze stage evaluates with (flat Gaussian per
channel, and a flat luminance-plus-colour high-ISO take), so the evaluation measures whether what the model learns
from one kind of noise carries over to others.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image

from keeptrash.images import open_photo

# Bump when the copies change: their cache keys carry it, so older copies are not reused.
NOISE_COPIES_VERSION = 1


class NoiseLevel(NamedTuple):
    luminance: float  # the noise's standard deviations in 8-bit levels at mid-grey
    colour: float
    penalty_share: float  # the share of train.noise_penalty by which a copy's score target lies below its photo's


NOISE_LEVELS = (NoiseLevel(10.0, 4.0, 0.5), NoiseLevel(26.0, 9.0, 1.0))


def shot_noise(image: Image.Image, luminance: float, colour: float, seed: int) -> Image.Image:
    """High-ISO-like noise whose strength follows the square root of brightness, so shadows are less noisy than highlights."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float64)
    brightness = np.sqrt(np.clip(pixels.mean(axis=2, keepdims=True), 1.0, 255.0) / 128.0)
    noise = brightness * (rng.normal(0, luminance, size=pixels.shape[:2])[..., None] + rng.normal(0, colour, size=pixels.shape))
    return Image.fromarray(np.clip((pixels + noise).round(), 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class NoisyCopy:
    """A photo loader (keeptrash.features.extract.PhotoLoader) that adds shot_noise to the upright photo, seeded by its bytes."""

    path: str
    sha256: str
    luminance: float
    colour: float

    def __call__(self, decode_side: int, long_side: int = 0) -> tuple[Image.Image, tuple[int, int]]:
        image, size = open_photo(Path(self.path), decode_side, long_side)
        seed = int(self.sha256[:8], 16) + int(self.luminance * 1000)
        return shot_noise(image, self.luminance, self.colour, seed), size

    @property
    def cache_key(self) -> str:
        """The copy's key in the feature cache: no real file's sha256, and a new one for every version and level."""
        return hashlib.sha256(f"noisy-copy|v{NOISE_COPIES_VERSION}|{self.sha256}|{self.luminance}|{self.colour}".encode()).hexdigest()


def copies_of(photos: pd.DataFrame, count: int) -> pd.DataFrame:
    """The noisy copies of `count` verified photos (key, path, sha256), chosen by sha256 order, which is unrelated to
    their labels or splits: one row per copy with the photo's key, the copy's level, its penalty share and its loader."""
    chosen = photos.sort_values("sha256", kind="stable").drop_duplicates("sha256").head(count)
    return pd.DataFrame(
        [
            {"key": row.key, "level": level, "penalty_share": noise.penalty_share, "loader": NoisyCopy(str(row.path), row.sha256, noise.luminance, noise.colour)}
            for row in chosen.itertuples()
            for level, noise in enumerate(NOISE_LEVELS)
        ],
        columns=["key", "level", "penalty_share", "loader"],
    )
