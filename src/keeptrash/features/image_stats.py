"""Image statistics that photographers judge a photo by, computed on a fixed-size analysis copy.

All measures but the size ones are taken at ANALYSIS_SIDE pixels on the long side, so a 12 MP
phone photo and a 500 px web image are measured on the same scale.
"""

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 512
STAT_NAMES = (
    "sharpness",
    "noise",
    "exposure",
    "highlights_clipped",
    "shadows_clipped",
    "contrast",
    "saturation",
    "colourfulness",
    "width",
    "height",
    "megapixels",
    "aspect",
)
# Immerkaer (1996), "Fast noise variance estimation": a mask that cancels image structure up to second order.
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)


def _convolve3x3(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' 3x3 correlation, written as nine shifted sums (small kernels need no FFT or scipy)."""
    height, width = plane.shape
    out = np.zeros((height - 2, width - 2), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * plane[dy : dy + height - 2, dx : dx + width - 2]
    return out


def image_statistics(image: Image.Image, original_size: tuple[int, int]) -> np.ndarray:
    """Statistics of an RGB image whose orientation is already corrected; original_size is (width, height)."""
    analysis = image.copy()
    analysis.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(analysis, dtype=np.float32) / 255.0
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if min(luminance.shape) >= 3:
        sharpness = float(np.log10(1e-8 + _convolve3x3(luminance, _LAPLACIAN).var()))
        noise = float(np.sqrt(np.pi / 2) * np.abs(_convolve3x3(luminance, _NOISE_MASK)).mean() / 6)
    else:
        sharpness, noise = np.nan, np.nan
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red_green, yellow_blue = red - green, 0.5 * (red + green) - blue
    # Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images".
    colourfulness = float(
        np.hypot(red_green.std(), yellow_blue.std()) + 0.3 * np.hypot(red_green.mean(), yellow_blue.mean())
    )
    saturation = float(np.asarray(analysis.convert("HSV"), dtype=np.float32)[..., 1].mean() / 255.0)
    width, height = original_size
    return np.array(
        [
            sharpness,
            noise,
            float(luminance.mean()),
            float((luminance >= 250 / 255).mean()),
            float((luminance <= 5 / 255).mean()),
            float(luminance.std()),
            saturation,
            colourfulness,
            width,
            height,
            width * height / 1e6,
            width / height,
        ],
        dtype=np.float32,
    )
