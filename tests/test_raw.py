"""Camera RAW files as photos (keeptrash.raw): the embedded preview, upright; the half-size decode where the preview is
missing or too small, decoded once; capture times from the RAW's own EXIF; and every broken real camera file of
../shared/data/raw skipped in one line."""

import base64
import datetime
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import CHEAP_FEATURES
from keeptrash.features.extract import cache_namespace
from keeptrash.features.store import FeatureStore
from keeptrash.features.table import feature_table
from keeptrash.params import FeaturesParams
from keeptrash.grouping import read_signature
from keeptrash.images import CORRUPT, OK, check_image, list_images, open_photo
from keeptrash.raw import DECODE_CACHE_ENV, decode_cache_path
from raw_files import shared_data, write_dng

MAX_PIXELS = 300_000_000
SHARED_RAW = shared_data("raw")
LARGE = shared_data("large")
TAKEN = datetime.datetime(2026, 5, 1, 10, 0, 0, 250000)
# What LibRaw 0.22 makes of ../shared/data/raw (its SOURCES.txt): the two it decodes, and why each other one is skipped.
SCORED = {"DNG.dng", "Panasonic.rw2"}
SKIPPED = {
    "CanonRaw.cr2": "unsupported file format or not RAW file",
    "CanonRaw.cr3": "input/output error",
    "CanonRaw.crw": "input/output error; Unexpected end of file",
    "FujiFilm.raf": "its embedded preview is 160x120, below the 512 px needed, and LibRaw: input/output error",
    "Minolta.mrw": "input/output error",
    "Nikon.nef": "data error or unsupported file format; data corrupted at 1378",
    "PhaseOne.iiq": "input/output error; Unexpected end of file",
    "Sigma.x3f": "input/output error",
    "SigmaDP2.x3f": "its embedded preview is 8x8, below the 512 px needed, and LibRaw: image too big for processing",
}
needs_shared = pytest.mark.skipif(SHARED_RAW is None or LARGE is None, reason="../shared/data (raw, large) is not beside the repository")


@pytest.fixture(autouse=True)
def decode_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(DECODE_CACHE_ENV, str(tmp_path / "raw-cache"))
    return tmp_path / "raw-cache"


@pytest.fixture(scope="module")
def camera_photo() -> Image.Image:
    """A real photo at a small camera's size (2400 x 1500): what the DNGs' sensors record."""
    if LARGE is None:
        pytest.skip("../shared/data/large is not beside the repository")
    with Image.open(LARGE / "mate_LadyBird.jpg") as image:
        return image.convert("RGB").resize((2400, 1500), Image.Resampling.LANCZOS)


def agreement(image: Image.Image, reference: Image.Image) -> float:
    """Correlation of the two pictures' luminance at a common small size: 1 for the same picture."""
    small = [np.asarray(picture.convert("L").resize((96, 96)), dtype=np.float64).ravel() for picture in (image, reference)]
    return float(np.corrcoef(*small)[0, 1])


@pytest.mark.parametrize("orientation, turn", [(1, None), (6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90), (3, Image.Transpose.ROTATE_180)])
def test_the_embedded_preview_is_read_upright(tmp_path, camera_photo, orientation, turn):
    dng = write_dng(camera_photo, tmp_path / "IMG_0001.DNG", preview_side=1024, orientation=orientation)
    image, size = open_photo(dng, 125, 512)
    upright = camera_photo.transpose(turn) if turn else camera_photo
    assert size == upright.size
    assert max(image.size) == 512  # the 1024 px JPEG preview, decoded at half scale
    assert agreement(image, upright) > 0.95
    assert not any(Path(os.environ[DECODE_CACHE_ENV]).rglob("*.jpg"))  # nothing was decoded


def test_without_a_preview_the_half_size_decode_is_used_and_cached(tmp_path, camera_photo):
    dng = write_dng(camera_photo, tmp_path / "IMG_0002.dng", preview_side=None, orientation=6)
    image, size = open_photo(dng, 125, 512)
    upright = camera_photo.transpose(Image.Transpose.ROTATE_270)
    assert size == upright.size
    assert agreement(image, upright) > 0.95
    cached = decode_cache_path(hashlib_of(dng))
    with Image.open(cached) as decode:
        assert decode.size == (750, 1200)  # half the sensor, upright


def hashlib_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("preview_side, raw_preview_side, decoded", [(256, 0, True), (1024, 0, False), (1024, 2000, True)])
def test_a_preview_smaller_than_needed_falls_back_to_the_decode(tmp_path, camera_photo, preview_side, raw_preview_side, decoded):
    dng = write_dng(camera_photo, tmp_path / "IMG_0003.dng", preview_side=preview_side)
    image, _ = open_photo(dng, 125, 512, raw_preview_side)
    assert agreement(image, camera_photo) > 0.95
    assert decode_cache_path(hashlib_of(dng)).is_file() == decoded


def test_a_second_look_decodes_nothing(tmp_path, camera_photo):
    """The decode is read back from the cache: a cache entry replaced by a grey picture is what the second look sees."""
    dng = write_dng(camera_photo, tmp_path / "IMG_0004.dng", preview_side=None)
    first, _ = open_photo(dng, 125, 512)
    cached = decode_cache_path(hashlib_of(dng))
    Image.new("RGB", (1200, 750), (128, 128, 128)).save(cached, "JPEG")
    second, _ = open_photo(dng, 125, 512)
    assert np.asarray(first).std() > 10
    assert np.asarray(second).std() < 1


