"""Put photos into keep/ and trash/ without ever overwriting or losing a file, and undo a move.

Every new name is claimed exclusively (a hard link or an O_EXCL create), so an existing file is
never replaced, even by another process racing for the same name. A move is a new name for the
photo, a journal line saying where it went, and only then removal of the old name.
"""

import errno
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keeptrash.images import file_digest
from keeptrash.errors import KeeptrashError

MODES = ("copy", "link", "move")
# Hard links cannot cross filesystems (EXDEV) and some filesystems refuse them outright.
_NO_HARD_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK}


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


# Most filesystems allow 255 bytes per file name.
NAME_MAX = 255


def _fitting(stem: str, ending: str) -> str:
    """stem + ending, the stem shortened (in bytes) where the whole would exceed NAME_MAX."""
    room = NAME_MAX - len(os.fsencode(ending))
    return os.fsdecode(os.fsencode(stem)[:room]) + ending


def candidate_paths(folder: Path, name: str) -> Iterator[Path]:
    """folder/name, then folder/stem-1.suffix, folder/stem-2.suffix, ...; long stems are shortened to make room."""
    yield folder / name
    stem, suffix = os.path.splitext(name)
    number = 1
    while True:
        yield folder / _fitting(stem, f"-{number}{suffix}")
        number += 1


def _copy_exclusive(source: Path, target: Path) -> None:
    with source.open("rb") as reader, target.open("xb") as writer:
        try:
            shutil.copyfileobj(reader, writer)
            writer.flush()
            os.fsync(writer.fileno())
        except BaseException:
            target.unlink()
            raise
    shutil.copystat(source, target)


def _transfer(source: Path, target: Path) -> None:
    """Make target the same file as source (a hard link, else a verified copy), keeping source; FileExistsError if taken.

    A symlink is recreated pointing at the absolute path of its photo: a relative one would
    resolve against its new folder.
    """
    if source.is_symlink():
        os.symlink(os.path.realpath(source), target)
        return
    try:
        os.link(source, target)
        return
    except OSError as error:
        if error.errno not in _NO_HARD_LINK:
            raise
    _copy_exclusive(source, target)
    if file_digest(source) != file_digest(target):
        target.unlink()
        raise OSError(errno.EIO, f"copy to {target} does not match the original; the original is untouched")


def _same_inode(first: Path, second: Path) -> bool:
    """Two names of one file (hard links); symlinks are not followed, so a link to a file is not that file."""
    try:
        one, other = os.lstat(first), os.lstat(second)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _digest_or_none(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def _link(source: Path, target: Path) -> str:
    # The photo itself, not a symlink to it: a relative symlink would point elsewhere from keep/ or trash/.
    photo = os.path.realpath(source)
    try:
        os.link(photo, target)
        return "linked"
    except OSError as error:
        if error.errno not in _NO_HARD_LINK:
            raise
    os.symlink(photo, target)
    return "symlinked"


def _already_there(source: Path, candidate: Path, mode: str) -> bool:
    """A copy or link from an earlier, perhaps interrupted, run: reuse it instead of making a duplicate."""
    if mode == "link":
        photo = os.path.realpath(source)
        return os.readlink(candidate) == photo if candidate.is_symlink() else _same_inode(Path(photo), candidate)
    return candidate.is_file() and candidate.stat().st_size == source.stat().st_size and file_digest(candidate) == file_digest(source)


class UndoJournal:
    """One JSON line per moved photo (from, to, sha256), synced to disk before the photo leaves its folder."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="ascii")

    def record(self, original: Path, moved_to: Path, sha256: str) -> None:
        # ensure_ascii keeps undecodable bytes in file names as \udcXX escapes, which read back exactly.
        entry = {"from": os.path.abspath(original), "to": os.path.abspath(moved_to), "sha256": sha256}
        self._handle.write(json.dumps(entry, ensure_ascii=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def sort_photo(source: Path, folder: Path, mode: str, sha256: str, journal: UndoJournal | None) -> tuple[Path, str]:
    """Copy, link or move source into folder under its own name or the first free suffixed one; (where, what was done)."""
    folder.mkdir(parents=True, exist_ok=True)
    for candidate in candidate_paths(folder, source.name):
        if _exists(candidate):
            if mode != "move" and _already_there(source, candidate, mode):
                return candidate, "already there"
            continue
        try:
            if mode == "copy":
                _copy_exclusive(source, candidate)
                return candidate, "copied"
            if mode == "link":
                return candidate, _link(source, candidate)
            _transfer(source, candidate)
        except FileExistsError:
            continue
        journal.record(source, candidate, sha256)
        try:
            os.unlink(source)
        except OSError:
            # The photo cannot leave (a read-only folder, say): drop the new name so nothing is duplicated;
            # undo finds the photo still in place.
            os.unlink(candidate)
            raise
        return candidate, "moved"
    raise AssertionError("candidate_paths is endless")


@dataclass
class UndoReport:
    restored: int = 0
    already_restored: int = 0
    problems: list[tuple[Path, str]] = field(default_factory=list)


def read_journal(path: Path) -> list[dict]:
    """The records of an undo journal; any line that is not one is an error naming it, before anything moves."""
    if not path.is_file():
        raise KeeptrashError(f"{path}: undo manifest not found; pass the undo-*.jsonl file that `keeptrash cull --move` wrote")
    entries = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("ascii"))
            entries.append({"from": Path(entry["from"]), "to": Path(entry["to"]), "sha256": str(entry["sha256"])})
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise KeeptrashError(f"{path}: line {number} is not an undo record (from, to, sha256); was the file edited?") from None
    return entries


def undo_moves(journal_path: Path) -> UndoReport:
    """Put every photo the journal moved back where it was; never overwrites, and can be run again safely."""
    report = UndoReport()
    for entry in reversed(read_journal(journal_path)):
        original, moved, sha256 = entry["from"], entry["to"], entry["sha256"]
        if not _exists(moved):
            if _digest_or_none(original) == sha256:
                report.already_restored += 1
            else:
                report.problems.append((original, f"missing: neither here nor at {moved}"))
            continue
        if _exists(original):
            if _same_inode(original, moved) or (_digest_or_none(original) == sha256 == _digest_or_none(moved) and not original.is_symlink()):
                # A move interrupted between its two steps: the photo is still in place and the new name is
                # the same file or a verified identical copy, so dropping that name loses nothing.
                os.unlink(moved)
                report.already_restored += 1
            else:
                report.problems.append((original, f"another file now has this name; the photo stays at {moved}"))
            continue
        if _digest_or_none(moved) != sha256:
            report.problems.append((original, f"{moved} is no longer the photo moved there (its bytes differ); left it in place"))
            continue
        try:
            original.parent.mkdir(parents=True, exist_ok=True)
            _transfer(moved, original)
        except OSError as error:
            report.problems.append((original, f"cannot restore ({error.strerror}); the photo stays at {moved}"))
            continue
        os.unlink(moved)
        report.restored += 1
    return report
