"""Selective, safe extraction of AVA images from the published 7z archive, single or split into volumes.

Only the members the labels ask for are decompressed, each straight to `<id>.jpg` in the images
folder (written to a temporary name, then renamed, so an interrupted run never leaves half an
image). Members whose names are not plain AVA image names are refused, never written: absolute
paths, `..` components, links, and anything but `<digits>.jpg`.
"""

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import multivolumefile
import py7zr
from py7zr.io import BytesIOFactory
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.io import atomic_write

_AVA_IMAGE = re.compile(r"(\d+)\.jpg")
_VOLUME = re.compile(r"(.+\.7z)\.\d+")
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


def _open(archive: Path):
    if archive.is_file():
        return archive.open("rb")
    return multivolumefile.open(str(archive), mode="rb")


def extract_images(archives_dir: Path, images_dir: Path, image_ids: Sequence[str]) -> Extraction:
    """Put every wanted id the archive holds at images_dir/<id>.jpg; ids already there are not extracted again."""
    archive = archive_path(archives_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    wanted, result = set(image_ids), Extraction()
    with _open(archive) as stream, py7zr.SevenZipFile(stream) as seven_zip:
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
        progress = tqdm(total=needed, desc=f"extracting from {archive.name}", unit="B", unit_scale=True, disable=None)
        for start in range(0, len(names), BATCH):
            batch = names[start : start + BATCH]
            seven_zip.reset()
            factory = BytesIOFactory(MAX_MEMBER_BYTES)
            seven_zip.extract(targets=batch, factory=factory)
            for name in batch:
                image_id, size = todo[name]
                member = factory.products[name]
                member.seek(0)
                data = member.read()
                atomic_write(images_dir / f"{image_id}.jpg", lambda temp, data=data: temp.write_bytes(data))
                result.extracted += 1
                progress.update(size)
        progress.close()
    return result