def test_features_an_older_keeptrash_cached_for_a_raw_are_not_reused(tmp_path, camera_photo):
    """Before RAW support Pillow read a DNG's first directory, here its preview stored sideways, and cached features of
    it under the file's sha256. Those are computed afresh: from the upright preview, with the sensor's size."""
    dng = write_dng(camera_photo, tmp_path / "IMG_0001.dng", preview_side=1024, orientation=6)
    as_tiff = tmp_path / "IMG_0001.tif"  # the same bytes, read by Pillow as an older keeptrash read the DNG
    shutil.copyfile(dng, as_tiff)
    params = FeaturesParams(backbone="efficientnet_lite0", batch_size=4, device="cpu", workers=0, **CHEAP_FEATURES)
    store = FeatureStore(tmp_path / "cache", cache_namespace(params))
    older, _, _ = feature_table([str(as_tiff)], [hashlib_of(dng)], params, store, MAX_PIXELS)
    now, failures, computed = feature_table([str(dng)], [hashlib_of(dng)], params, store, MAX_PIXELS)
    assert not failures and computed == 1
    assert list(now["sha256"]) == [hashlib_of(dng)]
    assert older["width"][0] < 1100 and (now["width"][0], now["height"][0]) == (1500, 2400)


def test_capture_time_and_sub_seconds_come_from_the_raw(tmp_path, camera_photo):
    dng = write_dng(camera_photo, tmp_path / "IMG_0005.dng", taken=TAKEN)
    signature = read_signature(dng, MAX_PIXELS, file_time=False)
    assert signature.captured == pytest.approx(TAKEN.replace(tzinfo=datetime.UTC).timestamp(), abs=1e-6)
    assert signature.hash is not None


def test_raw_files_of_any_case_are_listed_with_the_photos(tmp_path, camera_photo):
    for name in ("a.CR2", "b.nef", "c.DNG", "d.jpg", "e.txt", "f.Rw2"):
        (tmp_path / name).write_bytes(b"")
    assert [path.name for path in list_images(tmp_path)] == ["a.CR2", "b.nef", "c.DNG", "d.jpg", "f.Rw2"]


@needs_shared
def test_each_real_camera_file_is_checked_in_one_line():
    for path in sorted(SHARED_RAW.iterdir()):
        if path.suffix == ".txt":
            continue
        check = check_image(path, MAX_PIXELS)
        if path.name in SCORED:
            assert (check.status, check.reason) == (OK, "")
            assert check.width * check.height > 3_000_000
        else:
            assert check.status == CORRUPT
            assert SKIPPED[path.name] in check.reason and "\n" not in check.reason


@needs_shared
def test_cull_scores_the_real_files_it_can_and_skips_each_broken_one_in_one_line(tmp_path, model_path, cache_root):
    photos = tmp_path / "card"
    shutil.copytree(SHARED_RAW, photos)
    (photos / "SOURCES.txt").unlink()
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(photos), "--model", str(model_path), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Unexpected end of file" not in result.stderr
    assert "data corrupted" not in result.stderr
    table = pd.read_csv(tmp_path / "out" / "keeptrash.csv", keep_default_na=False).set_index("path")
    table.index = [Path(path).name for path in table.index]
    assert set(table.index[table["decision"] != "skipped"]) == SCORED
    for name, reason in SKIPPED.items():
        assert table.loc[name, "decision"] == "skipped"
        assert reason in table.loc[name, "reason"] and "\n" not in table.loc[name, "reason"]
    assert "skipped 9 (not a decodable image 9)" in result.stdout


def thumbnails(sheet: Path) -> list[Image.Image]:
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', sheet.read_text(encoding="utf-8"))
    return [Image.open(io.BytesIO(base64.b64decode(uri))) for uri in uris]


def test_cull_scores_dngs_from_their_previews_and_a_second_cull_decodes_nothing(tmp_path, camera_photo, model_path, cache_root):
    photos = tmp_path / "card"
    photos.mkdir()
    write_dng(camera_photo, photos / "IMG_0001.dng", preview_side=1024, taken=TAKEN)
    write_dng(camera_photo, photos / "IMG_0002.dng", preview_side=None, taken=TAKEN + datetime.timedelta(seconds=0.2))
    write_dng(camera_photo, photos / "IMG_0003.dng", preview_side=1024, orientation=6, taken=TAKEN + datetime.timedelta(hours=1))
    command = [str(Path(sys.executable).parent / "keeptrash"), "cull", str(photos), "--model", str(model_path), "--out", str(tmp_path / "out")]
    first = subprocess.run(command, capture_output=True, text=True, errors="replace")
    assert first.returncode == 0, first.stderr
    table = pd.read_csv(tmp_path / "out" / "keeptrash.csv", keep_default_na=False)
    assert (table["decision"] != "skipped").all() and len(table) == 3
    assert list(table["width"]) == [2400, 2400, 1500]  # the sensor's size, upright
    # One burst: the same scene 0.2 s apart by the RAWs' own clocks; an hour later (and turned) another.
    assert list(table["group"]) == [1, 1, 2]
    cached = decode_cache_path(hashlib_of(photos / "IMG_0002.dng"))
    Image.new("RGB", (1200, 750), (128, 128, 128)).save(cached, "JPEG")
    second = subprocess.run(command, capture_output=True, text=True, errors="replace")
    assert second.returncode == 0, second.stderr
    flat = [np.asarray(thumbnail).std() < 1 for thumbnail in thumbnails(tmp_path / "out" / "contact_sheet.html")]
    assert sorted(flat) == [False, False, True]  # the decoded one's thumbnail came from the cache, not from LibRaw
