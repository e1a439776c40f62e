"""Selective, safe extraction of AVA images from the published 7z archive, single or split into volumes.

Only the members the labels ask for are decompressed, each straight to `<id>.jpg` in the images
folder (written to a temporary name, then renamed, so an interrupted run never leaves half an
image). Members whose names are not plain AVA image names are refused, never written: absolute
paths, `..` components, links, and anything but `<digits>.jpg`.

A damaged archive (a volume missing, cut short or with flipped bits) ends in one line naming the
volume to fetch again; the images extracted and verified before the damage are kept.
"""

import lzma
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import multivolumefile
import py7zr
from py7zr.io import BytesIOFactory
from py7zr.properties import get_default_blocksize
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.io import atomic_write

_AVA_IMAGE = re.compile(r"(\d+)\.jpg")
_VOLUME = re.compile(r"(.+\.7z)\.(\d+)")
# What py7zr and its codecs raise on bytes that are not the archive they claim to be.
DAMAGED_ARCHIVE_ERRORS = (py7zr.exceptions.ArchiveError, lzma.LZMAError, EOFError)
# How far py7zr reads compressed bytes ahead of what it has decompressed.
READ_AHEAD = get_default_blocksize()
# The largest AVA JPEG is a few MB; a member claiming more is not an AVA photo (or is a bomb).
MAX_MEMBER_BYTES = 64 * 1024 * 1024
# Members decompressed per pass: bounds memory, and each pass's images are on disk before the next.
BATCH = 64


def archive_path(archives_dir: Path) -> Path:
    """The archive in archives_dir: `<name>.7z`, or the base name of its volumes `<name>.7z.001`, ..."""
    if not archives_dir.is_dir():
        raise KeeptrashError(f"{archives_dir}: folder of AVA archives not found (download.archives_dir)")
    names = sorted(path.name for path in archives_dir.iterdir())
    bases = sorted({match.group(1) for name in names if (match := _VOLUME.fullmatch(name))} | {name for name in names if name.endswith(".7z")})
    if len(bases) != 1:
        found = ", ".join(bases) or "none"
        raise KeeptrashError(f"{archives_dir}: expected one .7z archive or one set of .7z.001... volumes, found {found}")
    return archives_dir / bases[0]


def archive_volumes(archive: Path) -> list[Path]:
    """The files holding the archive, in order, after checking that none is missing or cut short.

    Split volumes all have the same size but the last, so a shorter one before it was truncated.
    """
    if archive.is_file():
        return [archive]
    numbered = sorted(
        (int(match.group(2)), path)
        for path in archive.parent.iterdir()
        if (match := _VOLUME.fullmatch(path.name)) and match.group(1) == archive.name
    )
    first = numbered[0][0]
    for expected, (number, path) in enumerate(numbered, start=first):
        if number != expected:
            raise KeeptrashError(f"{archive}: volume {expected} is missing (found {path.name} after it); fetch it again and rerun")
    volumes = [path for _, path in numbered]
    sizes = [path.stat().st_size for path in volumes[:-1]]
    for path, size in zip(volumes, sizes):
        if size < max(sizes):
            raise KeeptrashError(
                f"{path}: volume cut short ({size} bytes, the others have {max(sizes)}); delete it, fetch it again and rerun"
            )
    return volumes


def _volume_at(volumes: list[Path], position: int) -> Path:
    """The volume holding byte `position` of the archive (the last one for positions past its end)."""
    for path in volumes:
        size = path.stat().st_size
        if position < size:
            return path
        position -= size
    return volumes[-1]


def _damage(error: Exception) -> str:
    if isinstance(error, py7zr.exceptions.CrcError):
        return f"checksum mismatch in {error.args[2]}"
    return f"{type(error).__name__}: {error}"


