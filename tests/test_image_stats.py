"""Photographic image statistics and upright photo decoding, on real LIVE-C photos."""

import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from conftest import LIVEC_IMAGES, PHOTO_NAMES
from keeptrash.images import open_photo
from keeptrash.features.image_stats import ANALYSIS_SIDE, STAT_NAMES, image_statistics

ORIENTATION = 0x0112


def stats(image: Image.Image, original_size=None) -> dict[str, float]:
    values = image_statistics(image, original_size or image.size)
    assert values.dtype == np.float32
    assert values.shape == (len(STAT_NAMES),)
    return dict(zip(STAT_NAMES, values.tolist()))


@pytest.fixture(params=PHOTO_NAMES[:3])
def rgb(request) -> Image.Image:
    with Image.open(LIVEC_IMAGES / request.param) as image:
        return image.convert("RGB")


def test_blurred_copy_is_less_sharp_and_less_noisy(rgb):
    original, blurred = stats(rgb), stats(rgb.filter(ImageFilter.GaussianBlur(3)))
    # sharpness is log10 of the Laplacian variance: a radius-3 blur costs well over one decade.
    assert blurred["sharpness"] < original["sharpness"] - 1.0
    assert blurred["noise"] < original["noise"]
    assert blurred["exposure"] == pytest.approx(original["exposure"], abs=0.005)


def test_darkened_copy_has_lower_exposure(rgb):
    original, dark = stats(rgb), stats(ImageEnhance.Brightness(rgb).enhance(0.4))
    assert dark["exposure"] < original["exposure"]
    assert dark["exposure"] == pytest.approx(0.4 * original["exposure"], rel=0.05)
    assert dark["contrast"] < original["contrast"]
    assert dark["highlights_clipped"] <= original["highlights_clipped"]
    assert dark["shadows_clipped"] >= original["shadows_clipped"]


def test_grayscale_copy_has_no_saturation_or_colourfulness(rgb):
    original, gray = stats(rgb), stats(rgb.convert("L").convert("RGB"))
    assert original["saturation"] > 0.1 and original["colourfulness"] > 0.05
    assert gray["saturation"] == pytest.approx(0.0, abs=1e-3)
    assert gray["colourfulness"] == pytest.approx(0.0, abs=1e-3)
    assert gray["exposure"] == pytest.approx(original["exposure"], abs=0.005)


def test_size_statistics_come_from_original_size(rgb):
    at_own_size = stats(rgb)
    assert (at_own_size["width"], at_own_size["height"], at_own_size["aspect"]) == (500, 500, 1.0)
    assert at_own_size["megapixels"] == pytest.approx(0.25)
    camera = stats(rgb, (4000, 3000))
    assert (camera["width"], camera["height"]) == (4000, 3000)
    assert camera["megapixels"] == pytest.approx(12.0)
    assert camera["aspect"] == pytest.approx(4 / 3)
    # Only the size statistics depend on original_size.
    for name in STAT_NAMES[:8]:
        assert camera[name] == at_own_size[name]


def test_statistics_are_measured_at_the_analysis_size(rgb):
    """A 2x upscale is measured on the same ANALYSIS_SIDE copy as the original, so exposure and colour agree."""
    big = rgb.resize((1000, 1000), Image.Resampling.BICUBIC)
    assert max(big.size) > ANALYSIS_SIDE
    original, upscaled = stats(rgb), stats(big, rgb.size)
    for name in ("exposure", "saturation", "colourfulness", "contrast"):
        assert upscaled[name] == pytest.approx(original[name], abs=0.01), name


