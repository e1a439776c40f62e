"""XMP properties of photos: read from a sidecar or from the photo itself, and merged into a sidecar or a photo.

Properties are plain dicts of qualified names (`xmp:Rating`, `digiKam:PickLabel`, `keeptrash:Probability`, nested
ones as Exiv2 writes their paths: `darktable:history[1]/darktable:operation`) to text. The prefix is the
namespace's usual one whatever prefix the file declares (Photo Mechanic's `xap:Rating` reads as `xmp:Rating`).

Exiv2 (python-exiv2) parses and serialises: no XML is built by hand, and merging keeps every other property and
namespace (benchmarks/xmp_libraries.py measured it against pyexiv2). Everything here works on bytes in memory; the
caller writes them (safely, see keeptrash.cull.sidecars).
"""

import hashlib
import io
import logging
import stat
from collections.abc import Mapping
from pathlib import Path

import exiv2
import tifffile

from keeptrash.errors import KeeptrashError

KEEPTRASH_NAMESPACE, KEEPTRASH_PREFIX = "https://keeptrash.invalid/xmp/1.0/", "keeptrash"
# Namespaces Exiv2 does not know by itself, so that their properties read under the usual prefix.
EXTRA_NAMESPACES = {
    KEEPTRASH_PREFIX: KEEPTRASH_NAMESPACE,
    "photomechanic": "http://ns.camerabits.com/photomechanic/1.0/",
}
for _prefix, _uri in EXTRA_NAMESPACES.items():
    exiv2.XmpProperties.registerNs(_uri, _prefix)

SIDECAR_SUFFIX = ".xmp"
# Formats whose files Exiv2 rewrites with their XMP inside (HEIC it only reads; camera RAW files are never rewritten).
EMBEDDABLE_SUFFIXES = {".jpg", ".jpeg", ".tif", ".tiff", ".dng"}
_JPEG_SUFFIXES = {".jpg", ".jpeg"}
# Real sidecars are kilobytes, darktable's with a long history a few megabytes; a larger one (a sparse file of
# gigabytes) would be read whole into memory.
MAX_SIDECAR_BYTES = 16 * 2**20


class XmpError(KeeptrashError):
    """XMP that cannot be read or written, in one line naming the file."""


class _Exiv2Complaints(logging.Handler):
    """Exiv2 reports a broken XMP packet through its log (python-exiv2 forwards it to logging), not as an exception."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _exiv2_call(what: Path, action, *arguments):
    """action(*arguments), with an Exiv2 exception or logged XMP error turned into one XmpError naming `what`."""
    logger = logging.getLogger("exiv2")
    complaints = _Exiv2Complaints()
    logger.addHandler(complaints)
    propagate, logger.propagate = logger.propagate, False
    # Another module may have muted Exiv2's log for the whole process (keeptrash.raw mutes it while it reads a capture
    # time): a broken packet would then read as no XMP at all. Its warnings are let through to the handler above meanwhile.
    level = exiv2.LogMsg.level()
    exiv2.LogMsg.setLevel(min(level, exiv2.LogMsg.Level.warn, key=int))
    try:
        result = action(*arguments)
    except exiv2.Exiv2Error as error:
        raise XmpError(f"{what}: Exiv2 cannot read or write its XMP ({error})") from None
    finally:
        exiv2.LogMsg.setLevel(level)
        logger.removeHandler(complaints)
        logger.propagate = propagate
    broken = [message for message in complaints.messages if "XMP" in message]
    if broken:
        raise XmpError(f"{what}: its XMP is not well-formed ({broken[0]}); repair or remove it")
    return result


def _opened(data: bytes | None, what: Path):
    """An Exiv2 image in memory (a sidecar for None: a new, empty one) with its metadata read."""

    def open_and_read():
        image = exiv2.ImageFactory.open(data) if data else exiv2.ImageFactory.create(exiv2.ImageType.xmp)
        image.readMetadata()
        return image

    return _exiv2_call(what, open_and_read)


def _qualified(key: str) -> str:
    """Exiv2's Xmp.xmp.Rating as xmp:Rating."""
    _, prefix, name = key.split(".", 2)
    return f"{prefix}:{name}"


def _exiv2_key(qualified: str) -> str:
    prefix, name = qualified.split(":", 1)
    return f"Xmp.{prefix}.{name}"


def _properties_of(image) -> dict[str, str]:
    return {_qualified(datum.key()): datum.toString() for datum in image.xmpData()}


def read_bytes(path: Path) -> bytes:
    """The bytes of a sidecar (.xmp) or photo to read XMP from; a sidecar that is not a regular file or is larger than
    MAX_SIDECAR_BYTES is refused before it is read."""
    try:
        if path.suffix.lower() == SIDECAR_SUFFIX:
            status = path.stat()
            if not stat.S_ISREG(status.st_mode):
                raise XmpError(f"{path}: the sidecar is not a regular file; remove it or rename it")
            if status.st_size > MAX_SIDECAR_BYTES:
                raise XmpError(
                    f"{path}: the sidecar is {status.st_size / 2**20:.0f} MiB, over the {MAX_SIDECAR_BYTES // 2**20} MiB an XMP sidecar can be; "
                    "repair or remove it"
                )
        return path.read_bytes()
    except OSError as error:
        raise XmpError(f"{path}: cannot read it ({error.strerror})") from None


