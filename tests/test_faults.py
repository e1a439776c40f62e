"""The burst benchmark's faults obey the physics they model (keeptrash.analysis.faults)."""

import numpy as np
import pytest
from PIL import Image

from keeptrash.analysis.faults import (
    FAULTS,
    READ_NOISE_ELECTRONS,
    convolve_linear,
    disk_kernel,
    exposed_linear,
    motion_kernel,
    photons_at_white,
    sensor_noise_linear,
    to_image,
    to_linear,
)


def flat(value: float, side: int = 400) -> np.ndarray:
    return np.full((side, side, 3), value, dtype=np.float32)


def test_srgb_curve_round_trips_every_8_bit_value():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = Image.fromarray(np.stack([values] * 3, axis=2))
    linear = to_linear(image)
    assert np.array_equal(np.asarray(to_image(linear)), np.asarray(image))
    # mid-grey 118 is about 18% of white in linear light, as a grey card is
    assert linear[118 // 16, 118 % 16, 0] == pytest.approx(0.18, abs=0.005)


@pytest.mark.parametrize("iso", [1600.0, 25600.0])
def test_sensor_noise_variance_grows_with_the_signal_as_photon_counts_do(iso):
    rng = np.random.default_rng(0)
    scale = photons_at_white(iso)
    variances = []
    for signal in (0.02, 0.2, 0.8):
        noisy = sensor_noise_linear(flat(signal), iso, rng)
        assert noisy.mean() == pytest.approx(signal, rel=0.01)  # noise adds no brightness
        expected = signal / scale + (READ_NOISE_ELECTRONS / scale) ** 2  # Poisson: variance = mean, in photons
        assert noisy.var() == pytest.approx(expected, rel=0.03)
        variances.append(noisy.var())
    assert variances[0] < variances[1] < variances[2]


def test_four_times_the_iso_is_twice_the_relative_noise():
    rng = np.random.default_rng(1)
    low, high = (sensor_noise_linear(flat(0.3), iso, rng).std() for iso in (1600.0, 6400.0))
    assert high / low == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("radius", [1.5, 3.0, 6.0])
def test_disk_psf_conserves_light_and_covers_its_disk(radius):
    kernel = disk_kernel(radius)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    # uniform inside, partial at the rim: total weight over a full pixel's weight is the disk's area
    assert kernel.sum() / kernel.max() == pytest.approx(np.pi * radius**2, rel=0.02)
    scene = np.zeros((120, 120, 3), dtype=np.float32)
    scene[50:70, 40:80] = 0.9
    blurred = convolve_linear(scene, kernel)
    assert blurred.sum() == pytest.approx(scene.sum(), rel=1e-4)  # mean brightness kept
    row = blurred[60, :, 0]
    ramp = np.count_nonzero((row > 0.01 * 0.9) & (row < 0.99 * 0.9)) / 2  # pixels across one blurred edge
    assert ramp == pytest.approx(2 * radius, abs=1.5)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0])
def test_motion_psf_is_a_line_of_its_length_and_direction(angle):
    length = 12.0
    kernel = motion_kernel(length, angle).astype(np.float64)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    ys, xs = np.indices(kernel.shape)
    centre = (kernel.shape[0] - 1) / 2
    along = (xs - centre) * np.cos(np.deg2rad(angle)) - (ys - centre) * np.sin(np.deg2rad(angle))
    across = (xs - centre) * np.sin(np.deg2rad(angle)) + (ys - centre) * np.cos(np.deg2rad(angle))
    # a uniform line of length L has variance L^2/12 along it; bilinear spreading adds at most 1/6 of a pixel^2
    assert (kernel * along**2).sum() == pytest.approx(length**2 / 12, abs=0.5)
    assert (kernel * across**2).sum() < 0.5


def test_ev_steps_scale_linear_light_by_powers_of_two_and_clip_at_saturation():
    rng = np.random.default_rng(2)
    for ev in (-2.0, -1.0, 1.0):
        assert exposed_linear(flat(0.2), ev, rng).mean() == pytest.approx(0.2 * 2.0**ev, rel=0.01)
    overexposed = exposed_linear(flat(0.6), 1.0, rng)
    assert overexposed.max() == 1.0 and (overexposed == 1.0).mean() > 0.99


def test_pushing_an_underexposed_shot_brings_the_noise_of_fewer_photons():
    rng = np.random.default_rng(3)
    level = exposed_linear(flat(0.2), 0.0, rng)
    pushed = exposed_linear(flat(0.2), -2.0, rng) * 4.0
    assert pushed.mean() == pytest.approx(level.mean(), rel=0.01)
    assert pushed.var() / level.var() == pytest.approx(4.0, rel=0.1)  # 4x fewer photons, pushed 4x: 4x the variance


def test_every_fault_worsens_a_real_photo_more_at_each_strength(photo):
    image = Image.open(photo).convert("RGB")
    pixels = np.asarray(image, dtype=np.float64)
    for name, fault in FAULTS.items():
        errors = [np.abs(np.asarray(fault.make(image, strength, 7), dtype=np.float64) - pixels).mean() for strength in fault.strengths]
        assert 0 < errors[0] < errors[1] < errors[2], name
