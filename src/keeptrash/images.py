"""Finding photos on disk, checking that each one decodes, and opening it upright as 8-bit RGB."""

import contextlib
import hashlib
import io
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

# HEIC/HEIF (iPhone photos) decode through libheif, which pillow-heif bundles.
pillow_heif.register_heif_opener()

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif"}
OK, MISSING, CORRUPT = "ok", "missing", "corrupt"
# The reason prefix of usable photos whose EXIF metadata is damaged (AVA has some).
CORRUPT_EXIF = "corrupt EXIF ignored"
_EXIF_IFD = 0x8769
# What Pillow raises for files that are not (whole) images: truncated data, unknown formats, bad headers.
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)
_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_HASH_CHUNK = 1 << 20
_SIXTEEN_BIT_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def file_digest(path: Path) -> str:
    """sha256 of a file, read in chunks so a large one never sits in memory whole."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_images(folder: Path) -> list[Path]:
    """Entries named like images directly or anywhere below `folder`, in a stable order; hidden ones are skipped.

    Broken symlinks, pipes and other non-files are listed too, so that the download stage records
    each with its reason instead of it silently disappearing.
    """
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not _is_folder(path)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


class ImageTooLarge(Exception):
    """More pixels than the caller allows: a decompression bomb, or a panorama beyond the set limit."""


@contextlib.contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Open images under our pixel limit instead of Pillow's own (about 89 MP), raising ImageTooLarge above it."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow only warns between the limit and twice that; the warning guards the same danger.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(str(error)) from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


@dataclass(frozen=True)
class ImageCheck:
    status: str
    reason: str
    bytes: int
    sha256: str
    width: int
    height: int


def check_image(path: Path | None, max_pixels: int) -> ImageCheck:
    """Read the file once, hash it, and decode it fully with Pillow under a decompression-bomb limit."""
    if path is None or not os.path.lexists(path):
        return ImageCheck(MISSING, "file not found", 0, "", 0, 0)
    if not os.path.exists(path):
        return ImageCheck(MISSING, "broken symlink or symlink loop", 0, "", 0, 0)
    if not path.is_file():
        return ImageCheck(CORRUPT, "not a regular file", 0, "", 0, 0)
    try:
        data = path.read_bytes()
    except OSError as error:
        return ImageCheck(CORRUPT, f"unreadable: {error.strerror}", 0, "", 0, 0)
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ImageCheck(CORRUPT, "empty file", 0, digest, 0, 0)
    try:
        with pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.load()
            exif_problem = _exif_problem(image)
    except ImageTooLarge as error:
        return ImageCheck(CORRUPT, f"too large: {error}", len(data), digest, 0, 0)
    except DECODE_ERRORS as error:
        return ImageCheck(CORRUPT, f"not a decodable image: {error}", len(data), digest, 0, 0)
    return ImageCheck(OK, f"{CORRUPT_EXIF}: {exif_problem}" if exif_problem else "", len(data), digest, width, height)


def _exif_problem(image: Image.Image) -> str:
    """Why the image's EXIF cannot be read in full ("" if it can). The pixels are fine either way: such photos are
    used, upright as far as their EXIF says, and the manifest's reason says their EXIF is corrupt."""
    raw = image.info.get("exif", b"")
    if raw and (problem := _exif_layout_problem(raw.removeprefix(b"Exif\0\0"))):
        return problem  # Pillow drops such a block silently
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image.getexif().get_ifd(_EXIF_IFD)
        except Exception as error:  # noqa: BLE001 - Pillow's EXIF parser raises many kinds on hostile bytes
            return f"{type(error).__name__}: {error}"
    messages = [str(warning.message) for warning in caught if "EXIF" in str(warning.message)]
    return messages[0] if messages else ""


def _exif_layout_problem(tiff: bytes) -> str:
    """A TIFF header and first directory that do not fit in the EXIF block."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\0", b"MM\0*"):
        return "EXIF block without a TIFF header"
    order = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return f"EXIF directory at byte {offset}, beyond the {len(tiff)}-byte block"
    (entries,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    if offset + 2 + 12 * entries > len(tiff):
        return f"EXIF directory of {entries} entries cut short by the end of the block"
    return ""


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode; 16-bit greyscale is scaled down, where Pillow's own conversion would clip it."""
    if image.mode in _SIXTEEN_BIT_GREY_MODES:
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")


def open_photo(path: Path, decode_side: int, long_side: int = 0) -> tuple[Image.Image, tuple[int, int]]:
    """An upright RGB image at least `decode_side` on its short side and `long_side` on its long side where possible,
    and the original upright size.

    JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still covers both (Pillow's draft mode),
    which makes camera-sized photos several times cheaper to open. The orientation comes from the EXIF
    header of the same open file, so nothing is decoded twice.
    """
    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(_ORIENTATION_TAG) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        short, long = decode_side, max(decode_side, long_side)
        # draft() takes the size in stored orientation; long and short sides are the same either way.
        image.draft("RGB", (long, short) if image.width >= image.height else (short, long))
        return _to_rgb(ImageOps.exif_transpose(image)), (width, height)
