"""Measures at native resolution (keeptrash.features.native) read the faults of keeptrash.analysis.faults."""

import numpy as np
import pytest
from PIL import Image

from conftest import LIVEC_IMAGES, PHOTO_NAMES
from keeptrash.analysis.degradation import jpeg_quality
from keeptrash.analysis.faults import camera_shake, defocus, exposure, sensor_noise
from keeptrash.features.native import NATIVE_NAMES, decoded_once, native_measures

PHOTOS = [LIVEC_IMAGES / name for name in PHOTO_NAMES[:3]]


def measures(image: Image.Image) -> dict[str, float]:
    return dict(zip(NATIVE_NAMES, native_measures(np.asarray(image)).tolist()))


@pytest.fixture(scope="module", params=PHOTOS, ids=lambda path: path.name)
def upright(request) -> Image.Image:
    return Image.open(request.param).convert("RGB")


def test_defocus_lowers_sharpness_at_every_step(upright):
    values = [measures(image) for image in (upright, *(defocus(upright, radius) for radius in (1.5, 3.0, 6.0)))]
    for name in ("sharpness_native", "sharpness_relative"):
        steps = np.diff([value[name] for value in values])
        assert (steps < -0.3).all(), (name, steps)  # each doubling of the blur costs at least half a decade... or 0.3


def test_a_sharp_subject_on_a_blurred_background_is_not_soft(upright):
    blurred = defocus(upright, 6.0)
    half_width, half_height = upright.width // 2, upright.height // 2
    sharpness = []
    for left, top in ((0, 0), (half_width, 0), (0, half_height), (half_width, half_height)):
        subject = (left, top, left + half_width, top + half_height)
        composite = blurred.copy()
        composite.paste(upright.crop(subject), subject[:2])  # one quarter in focus, the rest far behind it
        sharpness.append(measures(composite)["sharpness_native"])
    # the quarter that holds the photo's sharpest detail in focus: as sharp as the whole photo in focus
    assert max(sharpness) == pytest.approx(measures(upright)["sharpness_native"], abs=0.3)
    assert min(sharpness) > measures(blurred)["sharpness_native"] + 0.5


def test_noise_grows_with_iso(upright):
    noise = [measures(image)["noise_native"] for image in (upright, *(sensor_noise(upright, iso, 1) for iso in (1600.0, 6400.0, 25600.0)))]
    assert all(later > earlier * 1.5 for earlier, later in zip(noise, noise[1:])), noise


@pytest.mark.parametrize("angle", [0.0, 90.0])
def test_shake_direction_is_found(upright, angle):
    shaken = measures(camera_shake(upright, 12.0, angle))
    off = abs((shaken["shake_direction"] - angle + 90) % 180 - 90)
    assert off < 15, shaken["shake_direction"]
    assert shaken["sharpness_native"] < measures(upright)["sharpness_native"]


def test_exposure_reads_ev_steps_and_clipping(upright):
    original = measures(upright)
    darker, brighter = measures(exposure(upright, -1.0, 1)), measures(exposure(upright, 1.0, 1))
    assert darker["exposure_ev"] == pytest.approx(original["exposure_ev"] - 1, abs=0.1)
    assert original["exposure_ev"] + 0.5 < brighter["exposure_ev"] <= original["exposure_ev"] + 1.05  # clipping holds it back
    assert brighter["highlights_clipped_native"] > original["highlights_clipped_native"]


def test_one_decode_gives_the_full_pixels_and_a_reduced_view(tmp_path):
    path = tmp_path / "large.jpg"
    Image.open(PHOTOS[0]).resize((2000, 1500), Image.Resampling.LANCZOS).save(path, quality=95)
    full, view = decoded_once(path, 500)
    assert full.shape == (1500, 2000, 3)
    assert 500 <= min(view.size) < 1000 and view.size == (667, 500)  # a 3-times reduction, the partial last block kept


def test_blockiness_rises_as_jpeg_quality_falls(upright):
    values = [measures(image)["blockiness"] for image in (upright, *(jpeg_quality(upright, quality) for quality in (35.0, 15.0)))]
    assert values[0] < values[1] < values[2] and values[2] > values[0] + 1, values  # quality 15: twice the steps at the edges