def read_file(path: Path) -> dict[str, str]:
    """The XMP properties of one file: a sidecar (.xmp) or the XMP embedded in a photo; {} when it has none."""
    return read_packet(read_bytes(path), path)


def read_packet(data: bytes, what: Path) -> dict[str, str]:
    """The XMP properties in the bytes of a sidecar or photo read from `what` (named in errors)."""
    if not data.strip():
        if what.suffix.lower() == SIDECAR_SUFFIX:
            raise XmpError(f"{what}: the sidecar is empty; remove it or restore it from a backup")
        return {}
    return _properties_of(_opened(data, what))


def sidecar_names(photo: Path) -> tuple[Path, Path]:
    """IMG_0001.xmp (Lightroom, Capture One, DxO, Photo Mechanic) and IMG_0001.CR2.xmp (darktable, digiKam)."""
    return photo.with_suffix(SIDECAR_SUFFIX), photo.with_name(photo.name + SIDECAR_SUFFIX)


def existing_sidecars(photo: Path) -> list[Path]:
    """The photo's sidecars that exist, in either naming, .xmp or .XMP (as cameras and Windows name them)."""
    found = []
    for name in sidecar_names(photo):
        for candidate in (name, name.with_suffix(SIDECAR_SUFFIX.upper())):
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
                break
    return found


def read_properties(photo: Path) -> dict[str, str]:
    """The XMP properties of a photo: those embedded in it, overridden by its sidecars' (IMG_0001.xmp, then the more
    specific IMG_0001.CR2.xmp): a DAM that keeps sidecars records its latest edits there. {} when it has no XMP."""
    properties = read_file(photo) if photo.suffix.lower() in EMBEDDABLE_SUFFIXES | {".heic", ".heif"} else {}
    for sidecar in existing_sidecars(photo):
        properties.update(read_file(sidecar))
    return properties


def _set_all(image, properties: Mapping[str, str | None], what: Path) -> bytes:
    # A file read earlier in this process may have declared another prefix for a namespace (Photo Mechanic's xap: for
    # xmp:); the XMP toolkit would then write that one into a new sidecar. Each is written with its usual prefix.
    for prefix in {name.split(":", 1)[0] for name in properties}:
        exiv2.XmpProperties.registerNs(exiv2.XmpProperties.ns(prefix), prefix)
    data = image.xmpData()
    for name, value in properties.items():
        if value is not None:
            data[_exiv2_key(name)] = str(value)
        elif (found := data.findKey(exiv2.XmpKey(_exiv2_key(name)))) != data.end():
            data.erase(found)
    _exiv2_call(what, image.writeMetadata)
    with image.io().mmap() as view:
        return bytes(view)


def merged_sidecar(existing: bytes | None, properties: Mapping[str, str | None], what: Path) -> bytes:
    """The sidecar `existing` (None: a new one) with `properties` set (None: removed); every other property and
    namespace kept."""
    return _set_all(_opened(existing, what), properties, what)


def _jpeg_image_data(data: bytes) -> bytes:
    """Every JPEG segment but the APPn and COM ones (where metadata lives), then all from the first scan to the end."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    position, kept = 2, []
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xDA:  # start of scan: the compressed image, and whatever follows it, unchanged to the end
            kept.append(data[position:])
            break
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            kept.append(data[position:end])
        position = end
    return b"".join(kept)


def _tiff_image_data(data: bytes) -> bytes:
    """The strips and tiles of every image of a TIFF or DNG, the SubIFDs' (where a DNG keeps its sensor data) too."""
    kept = []
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        pending = list(tiff.pages)
        while pending:
            page = pending.pop(0)
            kept.extend(data[offset : offset + count] for offset, count in zip(page.dataoffsets, page.databytecounts))
            if page.subifds:
                pending.extend(tifffile.TiffPages(page))
    return b"".join(kept)


def image_data_digest(data: bytes, suffix: str) -> str:
    """sha256 of a photo's image data alone: what writing XMP into the photo must leave byte for byte as it was."""
    reader = _jpeg_image_data if suffix.lower() in _JPEG_SUFFIXES else _tiff_image_data
    return hashlib.sha256(reader(data)).hexdigest()


def embedded(data: bytes, properties: Mapping[str, str | None], photo: Path) -> bytes:
    """The bytes of the photo (read as `data`) with `properties` merged into its XMP; XmpError unless its image data is
    byte for byte the same afterwards."""
    if photo.suffix.lower() not in EMBEDDABLE_SUFFIXES:
        raise XmpError(f"{photo}: keeptrash writes XMP into JPEG, TIFF and DNG files only; it gets a sidecar")
    written = _set_all(_opened(data, photo), properties, photo)
    try:
        same = image_data_digest(written, photo.suffix) == image_data_digest(data, photo.suffix)
    except (ValueError, tifffile.TiffFileError) as error:
        raise XmpError(f"{photo}: cannot check its image data ({error}); left unchanged") from None
    if not same:
        raise XmpError(f"{photo}: writing XMP into it would change its image data; left unchanged")
    return written
