"""Finding photos on disk, checking that each one decodes, and opening it upright as 8-bit RGB."""

import contextlib
import hashlib
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from keeptrash.raw import CHECKED_SIDE, RAW_SUFFIXES, is_raw, open_raw

# HEIC/HEIF (iPhone photos) decode through libheif, which pillow-heif bundles.
pillow_heif.register_heif_opener()

# Camera RAW files are photos too: LibRaw reads them (keeptrash.raw).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif"} | RAW_SUFFIXES
OK, MISSING, CORRUPT = "ok", "missing", "corrupt"
# The reason prefix of usable photos whose EXIF metadata is damaged (AVA has some).
CORRUPT_EXIF = "corrupt EXIF ignored"
_EXIF_IFD = 0x8769
# What Pillow raises for files that are not (whole) images: truncated data, unknown formats, bad headers.
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)
_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_SIXTEEN_BIT_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
# No image format stores more than 16 bytes a pixel (32-bit float RGBA, uncompressed), plus metadata (EXIF
# thumbnails, ICC profiles, XMP): a file larger than that for the pixel limit is refused before it is read.
MAX_BYTES_PER_PIXEL = 16
MAX_METADATA_BYTES = 16 * 1024 * 1024
# Object reprs such as <_io.BytesIO object at 0x7f...> in library messages: a new address every run.
_OBJECT_REPR = re.compile(r"\s*<[^<>]*(?: at 0x[0-9a-fA-F]+| name=[^<>]*)>")
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


def file_digest(path: Path) -> str:
    """sha256 of a file, streamed so a large one never sits in memory whole."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def readable_file_digest(path: Path) -> str | None:
    """The sha256 of a photo file, or None when it cannot be read (the download stage records why)."""
    try:
        return file_digest(path) if path.is_file() else None
    except OSError:
        return None


def max_file_bytes(max_pixels: int) -> int:
    """The largest file an image of at most max_pixels pixels can be."""
    return max_pixels * MAX_BYTES_PER_PIXEL + MAX_METADATA_BYTES


def error_text(error: BaseException) -> str:
    """A library's message without object reprs, so that the same failure gives the same reason every run."""
    return _OBJECT_REPR.sub("", str(error))


def list_images(folder: Path) -> list[Path]:
    """Entries named like images directly or anywhere below `folder`, in a stable order; hidden ones are skipped.

    Broken symlinks, pipes, symlinks to folders and other non-files are listed too, so that the download
    stage records each with its reason instead of it silently disappearing. Real folders named like
    images are not entries but folders: the photos in them are listed.
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
        return path.is_dir() and not path.is_symlink()
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
        # Pillow's message quotes its error threshold (twice the limit set), not the limit the user chose.
        pixels = _PILLOW_PIXELS.search(str(error))
        size = f"{pixels.group(1)} pixels" if pixels else "more pixels"
        raise ImageTooLarge(f"{size}, over the limit of {max_pixels} pixels") from None
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
    """Hash the file by streaming it, and decode it fully with Pillow under a decompression-bomb limit.

    A file larger than any image within the pixel limit could be is refused unread: a 30 GB sparse file
    named like a photo is neither hashed nor decoded.
    """
    if path is None or not os.path.lexists(path):
        return ImageCheck(MISSING, "file not found", 0, "", 0, 0)
    if not os.path.exists(path):
        return ImageCheck(MISSING, "broken symlink or symlink loop", 0, "", 0, 0)
    if path.is_symlink() and path.is_dir():
        return ImageCheck(CORRUPT, "a symlink to a folder, which is not followed; link the photos themselves", 0, "", 0, 0)
    if not path.is_file():
        return ImageCheck(CORRUPT, "not a regular file", 0, "", 0, 0)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_file_bytes(max_pixels):
                reason = f"too large: {size} bytes, more than an image of at most {max_pixels} pixels can be"
                return ImageCheck(CORRUPT, reason, size, "", 0, 0)
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            if not size:
                return ImageCheck(CORRUPT, "empty file", 0, digest, 0, 0)
            handle.seek(0)
            try:
                if is_raw(path):
                    with pixel_limit(max_pixels):
                        _, (width, height) = open_raw(path, CHECKED_SIDE)
                    exif_problem = ""
                else:
                    with pixel_limit(max_pixels), Image.open(handle) as image:
                        width, height = image.size
                        image.load()
                        exif_problem = _exif_problem(image)
            except ImageTooLarge as error:
                return ImageCheck(CORRUPT, f"too large: {error}", size, digest, 0, 0)
            except DECODE_ERRORS as error:
                return ImageCheck(CORRUPT, decode_failure(error), size, digest, 0, 0)
    except OSError as error:
        return ImageCheck(CORRUPT, f"unreadable: {error.strerror}", 0, "", 0, 0)
    return ImageCheck(OK, f"{CORRUPT_EXIF}: {exif_problem}" if exif_problem else "", size, digest, width, height)


def decode_failure(error: BaseException) -> str:
    return f"not a decodable image: {error_text(error)}"


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
            return f"{type(error).__name__}: {error_text(error)}"
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


def open_photo(path: Path, decode_side: int, long_side: int = 0, raw_preview_side: int = 0) -> tuple[Image.Image, tuple[int, int]]:
    """An upright RGB image at least `decode_side` on its short side and `long_side` on its long side where possible,
    and the original upright size.

    JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still covers both (Pillow's draft mode),
    which makes camera-sized photos several times cheaper to open. The orientation comes from the EXIF
    header of the same open file, so nothing is decoded twice. A RAW file is its embedded preview, or its half-size
    decode where the preview is smaller than asked or than raw_preview_side (keeptrash.raw.open_raw).
    """
    if is_raw(path):
        return open_raw(path, decode_side, long_side, raw_preview_side)
    with Image.open(path) as image:
        size = image.size
        short, long = decode_side, max(decode_side, long_side)
        # draft() takes the size in stored orientation; long and short sides are the same either way.
        image.draft("RGB", (long, short) if image.width >= image.height else (short, long))
        # Pillow's TIFF plugin reports the upright size from the start and turns the pixels upright while loading,
        # dropping the tag; other formats leave that to exif_transpose. So the size turns with the orientation
        # still pending once the pixels are loaded, the one exif_transpose applies to them.
        image.load()
        if image.getexif().get(_ORIENTATION_TAG) in _TRANSPOSING_ORIENTATIONS:
            size = size[::-1]
        return _to_rgb(ImageOps.exif_transpose(image)), size
