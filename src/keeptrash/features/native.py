"""Measures a photographer takes at 100 %: focus, noise, shake and exposure on the photo's full-resolution pixels.

The model's 500-px view and image_stats' 512-px copy average a camera-sized photo's noise away (an 8-times
downscale divides its standard deviation by about 8) and hide a slightly missed focus (issue 27). These measures
read the whole-resolution luminance in TILE-pixel tiles instead:

- sharpness: the Laplacian's variance with the noise's share removed (as image_stats does), in the sharpest
  SHARPEST_TILES tiles, where the subject usually is: a sharp subject on a blurred background is not soft. Also
  relative to the tiles' own contrast, so a darker take of the same focus is not called softer.
- noise: Immerkaer's estimate in the flattest mid-tone tiles, where image detail does not pass for noise.
- shake: the gradients' structure tensor in the sharpest tiles; a shake smears edges along one direction, so the
  gradient energy along it falls: anisotropy (0 isotropic, towards 1 one direction only) and that direction.
- exposure in EV: the log-average linear luminance (what a camera's meter averages) relative to 18 % grey, and
  the shares of clipped highlights (a channel at 254 or more) and crushed shadows (every channel at 2 or less).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

TILE = 256
SHARPEST_TILES = 3
# The flattest share of mid-tone tiles the noise is read from; black and white tiles are clipped, so noiseless.
FLAT_SHARE = 0.1
MID_TONES = (0.08, 0.92)
# The 4-neighbour Laplacian's gain on white noise (see image_stats.LAPLACIAN_NOISE_GAIN) and its floor.
LAPLACIAN_NOISE_GAIN = 20
SHARPNESS_FLOOR = 1e-7
MID_GREY = 0.18
NATIVE_NAMES = (
    "sharpness_native",
    "sharpness_relative",
    "noise_native",
    "shake_anisotropy",
    "shake_direction",
    "exposure_ev",
    "highlights_clipped_native",
    "shadows_clipped_native",
)


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Linear light from sRGB values in 0..1: the inverse of the sRGB transfer curve."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _tiles(array: np.ndarray, tile: int) -> np.ndarray:
    """(rows, columns, tile, tile) views of the whole tiles of a 2-D array."""
    rows, columns = array.shape[0] // tile, array.shape[1] // tile
    return array[: rows * tile, : columns * tile].reshape(rows, tile, columns, tile).swapaxes(1, 2)


def _tile_size(shape: tuple[int, int]) -> int:
    """TILE, or smaller for a photo too small to hold a few tiles of it (at least 4 x 4 tiles)."""
    return max(16, min(TILE, min(shape) // 4))


def native_measures(rgb: np.ndarray) -> np.ndarray:
    """The NATIVE_NAMES measures of a full-resolution 8-bit RGB array (height, width, 3), in that order."""
    encoded = rgb.astype(np.float32) / 255.0
    luma = encoded @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    tile = _tile_size(luma.shape)
    laplacian = np.zeros_like(luma)
    across, down = np.diff(luma, n=2, axis=1), np.diff(luma, n=2, axis=0)
    laplacian[1:-1, 1:-1] = across[1:-1] + down[:, 1:-1]
    immerkaer = np.zeros_like(luma)
    immerkaer[1:-1, 1:-1] = np.abs(np.diff(across, n=2, axis=0))
    # Each tile's measures; the one-pixel frame the filters leave at zero is inside the edge tiles only.
    laplacian_variance = _tiles(laplacian, tile).var(axis=(2, 3)).ravel()
    tile_noise = (np.sqrt(np.pi / 2) * _tiles(immerkaer, tile).mean(axis=(2, 3)) / 6).ravel()
    tile_mean, tile_contrast = _tiles(luma, tile).mean(axis=(2, 3)).ravel(), _tiles(luma, tile).var(axis=(2, 3)).ravel()

    mid = (tile_mean > MID_TONES[0]) & (tile_mean < MID_TONES[1])
    candidates = np.flatnonzero(mid) if mid.any() else np.arange(len(tile_mean))
    flattest = candidates[np.argsort(tile_contrast[candidates])[: max(1, round(FLAT_SHARE * len(candidates)))]]
    noise = float(np.median(tile_noise[flattest]))

    detail = np.maximum(laplacian_variance - LAPLACIAN_NOISE_GAIN * noise**2, SHARPNESS_FLOOR)
    sharpest = np.argsort(detail)[-SHARPEST_TILES:]
    sharpness = float(np.log10(detail[sharpest].mean()))
    relative = float(np.log10(detail[sharpest].mean() / max(float(tile_contrast[sharpest].mean()), SHARPNESS_FLOOR)))

    anisotropy, direction = _shake(luma, tile, sharpest)
    linear = srgb_to_linear(encoded) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    exposure_ev = float(np.log2(np.exp(np.log(linear + 1e-4).mean()) / MID_GREY))
    highlights = float((rgb.max(axis=2) >= 254).mean())
    shadows = float((rgb.max(axis=2) <= 2).mean())
    return np.array([sharpness, relative, noise, anisotropy, direction, exposure_ev, highlights, shadows], dtype=np.float32)


def _shake(luma: np.ndarray, tile: int, sharpest: np.ndarray) -> tuple[float, float]:
    """Anisotropy and direction (degrees, 0 horizontal, counter-clockwise, 0..180) of the weakest gradients."""
    columns = luma.shape[1] // tile
    tensor = np.zeros((2, 2))
    for index in sharpest:
        row, column = divmod(int(index), columns)
        patch = luma[row * tile : (row + 1) * tile, column * tile : (column + 1) * tile]
        gx, gy = np.diff(patch, axis=1)[:-1], np.diff(patch, axis=0)[:, :-1]
        # image rows grow downwards; the direction is reported with y upwards, as an angle in a photo is read
        gy = -gy
        tensor += [[(gx * gx).mean(), (gx * gy).mean()], [(gx * gy).mean(), (gy * gy).mean()]]
    values, vectors = np.linalg.eigh(tensor)  # ascending: the first is the direction the gradients are weakest in
    anisotropy = float(1 - values[0] / values[1]) if values[1] > 0 else 0.0
    direction = float(np.degrees(np.arctan2(vectors[1, 0], vectors[0, 0])) % 180)
    return anisotropy, direction


def decoded_once(path: Path, view_side: int) -> tuple[np.ndarray, Image.Image]:
    """The full-resolution upright pixels for the native measures and, from the same decode, a view at least
    view_side pixels on its short side for the CNN and image_stats, reduced by an integer box filter (cheap)."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    factor = max(1, min(upright.size) // view_side)
    return np.asarray(upright), upright.reduce(factor) if factor > 1 else upright
