"""Walk a photo folder the way real libraries need: symlink loops, unreadable folders, one file reached twice."""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keeptrash.errors import KeeptrashError
from keeptrash.images import IMAGE_SUFFIXES

# Formats people keep photos in beyond those the pipeline trains on (which include camera RAW files): listed, and scored
# when Pillow decodes them (GIF, AVIF, BMP, JPEG 2000, ...), else skipped with the reason, never silently left out.
PHOTO_SUFFIXES = IMAGE_SUFFIXES | {".gif", ".avif", ".bmp", ".jfif", ".jpe", ".jp2", ".jxl", ".psd"}


@dataclass
class ScanResult:
    photos: list[Path] = field(default_factory=list)
    # (path, reason) for every image-named entry, or folder, that cannot be scored.
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _is_folder(entry: os.DirEntry) -> bool | None:
    """Whether the entry is (or links to) a folder; None when even that cannot be told (e.g. a symlink to itself)."""
    try:
        return entry.is_dir()
    except OSError:
        return None


def scan_folder(root: Path, recursive: bool, exclude: tuple[Path, ...] = (), follow_links: bool = False) -> ScanResult:
    """Photo files (by suffix) in `root`, and below it when recursive, in a stable order.

    Symlinked files are listed (a move moves the link, not the photo). Symlinked folders are reported, not
    entered, unless follow_links; then a folder is entered once (a link back to an ancestor is reported
    as a loop, not followed) and a file reached by two routes is scored once. Hidden entries, such as
    macOS's ._IMG_0001.JPG resource forks, are not photos and are passed over. `exclude` holds
    folders not to enter: where the output goes when it lies inside the folder being culled. The
    walk keeps its own stack, so any depth of nesting works.
    """
    if not root.is_dir():
        raise KeeptrashError(f"{root}: not a folder; pass the folder of photos to cull")
    result = ScanResult()
    entered: dict[tuple[int, int], Path] = {}
    first_route: dict[tuple[int, int], Path] = {}
    excluded = {_identity(folder) for folder in exclude} - {None}
    # (identity, remaining entries) for every folder being walked: root first, the deepest last.
    open_folders: list[tuple[tuple[int, int] | None, Iterator[os.DirEntry]]] = []

    def enter(folder: Path) -> None:
        identity = _identity(folder)
        if identity in {walking for walking, _ in open_folders}:
            result.skipped.append((folder, "symlink loop: links back to a folder that contains it"))
            return
        if identity in entered:
            result.skipped.append((folder, f"already scanned as {entered[identity]}"))
            return
        entered[identity] = folder
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            result.skipped.append((folder, f"unreadable folder: {error.strerror}"))
            return
        open_folders.append((identity, iter(entries)))

    enter(root)
    while open_folders:
        entry = next(open_folders[-1][1], None)
        if entry is None:
            open_folders.pop()
            continue
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue
        is_folder = _is_folder(entry)
        if is_folder is None:
            result.skipped.append((path, "symlink loop or unreadable entry"))
        elif is_folder:
            if not recursive or _identity(path) in excluded:
                continue
            if entry.is_symlink() and not follow_links and _identity(path) not in {walking for walking, _ in open_folders}:
                result.skipped.append((path, "symlinked folder not followed: pass --follow-links to score the photos in it"))
            else:
                enter(path)
        elif path.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        elif entry.is_symlink() and not os.path.exists(path):
            result.skipped.append((path, "broken symlink or symlink loop"))
        elif not entry.is_file():
            result.skipped.append((path, "not a regular file"))
        elif (file_identity := _identity(path)) in first_route:
            result.skipped.append((path, f"same file as {first_route[file_identity]}"))
        else:
            first_route[file_identity] = path
            result.photos.append(path)
    return result