def member_verdict(info: py7zr.FileInfo) -> tuple[str | None, str]:
    """(image id, "") for a safe AVA image member; (None, reason) for one to refuse; (None, "") for a folder."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if info.is_directory:
        return None, ""
    if path.is_absolute() or re.match(r"[A-Za-z]:", name):
        return None, "absolute path"
    if ".." in path.parts:
        return None, "path leaves the archive folder (..)"
    if info.is_symlink or not info.is_file:
        return None, "not a regular file (link or device)"
    match = _AVA_IMAGE.fullmatch(path.name)
    if not match:
        return None, "not an AVA image name (<digits>.jpg)"
    if info.uncompressed > MAX_MEMBER_BYTES:
        return None, f"{info.uncompressed} bytes, more than any AVA photo ({MAX_MEMBER_BYTES})"
    return str(int(match.group(1))), ""


@dataclass
class Extraction:
    images: dict[str, Path] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    extracted: int = 0
    member_start: int = 0  # where in the archive's bytes the member being decompressed began


class _TrackingFactory(BytesIOFactory):
    """Members in memory, noting the archive position at which each one starts (to name damaged volumes)."""

    def __init__(self, stream, result: Extraction):
        super().__init__(MAX_MEMBER_BYTES)
        self.stream, self.result = stream, result

    def create(self, filename: str):
        self.result.member_start = self.stream.tell()
        return super().create(filename)


def _open(archive: Path):
    if archive.is_file():
        return archive.open("rb")
    return multivolumefile.open(str(archive), mode="rb")


def extract_images(archives_dir: Path, images_dir: Path, image_ids: Sequence[str]) -> Extraction:
    """Put every wanted id the archive holds at images_dir/<id>.jpg; ids already there are not extracted again."""
    archive = archive_path(archives_dir)
    volumes = archive_volumes(archive)
    images_dir.mkdir(parents=True, exist_ok=True)
    result = Extraction()
    with _open(archive) as stream:
        try:
            with py7zr.SevenZipFile(stream) as seven_zip:
                _extract_wanted(seven_zip, stream, archive, images_dir, set(image_ids), result)
        except DAMAGED_ARCHIVE_ERRORS as error:
            # Header damage is found on opening, at the archive's end; data damage between where the member being
            # decompressed began and where reading stopped (a member is only checked once it is whole).
            end = volumes.index(_volume_at(volumes, stream.tell()))
            began = max(0, result.member_start - READ_AHEAD)
            start = end if isinstance(error, py7zr.Bad7zFile) else volumes.index(_volume_at(volumes, began))
            damaged = ", ".join(path.name for path in volumes[start : end + 1])
            raise KeeptrashError(
                f"{volumes[start]}: damaged or incomplete 7z archive ({_damage(error)}) in {damaged}; the {result.extracted} "
                f"images extracted before it are kept in {images_dir}; delete {damaged}, fetch again and rerun dvc repro"
            ) from None
    return result


def _extract_wanted(seven_zip: py7zr.SevenZipFile, stream, archive: Path, images_dir: Path, wanted: set[str], result: Extraction) -> None:
    members = {}
    for info in seven_zip.list():
        image_id, reason = member_verdict(info)
        if reason:
            result.refused.append((info.filename, reason))
        elif image_id in wanted:
            members[info.filename] = (image_id, info.uncompressed)
    todo = {name: (image_id, size) for name, (image_id, size) in members.items() if not (images_dir / f"{image_id}.jpg").is_file()}
    result.images = {image_id: images_dir / f"{image_id}.jpg" for image_id, _ in members.values()}
    needed = sum(size for _, size in todo.values())
    free = shutil.disk_usage(images_dir).free
    if needed > free:
        raise KeeptrashError(
            f"{images_dir}: extracting {len(todo)} images needs {needed / 1e9:.2f} GB, only {free / 1e9:.2f} GB free; free space or move download.images_dir"
        )
    names = sorted(todo)
    with tqdm(total=needed, desc=f"extracting from {archive.name}", unit="B", unit_scale=True, disable=None) as progress:
        for start in range(0, len(names), BATCH):
            batch = names[start : start + BATCH]
            seven_zip.reset()
            factory = _TrackingFactory(stream, result)
            try:
                seven_zip.extract(targets=batch, factory=factory)
            except DAMAGED_ARCHIVE_ERRORS:
                # py7zr checks each member's CRC before it starts the next: all but the last one begun are whole.
                _write_members(factory, list(factory.products)[:-1], todo, images_dir, result, progress)
                raise
            _write_members(factory, batch, todo, images_dir, result, progress)


def _write_members(factory: _TrackingFactory, names: list[str], todo: dict, images_dir: Path, result: Extraction, progress: tqdm) -> None:
    for name in names:
        image_id, size = todo[name]
        member = factory.products[name]
        member.seek(0)
        data = member.read()
        atomic_write(images_dir / f"{image_id}.jpg", lambda temp, data=data: temp.write_bytes(data))
        result.extracted += 1
        progress.update(size)
