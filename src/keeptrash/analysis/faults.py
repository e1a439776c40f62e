"""Faults of a take, modelled the way a camera makes them, on a photo at its native resolution.

A photo's 8-bit values are display-referred: the sRGB curve stands in for the camera's tone curve, so its inverse
gives the light the sensor saw (linear, 1.0 = the sRGB white point). Optical and sensor faults act on that light:

- sensor noise: photons arrive as a Poisson process and the read-out adds Gaussian noise, so the noise's variance
  grows with the signal (Poisson-Gaussian). A higher ISO is the same light amplified from fewer photons:
  photons at white = PHOTONS_AT_WHITE_ISO100 * 100 / ISO.
- defocus: the image of a point is a uniform disk (a circle of confusion), radius in native pixels.
- camera shake: the image of a point is a line the camera moved along during the exposure, length in pixels.
- exposure: an EV step scales the light by 2^EV; the sensor clips at its saturation (white). An underexposed shot
  caught 2^-EV times fewer photons, so its shot noise is relatively stronger, and pushing it back up in
  processing (pushed_exposure) brightens that noise with it.
- JPEG recompression acts on the 8-bit values, as an editor or a messenger app does.

Faults take and return 8-bit RGB PIL images; a seed makes every noisy take reproducible.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy.signal import oaconvolve

from keeptrash.analysis.degradation import jpeg_quality
from keeptrash.features.native import LINEAR_OF_8_BIT

# Bump when a fault or its strengths change: takes made by another version must not be compared with these.
FAULTS_VERSION = 1

# Photons (electrons) a pixel collects at the sRGB white point at ISO 100: about a 4-micron pixel of an APS-C or
# one-inch sensor, with headroom above white for highlights; the read-out adds READ_NOISE_ELECTRONS.
PHOTONS_AT_WHITE_ISO100 = 16_000.0
READ_NOISE_ELECTRONS = 3.0
# The ISO an exposure fault is shot at: an evening or indoor scene, where a missed exposure happens.
EXPOSURE_ISO = 400.0
GAUSSIAN_PHOTONS = 100.0


# The 8-bit value of linear light on a 16-bit grid (finer than any 8-bit step needs): with LINEAR_OF_8_BIT, two table look-ups instead of a power per channel, the bulk of a take's cost at 12 MP.
_LINEAR_STEPS = 65535
_grid = np.arange(_LINEAR_STEPS + 1, dtype=np.float64) / _LINEAR_STEPS
_8_BIT_OF_LINEAR = (255.0 * np.where(_grid <= 0.0031308, _grid * 12.92, 1.055 * _grid ** (1 / 2.4) - 0.055) + 0.5).astype(np.uint8)


def to_linear(image: Image.Image) -> np.ndarray:
    """Linear light (float32, 0..1 at white) from 8-bit sRGB: the inverse of the sRGB transfer curve."""
    return LINEAR_OF_8_BIT[np.asarray(image.convert("RGB"))]


def to_image(linear: np.ndarray) -> Image.Image:
    """8-bit sRGB from linear light, clipped at black and white as a camera's output is."""
    steps = (np.clip(linear, 0.0, 1.0) * np.float32(_LINEAR_STEPS) + np.float32(0.5)).astype(np.uint16)
    return Image.fromarray(_8_BIT_OF_LINEAR[steps])


def photons_at_white(iso: float) -> float:
    return PHOTONS_AT_WHITE_ISO100 * 100.0 / iso


