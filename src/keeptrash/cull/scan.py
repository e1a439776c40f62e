"""Walk a photo folder the way real libraries need: symlink loops, unreadable folders, one file reached twice."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from keeptrash.errors import KeeptrashError
from keeptrash.images import IMAGE_SUFFIXES


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


def scan_folder(root: Path, recursive: bool, exclude: Path | None = None) -> ScanResult:
    """Image files (by suffix) in `root`, and below it when recursive, in a stable order.

    Symlinks are followed, but a folder is entered once (a link back to an ancestor is reported
    as a loop, not followed) and a file reached by two routes is scored once. Hidden entries, such as
    macOS's ._IMG_0001.JPG resource forks, are not photos and are passed over. `exclude` is a
    folder not to enter: the output folder when it lies inside the one being culled.
    """
    if not root.is_dir():
        raise KeeptrashError(f"{root}: not a folder; pass the folder of photos to cull")
    result = ScanResult()
    entered: dict[tuple[int, int], Path] = {}
    ancestors: set[tuple[int, int]] = set()
    first_route: dict[tuple[int, int], Path] = {}
    excluded = _identity(exclude) if exclude is not None else None

    def visit(folder: Path) -> None:
        identity = _identity(folder)
        if identity in ancestors:
            result.skipped.append((folder, "symlink loop: links back to a folder that contains it"))
            return
        if identity in entered:
            result.skipped.append((folder, f"already scanned as {entered[identity]}"))
            return
        entered[identity] = folder
        ancestors.add(identity)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            result.skipped.append((folder, f"unreadable folder: {error.strerror}"))
            entries = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if recursive and _identity(path) != excluded:
                    visit(path)
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if entry.is_symlink() and not os.path.exists(path):
                result.skipped.append((path, "broken symlink or symlink loop"))
            elif not entry.is_file():
                result.skipped.append((path, "not a regular file"))
            elif (file_identity := _identity(path)) in first_route:
                result.skipped.append((path, f"same file as {first_route[file_identity]}"))
            else:
                first_route[file_identity] = path
                result.photos.append(path)
        ancestors.discard(identity)

    visit(root)
    return result
