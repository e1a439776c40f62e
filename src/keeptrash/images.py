"""Finding photos on disk and checking that each one really is a decodable image."""

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
OK, MISSING, CORRUPT = "ok", "missing", "corrupt"


def list_images(folder: Path) -> list[Path]:
    """Image files directly or anywhere below `folder`, in a stable order; hidden files are skipped."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


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
    if path is None or not path.is_file():
        return ImageCheck(MISSING, "file not found", 0, "", 0, 0)
    try:
        data = path.read_bytes()
    except OSError as error:
        return ImageCheck(CORRUPT, f"unreadable: {error.strerror}", 0, "", 0, 0)
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ImageCheck(CORRUPT, "empty file", 0, digest, 0, 0)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Our limit replaces Pillow's own (about 89 MP) for this call only.
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            # Pillow only warns between max_pixels and twice that; treat the warning as the error it guards.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return ImageCheck(CORRUPT, f"too large: {error}", len(data), digest, 0, 0)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return ImageCheck(CORRUPT, f"not a decodable image: {error}", len(data), digest, 0, 0)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    return ImageCheck(OK, "", len(data), digest, width, height)
