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
- blockiness: log2 of how much the JPEG blocks' edges step more than their insides, in the tiles read in full
  (0 for none; a camera's fine JPEG about 0.5, quality 15 several times that).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

TILE = 256
SHARPEST_TILES = 3
# Tiles read at full resolution for sharpness, and at most as many for noise; the rest are seen COARSE-times smaller.
CANDIDATE_TILES = 12
COARSE = 4
SAMPLE_STEP = 4
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
    "blockiness",
)
JPEG_BLOCK = 8


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Linear light from sRGB values in 0..1: the inverse of the sRGB transfer curve."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4).astype(np.float32)


LINEAR_OF_8_BIT = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Rec. 601 on the encoded values, as image_stats
_LINEAR_LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # Rec. 709 luminance of linear light


def _tiles(array: np.ndarray, tile: int) -> np.ndarray:
    """(rows, columns, tile, tile) views of the whole tiles of a 2-D array."""
    rows, columns = array.shape[0] // tile, array.shape[1] // tile
    return array[: rows * tile, : columns * tile].reshape(rows, tile, columns, tile).swapaxes(1, 2)


def _tile_size(shape: tuple[int, int]) -> int:
    """TILE, or smaller for a photo too small to hold a few tiles of it (at least 4 x 4 tiles); a multiple of COARSE."""
    return max(16, min(TILE, min(shape) // 4)) // COARSE * COARSE


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _LUMA_WEIGHTS / np.float32(255.0)


def _second_differences(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Laplacian and Immerkaer's noise mask of a tile, both built from second differences (see image_stats)."""
    across, down = np.diff(luma, n=2, axis=1), np.diff(luma, n=2, axis=0)
    return across[1:-1] + down[:, 1:-1], np.diff(across, n=2, axis=0)


def _coarse_tiles(rgb: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Each tile's mean luma and detail (its Laplacian's variance) on a COARSE-times smaller box-filtered copy: which
    tiles to read in full. The box filter averages noise down, so a noisy flat tile does not pass for a detailed one."""
    rows, columns = rgb.shape[0] // tile, rgb.shape[1] // tile
    step = tile // COARSE
    whole_tiles = np.ascontiguousarray(rgb[: rows * tile, : columns * tile, 1])
    green = np.asarray(Image.fromarray(whole_tiles).reduce(COARSE), dtype=np.float32) / 255.0  # Pillow's box filter, in C
    laplacian = np.zeros_like(green)
    laplacian[1:-1, 1:-1] = _second_differences(green)[0]
    return _tiles(green, step).mean(axis=(2, 3)).ravel(), _tiles(laplacian, step).var(axis=(2, 3)).ravel()


def native_measures(rgb: np.ndarray) -> np.ndarray:
    """The NATIVE_NAMES measures of a full-resolution 8-bit RGB array (height, width, 3), in that order.

    Only CANDIDATE_TILES tiles are read at full resolution: the most detailed and the flattest mid-tone ones of a
    coarse copy, so the cost hardly grows with the megapixels. Exposure and clipping are shares of all pixels,
    read on every SAMPLE_STEP-th row and column (still hundreds of thousands of pixels at camera size).
    """
    tile = _tile_size(rgb.shape[:2])
    columns = rgb.shape[1] // tile
    coarse_mean, coarse_detail = _coarse_tiles(rgb, tile)

    def full_tile(index: int) -> np.ndarray:
        row, column = divmod(int(index), columns)
        return _luma(rgb[row * tile : (row + 1) * tile, column * tile : (column + 1) * tile])

    mid = np.flatnonzero((coarse_mean > MID_TONES[0]) & (coarse_mean < MID_TONES[1]))
    candidates = mid if len(mid) else np.arange(len(coarse_mean))
    flattest = candidates[np.argsort(coarse_detail[candidates])[: max(1, min(CANDIDATE_TILES, round(FLAT_SHARE * len(candidates))))]]
    noise = float(np.median([np.sqrt(np.pi / 2) * np.abs(_second_differences(full_tile(index))[1]).mean() / 6 for index in flattest]))

    detailed = np.argsort(coarse_detail)[-CANDIDATE_TILES:]
    lumas = {int(index): full_tile(index) for index in detailed}
    detail = {index: max(float(_second_differences(luma)[0].var()) - LAPLACIAN_NOISE_GAIN * noise**2, SHARPNESS_FLOOR) for index, luma in lumas.items()}
    sharpest = sorted(detail, key=detail.get)[-SHARPEST_TILES:]
    sharpest_detail = float(np.mean([detail[index] for index in sharpest]))
    contrast = float(np.mean([lumas[index].var() for index in sharpest]))
    sharpness = float(np.log10(sharpest_detail))
    relative = float(np.log10(sharpest_detail / max(contrast, SHARPNESS_FLOOR)))
    anisotropy, direction = _shake([lumas[index] for index in sharpest])
    flat_lumas = {int(index): full_tile(index) for index in flattest}
    origins = {index: (index // columns * tile, index % columns * tile) for index in (*lumas, *flat_lumas)}
    blockiness = float(np.log2(np.mean([_blockiness(luma, *origins[index]) for index, luma in {**lumas, **flat_lumas}.items()])))

    sampled = rgb[::SAMPLE_STEP, ::SAMPLE_STEP]
    linear = LINEAR_OF_8_BIT[sampled] @ _LINEAR_LUMA_WEIGHTS
    exposure_ev = float(np.log2(np.exp(np.log(linear + 1e-4).mean()) / MID_GREY))
    brightest = sampled.max(axis=2)
    highlights, shadows = float((brightest >= 254).mean()), float((brightest <= 2).mean())
    return np.array([sharpness, relative, noise, anisotropy, direction, exposure_ev, highlights, shadows, blockiness], dtype=np.float32)


def _blockiness(luma: np.ndarray, top: int, left: int) -> float:
    """How much larger the steps between neighbouring pixels are across the JPEG's 8 x 8 block edges than inside the
    blocks (1 for no blocking): a heavily compressed JPEG's blocks are flat inside and step at their edges
    (Wang, Bovik and Evans 2000). The blocks are counted from the photo's top left corner, as a JPEG's are."""
    ratios = []
    for steps, start in ((np.abs(np.diff(luma, axis=1)), left), (np.abs(np.diff(luma, axis=0)).T, top)):
        # steps[:, j] is between pixels j and j + 1 of the tile, a block edge where start + j + 1 is a multiple of 8
        edge = (start + np.arange(1, steps.shape[1] + 1)) % JPEG_BLOCK == 0
        ratios.append(steps[:, edge].mean() / max(float(steps[:, ~edge].mean()), 1e-6))
    return float(np.mean(ratios))


def _shake(tiles: list[np.ndarray]) -> tuple[float, float]:
    """Anisotropy and direction (degrees, 0 horizontal, counter-clockwise, 0..180) of the weakest gradients."""
    tensor = np.zeros((2, 2))
    for patch in tiles:
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
