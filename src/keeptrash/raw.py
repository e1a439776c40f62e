"""Camera RAW files as photos: the camera's own embedded preview, else a half-size LibRaw decode, cached.

A RAW file carries the JPEG its camera rendered for its screen, usually at full or near-full size: reading it takes
milliseconds where demosaicing the sensor data takes most of a second (benchmarks/raw.py, docs/cull.md). LibRaw
(rawpy) finds it, and reads every format it decodes with one API. Where a file has no preview, or one too small for
what is asked of it, its sensor data is decoded at half size (each 2x2 block of the colour filter array one RGB pixel:
no demosaicing) and that decode is kept in a cache keyed by the file's sha256, so a second look decodes nothing.

Capture times come from the RAW's own EXIF through Exiv2, which reads the sub-seconds LibRaw drops.
"""

import contextlib
import ctypes
import glob
import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import exiv2
import rawpy
from PIL import Image

from keeptrash.io import atomic_write

# The RAW formats LibRaw reads, by suffix (matched case-insensitively). DNG is also a TIFF, but Pillow shows only its
# thumbnail, so it goes through LibRaw too.
RAW_SUFFIXES = {
    ".3fr", ".ari", ".arw", ".bay", ".cap", ".cr2", ".cr3", ".crw", ".dcr", ".dcs", ".dng", ".drf", ".eip", ".erf",
    ".fff", ".iiq", ".k25", ".kdc", ".mdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".ori", ".pef", ".ptx",
    ".pxn", ".raf", ".raw", ".rwl", ".rw2", ".rwz", ".sr2", ".srf", ".srw", ".sti", ".x3f",
}
# Bump when how a RAW file becomes a picture changes (the preview rule, the decode's settings): the features cached
# for RAW files (keeptrash.features.table.cache_key) are then computed afresh, those of other photos kept.
RENDERING_VERSION = 1
# The long side the download stage checks a RAW at: what the model (features.resolution, 500 by default) and the
# image statistics (512, keeptrash.features.image_stats.ANALYSIS_SIDE) ask of it by default.
CHECKED_SIDE = 512
# Where half-size decodes are kept (by default in the user's cache folder, beside the feature cache); a new LibRaw
# renders differently, so each version has its own folder.
DECODE_CACHE_ENV = "KEEPTRASH_RAW_CACHE"
_DECODE_CACHE_FOLDER = f"raw-decodes-libraw{'.'.join(map(str, rawpy.libraw_version))}"
# The half-size decode is kept as a JPEG of this quality: a tenth of a PNG's size, and what a camera's preview is too.
_DECODE_QUALITY = 95
# LibRaw's flip (bit 0 mirror left-right, bit 1 top-bottom, bit 2 swap axes, applied last) as Pillow transposes.
_FLIP_TRANSPOSES = {
    1: Image.Transpose.FLIP_LEFT_RIGHT,
    2: Image.Transpose.FLIP_TOP_BOTTOM,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.TRANSPOSE,
    5: Image.Transpose.ROTATE_90,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
}
_SWAPS_AXES = 4
_EXIF_TIME_KEYS = ("Exif.Photo.DateTimeOriginal", "Exif.Image.DateTimeOriginal", "Exif.Image.DateTime")
_EXIF_SUBSEC_KEYS = ("Exif.Photo.SubSecTimeOriginal",)
_FILE_PREFIX = re.compile(r"^.*?: ")


def _one_openmp_thread() -> None:
    """LibRaw's OpenMP thread pool does not survive fork: a worker process forked after a decode in its parent hangs at
    its first decode (measured). With one thread no pool is made; decoding is parallel across worker processes, as
    for JPEGs, and one thread decodes as fast as two here (benchmarks/raw.py)."""
    if not rawpy.flags or not rawpy.flags.get("OPENMP"):
        return
    for library in glob.glob(os.path.join(os.path.dirname(rawpy.__file__), os.pardir, "rawpy.libs", "libgomp*")):
        ctypes.CDLL(library).omp_set_num_threads(1)


_one_openmp_thread()


def is_raw(path: Path | str) -> bool:
    return os.path.splitext(path)[1].lower() in RAW_SUFFIXES


class RawUnreadable(ValueError):
    """LibRaw cannot give a picture of this file; the message is one line saying why."""


@contextlib.contextmanager
def libraw_errors() -> Iterator[None]:
    """LibRaw's errors as RawUnreadable, saying why in one line. LibRaw also writes what it finds wrong with a file
    ("Unexpected end of file") to the process's stderr: those lines are collected into the reason instead, rather than
    cut into progress bars."""
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except rawpy.LibRawError as error:
            failure = error
        else:
            failure = None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if failure is not None:
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines()
            raise RawUnreadable(_reason(failure, [_FILE_PREFIX.sub("", line).strip() for line in lines if line.strip()])) from None


# What LibRaw's errors mean for a photographer's file, after LibRaw's own words.
_MEANINGS = {
    rawpy.LibRawIOError: "the file is cut short or damaged; copy it from the card again",
    rawpy.LibRawFileUnsupportedError: "not a RAW format LibRaw reads; convert it to DNG",
    rawpy.LibRawDataError: "its sensor data is damaged",
    rawpy.LibRawTooBigError: "its header claims a size no camera records; the file is damaged",
}