def test_uniform_images_clip_fully():
    white = stats(Image.new("RGB", (64, 48), (255, 255, 255)))
    black = stats(Image.new("RGB", (64, 48), (0, 0, 0)))
    assert (white["exposure"], white["highlights_clipped"], white["shadows_clipped"]) == pytest.approx((1.0, 1.0, 0.0))
    assert (black["exposure"], black["highlights_clipped"], black["shadows_clipped"]) == pytest.approx((0.0, 0.0, 1.0))
    assert white["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert white["aspect"] == pytest.approx(64 / 48)


def test_tiny_image_has_no_sharpness_or_noise_but_other_statistics():
    tiny = stats(Image.new("RGB", (2, 2), (200, 10, 10)))
    assert math.isnan(tiny["sharpness"]) and math.isnan(tiny["noise"])
    assert tiny["saturation"] > 0.9
    assert all(math.isfinite(tiny[name]) for name in STAT_NAMES[2:])


def test_added_noise_shows_in_noise_not_in_sharpness(rgb):
    pixels = np.asarray(rgb, dtype=np.float64)
    noisy = Image.fromarray(np.clip(pixels + np.random.default_rng(0).normal(0, 32, pixels.shape), 0, 255).astype(np.uint8))
    original, measured = stats(rgb), stats(noisy)
    assert measured["noise"] > 5 * original["noise"]
    assert measured["sharpness"] < original["sharpness"] + 0.2  # the plain Laplacian variance rose by over a decade


# --- open_photo: EXIF orientation --------------------------------------------------------------


def save_with_orientation(source: Image.Image, path, orientation: int, **options) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    source.save(path, exif=exif, **(options or {"quality": 95}))


@pytest.fixture
def landscape(tmp_path, photo) -> Image.Image:
    """A 400x250 crop of a real photo: not square, so a transposition shows in the size."""
    with Image.open(photo) as image:
        return image.convert("RGB").crop((50, 100, 450, 350))


def test_exif_orientation_6_is_turned_upright(tmp_path, landscape):
    path = tmp_path / "rotated.jpg"
    save_with_orientation(landscape, path, 6)
    with Image.open(path) as stored:
        assert stored.size == (400, 250)
        assert stored.getexif()[ORIENTATION] == 6
        expected = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    image, original_size = open_photo(path, decode_side=512)
    assert image.mode == "RGB"
    assert image.size == (250, 400)
    assert original_size == (250, 400)
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_exif_orientation_6_with_draft_decoding(tmp_path, landscape):
    path = tmp_path / "rotated.jpg"
    save_with_orientation(landscape, path, 6)
    image, original_size = open_photo(path, decode_side=64)
    # Decoded at a reduced DCT scale, but upright, at least decode_side on the short side, and the
    # reported size is still the full upright size.
    assert original_size == (250, 400)
    assert min(image.size) >= 64
    # The smallest JPEG DCT scale whose short side still covers 64 px is 1/2 (1/4 would give 62 px).
    assert image.size == (125, 200)


def test_exif_orientation_3_keeps_the_size(tmp_path, landscape):
    path = tmp_path / "upside_down.jpg"
    save_with_orientation(landscape, path, 3)
    image, original_size = open_photo(path, decode_side=512)
    assert image.size == (400, 250)
    assert original_size == (400, 250)


def test_photo_without_exif_and_png(tmp_path, landscape):
    jpeg, png = tmp_path / "plain.jpg", tmp_path / "plain.png"
    landscape.save(jpeg)
    landscape.convert("L").save(png)
    for path in (jpeg, png):
        image, original_size = open_photo(path, decode_side=512)
        assert image.mode == "RGB"
        assert image.size == original_size == (400, 250)


def test_open_photo_feeds_statistics_with_upright_size(tmp_path, landscape):
    path = tmp_path / "rotated.jpg"
    save_with_orientation(landscape, path, 6)
    image, original_size = open_photo(path, decode_side=64)
    values = stats(image, original_size)
    assert (values["width"], values["height"]) == (250, 400)
    assert values["aspect"] == pytest.approx(250 / 400)
    # Orientation does not change what the photo looks like statistically.
    upright = stats(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert values["exposure"] == pytest.approx(upright["exposure"], abs=0.01)


# How a photo stored with EXIF orientation n is turned upright (ImageOps.exif_transpose's table), and its inverse,
# which makes the stored pixels of an upright photo.
UPRIGHT_FROM_STORED = {
    1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
STORED_FROM_UPRIGHT = {**UPRIGHT_FROM_STORED, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
# Each format with its own place for EXIF (JPEG APP1, PNG eXIf, WebP EXIF chunk, TIFF's first directory);
# all but JPEG lossless, so their stored pixels are exactly the ones written.
ORIENTED_FORMATS = {"jpg": {"quality": 95}, "png": {}, "webp": {"lossless": True}, "tif": {"compression": "tiff_lzw"}}


def turned(image: Image.Image, method) -> Image.Image:
    return image if method is None else image.transpose(method)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", ORIENTED_FORMATS)
def test_every_orientation_in_every_format_gives_the_statistics_of_the_upright_photo(tmp_path, landscape, suffix, orientation):
    """Issue 26: a TIFF with orientation 5-8 came out with width and height swapped twice (Pillow's TIFF plugin already
    reports it upright), so its size statistics differed from the same photo as PNG."""
    path = tmp_path / f"stored.{suffix}"
    save_with_orientation(turned(landscape, STORED_FROM_UPRIGHT[orientation]), path, orientation, **ORIENTED_FORMATS[suffix])
    if suffix == "jpg":  # lossy: what was stored is what the file decodes to, before its orientation is applied
        with Image.open(path) as stored:
            upright = turned(stored.convert("RGB"), UPRIGHT_FROM_STORED[orientation])
    else:
        upright = landscape
    control = tmp_path / "upright.png"
    upright.save(control)
    image, size = open_photo(path, decode_side=512)
    control_image, control_size = open_photo(control, decode_side=512)
    assert size == control_size == (400, 250)
    np.testing.assert_array_equal(np.asarray(image), np.asarray(control_image))
    np.testing.assert_array_equal(image_statistics(image, size), image_statistics(control_image, control_size))


# --- central_band: extreme panoramas --------------------------------------------------------------


def test_central_band_cuts_only_extreme_aspect_ratios(landscape):
    from keeptrash.features.extract import MAX_ASPECT, central_band

    assert central_band(landscape) is landscape  # 400 x 250
    strip = Image.new("RGB", (40000, 3), (10, 20, 30))
    strip.paste((200, 0, 0), (19000, 0, 21000, 3))  # a red middle
    band = central_band(strip)
    assert band.size == (MAX_ASPECT * 3, 3)
    assert band.getpixel((6, 1)) == (200, 0, 0)
    tall = central_band(Image.new("L", (2, 1000)))
    assert tall.size == (2, 2 * MAX_ASPECT)
