"""Graded synthetic degradations of test photos: a model that judges quality should score them lower as they worsen."""

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter
from scipy.stats import spearmanr

from keeptrash.images import open_photo

# Bump when a degradation or its levels change: cached features of degraded photos are keyed by it.
DEGRADATION_VERSION = 1


def gaussian_blur(image: Image.Image, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def motion_blur(image: Image.Image, length: float) -> Image.Image:
    """A horizontal camera shake: every pixel averaged with its neighbours along a `length`-pixel line."""
    length = int(length)
    pixels = np.asarray(image, dtype=np.float64)
    before = length // 2
    padded = np.pad(pixels, ((0, 0), (before, length - 1 - before), (0, 0)), mode="edge")
    running = np.concatenate([np.zeros_like(padded[:, :1]), np.cumsum(padded, axis=1)], axis=1)
    averaged = (running[:, length:] - running[:, :-length]) / length
    return Image.fromarray(np.clip(averaged.round(), 0, 255).astype(np.uint8))


def gaussian_noise(image: Image.Image, sigma: float) -> Image.Image:
    # A fixed seed per level: every run degrades every photo identically.
    rng = np.random.default_rng(int(sigma * 1000))
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, sigma, size=(image.height, image.width, 3))
    return Image.fromarray(np.clip(pixels.round(), 0, 255).astype(np.uint8))


def jpeg_quality(image: Image.Image, quality: float) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def exposure(image: Image.Image, gain: float) -> Image.Image:
    """Brightness times `gain`, clipped: below 1 under-exposes, above 1 blows out highlights."""
    pixels = np.asarray(image, dtype=np.float64) * gain
    return Image.fromarray(np.clip(pixels.round(), 0, 255).astype(np.uint8))


def downscale(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width / factor)), max(1, round(image.height / factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


# Each degradation with its levels from mild to severe; severity 0 is the untouched photo.
DEGRADATIONS: dict[str, tuple[Callable[[Image.Image, float], Image.Image], tuple[float, ...]]] = {
    "gaussian_blur": (gaussian_blur, (1, 2, 4, 8)),
    "motion_blur": (motion_blur, (5, 11, 21, 41)),
    "noise": (gaussian_noise, (8, 16, 32, 64)),
    "jpeg_quality": (jpeg_quality, (40, 20, 10, 5)),
    "underexposure": (exposure, (0.7, 0.5, 0.3, 0.15)),
    "overexposure": (exposure, (1.4, 2.0, 3.0, 4.5)),
    "downscale": (downscale, (2, 4, 8, 16)),
}


@dataclass(frozen=True)
class DegradedPhoto:
    """A photo loader (see keeptrash.features.extract) that degrades the upright photo before features are taken."""

    path: str
    kind: str
    level: float

    def __call__(self, decode_side: int, long_side: int = 0) -> tuple[Image.Image, tuple[int, int]]:
        image, (width, height) = open_photo(Path(self.path), decode_side, long_side)
        degrade, _ = DEGRADATIONS[self.kind]
        degraded = degrade(image, self.level)
        if self.kind == "downscale":
            # The size statistics see the smaller photo, as they would for a genuinely low-resolution one.
            width, height = max(1, round(width / self.level)), max(1, round(height / self.level))
        return degraded, (width, height)


def degradation_key(sha256: str, kind: str, level: float) -> str:
    """The feature-cache key of a degraded photo: never equal to any real file's sha256."""
    return hashlib.sha256(f"degraded|v{DEGRADATION_VERSION}|{sha256}|{kind}|{level}".encode()).hexdigest()


def degradation_jobs(photos: pd.DataFrame) -> pd.DataFrame:
    """One row per (photo, degradation, level): key, sha256, kind, severity, level, cache_key, loader."""
    rows = []
    for photo in photos.itertuples():
        for kind, (_, levels) in DEGRADATIONS.items():
            for severity, level in enumerate(levels, start=1):
                rows.append(
                    {
                        "key": photo.key,
                        "kind": kind,
                        "severity": severity,
                        "level": level,
                        "cache_key": degradation_key(photo.sha256, kind, level),
                        "loader": DegradedPhoto(photo.path, kind, level),
                    }
                )
    return pd.DataFrame(rows)


def degradation_summary(original: pd.Series, degraded: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Mean keep probability per severity for each degradation, and how monotonically it falls.

    original: keep probability of each untouched photo (index: key); degraded: key, kind, severity,
    level, keep_probability. Per degradation, spearman_vs_severity is -1 for a curve that always
    falls; falling_steps is the share of the 4 steps that lower the mean; drop is original minus
    most severe. Overall monotonicity is the mean of -spearman_vs_severity (1 is perfect).
    """
    curves = {"severity": list(range(len(next(iter(DEGRADATIONS.values()))[1]) + 1))}
    metrics = {}
    for kind, (_, levels) in DEGRADATIONS.items():
        rows = degraded[degraded["kind"] == kind]
        means = [float(original.mean())] + [float(rows.loc[rows["severity"] == s, "keep_probability"].mean()) for s in range(1, len(levels) + 1)]
        curves[kind] = [round(mean, 4) for mean in means]
        steps = np.diff(means)
        metrics[kind] = {
            "levels": list(levels),
            "mean_keep_probability": curves[kind],
            "spearman_vs_severity": round(float(spearmanr(range(len(means)), means).statistic), 4),
            "falling_steps": round(float((steps < 0).mean()), 4),
            "drop": round(means[0] - means[-1], 4),
        }
    overall = {
        "photos": int(len(original)),
        "monotonicity": round(float(np.mean([-entry["spearman_vs_severity"] for entry in metrics.values()])), 4),
        **metrics,
    }
    return pd.DataFrame(curves), overall