def _reason(error: rawpy.LibRawError, messages: list[str]) -> str:
    text = error.args[0] if error.args else type(error).__name__
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    said = "; ".join(dict.fromkeys([f"{text[:1].lower()}{text[1:]}", *messages]))
    meaning = next((meaning for kind, meaning in _MEANINGS.items() if isinstance(error, kind)), "")
    return f"LibRaw: {said}" + (f": {meaning}" if meaning else "")


def upright_size(sizes: rawpy.ImageSizes) -> tuple[int, int]:
    """The size (width, height) of the photo LibRaw renders, after its orientation is applied."""
    return (sizes.height, sizes.width) if sizes.flip & _SWAPS_AXES else (sizes.width, sizes.height)


def _oriented(image: Image.Image, flip: int) -> Image.Image:
    return image.transpose(_FLIP_TRANSPOSES[flip]) if flip in _FLIP_TRANSPOSES else image


def _check_pixels(size: tuple[int, int]) -> None:
    """Pillow's decompression-bomb rule for the sensor's pixels (an error above twice Image.MAX_IMAGE_PIXELS, a warning
    above it), so that keeptrash.images.pixel_limit refuses a RAW as it refuses any other image."""
    pixels = size[0] * size[1]
    if not Image.MAX_IMAGE_PIXELS or pixels <= Image.MAX_IMAGE_PIXELS:
        return
    message = f"Image size ({pixels} pixels) exceeds limit of {Image.MAX_IMAGE_PIXELS} pixels"
    if pixels > 2 * Image.MAX_IMAGE_PIXELS:
        raise Image.DecompressionBombError(message)
    warnings.warn(message, Image.DecompressionBombWarning)


def _preview(raw: rawpy.RawPy) -> Image.Image | None:
    """The largest embedded preview, as stored (not yet upright); None when there is none LibRaw can read."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        return Image.fromarray(thumb.data)
    return Image.open(io.BytesIO(thumb.data))


def decode_cache_path(digest: str) -> Path:
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keeptrash"
    root = Path(os.environ.get(DECODE_CACHE_ENV) or user_cache)
    return root / _DECODE_CACHE_FOLDER / digest[:2] / f"{digest}.jpg"


def _cached_decode(path: Path, raw: rawpy.RawPy) -> Image.Image:
    """The half-size decode of the open RAW, upright, from the cache (opened, not yet decoded) or decoded now and cached."""
    with path.open("rb") as handle:
        cached = decode_cache_path(hashlib.file_digest(handle, "sha256").hexdigest())
    if cached.is_file():
        return Image.open(cached)
    with libraw_errors():
        pixels = raw.postprocess(half_size=True, use_camera_wb=True)
    image = Image.fromarray(pixels)
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cached, lambda temp: image.save(temp, "JPEG", quality=_DECODE_QUALITY))
    return image


def open_raw(path: Path, decode_side: int, long_side: int = 0, preview_side: int = 0) -> tuple[Image.Image, tuple[int, int]]:
    """An upright RGB picture of a RAW file and the upright size of the photo its sensor holds (keeptrash.images.open_photo).

    The embedded preview is used when its long side reaches what is asked and preview_side (features.raw_preview_side);
    otherwise the (cached) half-size decode. A JPEG preview larger than needed decodes at a reduced DCT scale.
    """
    raw = rawpy.RawPy()
    try:
        with libraw_errors():
            raw.open_file(os.fspath(path))
            size = upright_size(raw.sizes)
            _check_pixels(size)
            preview = _preview(raw)
        needed = max(decode_side, long_side, preview_side)
        if preview is not None and max(preview.size) >= needed:
            return _oriented(_drafted(preview, decode_side, needed), raw.sizes.flip), size
        try:
            decoded = _cached_decode(Path(path), raw)
        except RawUnreadable as error:
            found = f"its embedded preview is {preview.width}x{preview.height}, below the {needed} px needed, and " if preview else ""
            raise RawUnreadable(f"{found}{error}") from None
        return _drafted(decoded, decode_side, needed), size
    finally:
        raw.close()


def _drafted(image: Image.Image, short_side: int, long_side: int) -> Image.Image:
    """RGB, a JPEG decoded at the smallest DCT scale still covering both sides (as keeptrash.images.open_photo does)."""
    short = min(short_side, long_side)
    image.draft("RGB", (long_side, short) if image.width >= image.height else (short, long_side))
    return image.convert("RGB")


def exif_capture_time(path: Path) -> tuple[str, str] | None:
    """The RAW's own EXIF capture time and its sub-seconds, as written ("2026:05:01 10:00:00", "25"); None when Exiv2
    cannot read the file or it holds no time."""
    # Exiv2 logs what it finds odd in a camera's maker notes; here only the time matters, and the warnings would cut
    # into progress bars. Muted for this call alone: other readers of Exiv2 (keeptrash.xmp) need its complaints.
    level = exiv2.LogMsg.level()
    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
    try:
        image = exiv2.ImageFactory.open(os.fspath(path))
        image.readMetadata()
    except exiv2.Exiv2Error:
        return None
    finally:
        exiv2.LogMsg.setLevel(level)
    exif = image.exifData()

    def first(keys: tuple[str, ...]) -> str:
        for key in keys:
            found = exif.findKey(exiv2.ExifKey(key))
            if found != exif.end():
                return str(found.value())
        return ""

    moment = first(_EXIF_TIME_KEYS)
    return (moment, first(_EXIF_SUBSEC_KEYS)) if moment else None