def sensor_noise_linear(linear: np.ndarray, iso: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise plus Gaussian read noise on linear light, at the photon count `iso` leaves."""
    scale = np.float32(photons_at_white(iso))
    expected = np.clip(linear, 0.0, None) * scale
    # Above GAUSSIAN_PHOTONS a Poisson count is a Gaussian of the same mean and variance to within a
    # fraction of a photon; drawing those is several times cheaper than Poisson draws.
    many = expected > GAUSSIAN_PHOTONS
    electrons = np.empty_like(expected)
    electrons[many] = expected[many] + np.sqrt(expected[many]) * rng.standard_normal(int(many.sum()), dtype=np.float32)
    electrons[~many] = rng.poisson(expected[~many])
    electrons += rng.normal(0.0, READ_NOISE_ELECTRONS, size=linear.shape).astype(np.float32)
    return electrons / scale


def sensor_noise(image: Image.Image, iso: float, seed: int) -> Image.Image:
    return to_image(sensor_noise_linear(to_linear(image), iso, np.random.default_rng(seed)))


def disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """A uniform disk of `radius` pixels, its edge pixels weighted by the share of them it covers; sums to 1."""
    half = int(np.ceil(radius))
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    centres = np.arange(-half, half + 1, dtype=np.float64)
    fine = (centres[:, None] + offsets[None, :]).ravel()
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2
    size = 2 * half + 1
    kernel = inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(length: float, angle_degrees: float, samples_per_pixel: int = 8) -> np.ndarray:
    """A straight shake `length` pixels long at `angle_degrees` (0 = horizontal), spread bilinearly; sums to 1."""
    half = int(np.ceil(length / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.float64)
    steps = np.linspace(-length / 2, length / 2, max(2, int(np.ceil(length * samples_per_pixel)) + 1))
    angle = np.deg2rad(angle_degrees)
    xs, ys = half + steps * np.cos(angle), half - steps * np.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return (kernel / kernel.sum()).astype(np.float32)


def convolve_linear(linear: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each channel convolved with the point-spread function, the frame's edges mirrored so no dark border creeps in."""
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(linear, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    return np.stack([oaconvolve(padded[..., channel], kernel, mode="valid") for channel in range(linear.shape[2])], axis=2)


def defocus(image: Image.Image, radius: float) -> Image.Image:
    return to_image(convolve_linear(to_linear(image), disk_kernel(radius)))


def camera_shake(image: Image.Image, length: float, angle_degrees: float) -> Image.Image:
    return to_image(convolve_linear(to_linear(image), motion_kernel(length, angle_degrees)))


def exposed_linear(linear: np.ndarray, ev: float, rng: np.random.Generator) -> np.ndarray:
    """The light of a shot `ev` stops off the original's (clipped at saturation), with the shot noise at EXPOSURE_ISO."""
    return np.clip(sensor_noise_linear(linear * np.float32(2.0**ev), EXPOSURE_ISO, rng), 0.0, 1.0)


def exposure(image: Image.Image, ev: float, seed: int) -> Image.Image:
    """Under- (ev < 0) or over-exposed (ev > 0) as shot: darker or with highlights clipped."""
    return to_image(exposed_linear(to_linear(image), ev, np.random.default_rng(seed)))


def pushed_exposure(image: Image.Image, ev: float, seed: int) -> Image.Image:
    """Underexposed by -ev stops and brightened back in processing: the original's brightness, with the noise
    of 2^-ev times fewer photons."""
    return to_image(exposed_linear(to_linear(image), ev, np.random.default_rng(seed)) * np.float32(2.0**-ev))


class Fault(NamedTuple):
    make: Callable[[Image.Image, float, int], Image.Image]  # (upright photo, strength, seed) -> the faulted take
    strengths: tuple[float, float, float]  # mild, moderate, strong
    unit: str


# The shake's direction varies from series to series, as a hand's does.
def _shake(image: Image.Image, length: float, seed: int) -> Image.Image:
    return camera_shake(image, length, float(np.random.default_rng(seed).uniform(0.0, 180.0)))


FAULTS: dict[str, Fault] = {
    "noise": Fault(sensor_noise, (1600.0, 6400.0, 25600.0), "ISO"),
    "defocus": Fault(lambda image, radius, seed: defocus(image, radius), (1.5, 3.0, 6.0), "px disk radius"),
    "shake": Fault(_shake, (5.0, 10.0, 20.0), "px shake length"),
    "underexposed": Fault(exposure, (-0.7, -1.3, -2.3), "EV"),
    "pushed": Fault(pushed_exposure, (-1.0, -2.0, -3.0), "EV pushed back"),
    "overexposed": Fault(exposure, (0.7, 1.3, 2.3), "EV"),
    "jpeg": Fault(lambda image, quality, seed: jpeg_quality(image, quality), (60.0, 35.0, 15.0), "JPEG quality"),
}
STRENGTH_NAMES = ("mild", "moderate", "strong")
