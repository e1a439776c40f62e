"""Put photos into keep/ and trash/ without ever overwriting or losing a file, and undo a move.

Every new name is claimed exclusively (a hard link, a symlink, or a rename that refuses to replace), so an existing
file is never replaced, even by another process racing for the same name. A copy, including the copy a move makes
across filesystems, is written to a hidden temporary file beside its final name, synced, checked against its
sha256 and only then given the final name, so a killed run never leaves part of a photo under a photo's name; the
next run resumes that temporary file. A move is a new name for the photo, a journal line saying where it went, and
only then removal of the old name. Runs that sort or undo hold an exclusive lock on the folders they change.
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from keeptrash.cull import KEEP, TRASH
from keeptrash.errors import KeeptrashError
from keeptrash.images import file_digest

MODES = ("copy", "link", "move")
# Hard links cannot cross filesystems (EXDEV) and some filesystems refuse them outright.
_NO_HARD_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK}
_COPY_CHUNK = 1 << 20
# A temporary copy is named after the photo and its sha256 and ends so: a rerun recognises its own copy of that very
# photo (and resumes it), and clean-up removes nothing it did not write.
PARTIAL_SUFFIX = ".keeptrash-partial"
_PARTIAL_DIGEST = 16
_PARTIAL_NAME = re.compile(rf"\..*\.[0-9a-f]{{{_PARTIAL_DIGEST}}}{re.escape(PARTIAL_SUFFIX)}", re.DOTALL)
JOURNAL_VERSION = 2


class SortRefused(Exception):
    """This photo is not sorted, for the reason given; the run goes on with the others."""


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


def _inside(path: str | Path, folder: str | Path) -> bool:
    """Whether path, its symlinks resolved, is folder or lies below it."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


@contextlib.contextmanager
def exclusive_folders(*folders: Path) -> Iterator[None]:
    """Hold an exclusive lock (flock) on each folder; the system drops it when the process ends, however it ends.

    The lock is on the folder itself, so nothing is written into a photo folder to take it.
    """
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys(os.path.realpath(folder) for folder in folders):
            try:
                handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as error:
                raise KeeptrashError(f"{folder}: cannot open the folder to lock it ({error.strerror})") from None
            stack.callback(os.close, handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise KeeptrashError(
                    f"{folder}: another keeptrash run is sorting or undoing in this folder; let it finish, then run again"
                ) from None
        yield


def _partial_path(folder: Path, name: str, sha256: str) -> Path:
    return folder / _fitting(f".{name}", f".{sha256[:_PARTIAL_DIGEST]}{PARTIAL_SUFFIX}")


def _resume_point(reader, writer) -> int:
    """Bytes at the start of writer that equal reader's, in whole chunks; both are left there, the rest cut off."""
    done = 0
    while (ours := writer.read(_COPY_CHUNK)) and reader.read(len(ours)) == ours:
        done += len(ours)
    reader.seek(done)
    writer.seek(done)
    writer.truncate(done)
    return done


def _fsync_folder(folder: Path) -> None:
    """Make the names just created in folder survive a power cut, not only the bytes they name."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _verified_copy(source: Path, temp: Path, sha256: str) -> Path:
    """Copy source into temp (resuming what an interrupted run left there), sync it and check that it has sha256."""
    with contextlib.suppress(FileNotFoundError):
        status = os.lstat(temp)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EEXIST, f"{temp} is in the way of a temporary copy and is not one; move it away")
        if status.st_nlink > 1:
            # Killed after giving the copy its final name: that name keeps the bytes, this one starts afresh.
            temp.unlink()
    try:
        with source.open("rb") as reader:
            handle = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            with os.fdopen(handle, "r+b") as writer:
                _resume_point(reader, writer)
                while chunk := reader.read(_COPY_CHUNK):
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
        if file_digest(temp) != sha256:
            raise OSError(errno.EIO, f"the copy of {source} does not match it (changed while copied?); the original is untouched")
        shutil.copystat(source, temp)
    except Exception:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _rename_without_replacing(source: Path, target: Path) -> None:
    """rename() that fails with FileExistsError instead of replacing target (Linux renameat2 RENAME_NOREPLACE)."""
    at_current_folder, no_replace = -100, 1
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        raise OSError(errno.ENOTSUP, "this system can neither hard-link nor rename without replacing")
    if libc.renameat2(at_current_folder, os.fsencode(source), at_current_folder, os.fsencode(target), no_replace) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))  # FileExistsError for EEXIST


def _claim(temp: Path, target: Path) -> None:
    """Give the finished temporary copy the name target, unless that name is taken (FileExistsError)."""
    try:
        os.link(temp, target)
    except OSError as error:
        if error.errno not in _NO_HARD_LINK:
            raise
        _rename_without_replacing(temp, target)
    else:
        os.unlink(temp)
    _fsync_folder(target.parent)


def _hard_linked(source: Path, target: Path) -> bool:
    """Make target a second name of source; False where the filesystem cannot (across filesystems, say)."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in _NO_HARD_LINK:
            raise
        return False
    return True


@contextlib.contextmanager
def _copier(source: Path, folder: Path, name: str, sha256: str) -> Iterator[Callable[[Path], None]]:
    """copy_to(target): give target in folder a verified copy of source, copied once into a temporary file named
    after `name` however many taken targets are tried (FileExistsError each); the temporary file goes if unused."""
    temp = None

    def copy_to(target: Path) -> None:
        nonlocal temp
        temp = temp or _verified_copy(source, _partial_path(folder, name, sha256), sha256)
        _claim(temp, target)
        temp = None

    try:
        yield copy_to
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


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
    if _hard_linked(Path(photo), target):
        return "linked"
    os.symlink(photo, target)
    return "symlinked"


def _already_there(source: Path, candidate: Path, mode: str) -> bool:
    """A copy or link from an earlier, perhaps interrupted, run: reuse it instead of making a duplicate."""
    if mode == "link":
        photo = os.path.realpath(source)
        return os.readlink(candidate) == photo if candidate.is_symlink() else _same_inode(Path(photo), candidate)
    return candidate.is_file() and candidate.stat().st_size == source.stat().st_size and file_digest(candidate) == file_digest(source)


class UndoJournal:
    """An undo journal: a header naming the culled folder, then one JSON line per moved photo (from, to, sha256),
    synced to disk before the photo leaves its folder.

    "from" is relative to the culled folder and "to" to the journal's own folder, so the output folder can be
    renamed or moved and undo still finds the photos beside the journal.
    """

    def __init__(self, path: Path, culled: Path, fresh: bool = False):
        self.path = path
        self.culled = Path(os.path.abspath(culled))
        self.moves = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("x" if fresh else "a", encoding="ascii")
        self._write({"keeptrash_undo": JOURNAL_VERSION, "culled": str(self.culled)})

    def _write(self, entry: dict) -> None:
        # ensure_ascii keeps undecodable bytes in file names as \udcXX escapes, which read back exactly.
        self._handle.write(json.dumps(entry, ensure_ascii=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def check_move(self, source: Path, folder: Path) -> None:
        """SortRefused unless source's folder lies in the culled folder and folder is this journal's keep/ or trash/."""
        if not _inside(source.parent, self.culled):
            raise SortRefused(f"it lies outside {self.culled} (through a symlinked folder); only photos inside are moved")
        if os.path.abspath(folder) not in {os.path.abspath(self.path.parent / name) for name in (KEEP, TRASH)}:
            raise ValueError(f"{folder} is not the keep/ or trash/ folder beside {self.path}")

    def record(self, original: Path, moved_to: Path, sha256: str) -> None:
        entry = {
            "from": os.path.relpath(os.path.abspath(original), self.culled),
            "to": os.path.relpath(os.path.abspath(moved_to), os.path.abspath(self.path.parent)),
            "sha256": sha256,
        }
        self._write(entry)
        self.moves += 1

    def close(self) -> None:
        self._handle.close()


def new_journal(out: Path, culled: Path) -> UndoJournal:
    """A journal of its own for this run in out (undo-<date>-<time>.jsonl, numbered when that name is taken)."""
    for candidate in candidate_paths(out, f"undo-{datetime.now():%Y%m%d-%H%M%S}.jsonl"):
        try:
            return UndoJournal(candidate, culled, fresh=True)
        except FileExistsError:
            continue
    raise AssertionError("candidate_paths is endless")


def _place_copy(source: Path, folder: Path, sha256: str) -> tuple[Path, str]:
    """Copy source into folder under its own name or the first free suffixed one, reusing an identical earlier copy."""
    with _copier(source, folder, source.name, sha256) as copy_to:
        for candidate in candidate_paths(folder, source.name):
            if _exists(candidate):
                if _already_there(source, candidate, "copy"):
                    return candidate, "already there"
                continue
            try:
                copy_to(candidate)
            except FileExistsError:
                continue
            return candidate, "copied"
    raise AssertionError("candidate_paths is endless")


def _new_name(source: Path, folder: Path, sha256: str) -> Path:
    """A new name in folder for the photo at source (a hard link, else a verified copy; a symlink stays a symlink)."""
    with _copier(source, folder, source.name, sha256) as copy_to:
        for candidate in candidate_paths(folder, source.name):
            if _exists(candidate):
                continue
            try:
                if source.is_symlink():
                    # Pointing at the absolute path of its photo: a relative one would resolve against its new folder.
                    os.symlink(os.path.realpath(source), candidate)
                elif not _hard_linked(source, candidate):
                    copy_to(candidate)
            except FileExistsError:
                continue
            return candidate
    raise AssertionError("candidate_paths is endless")


def _unchanged(path: Path, before: os.stat_result) -> bool:
    after = path.stat()
    return (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def _move(source: Path, folder: Path, scored_sha256: str, journal: UndoJournal) -> tuple[Path, str]:
    journal.check_move(source, folder)
    before = source.stat()
    # Hashed now, not when scored: the journal holds the bytes that were actually moved.
    sha256 = file_digest(source)
    moved = _new_name(source, folder, sha256)
    if not _unchanged(source, before):
        os.unlink(moved)
        raise SortRefused("it changed while being moved; left in place, run again to move it")
    try:
        journal.record(source, moved, sha256)
        os.unlink(source)
    except OSError:
        # No journal line, or the photo cannot leave (a read-only folder, say): drop the new name so nothing is
        # duplicated; undo finds the photo still in place.
        os.unlink(moved)
        raise
    return moved, "moved" if sha256 == scored_sha256 else "moved (its bytes changed after scoring)"


def sort_photo(source: Path, folder: Path, mode: str, sha256: str, journal: UndoJournal | None) -> tuple[Path, str]:
    """Copy, link or move source into folder under its own name or the first free suffixed one; (where, what was done).

    SortRefused (or OSError) when this photo cannot be sorted; nothing is left half done.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "move":
        return _move(source, folder, sha256, journal)
    if mode == "copy":
        return _place_copy(source, folder, file_digest(source))
    for candidate in candidate_paths(folder, source.name):
        if _exists(candidate):
            if _already_there(source, candidate, mode):
                return candidate, "already there"
            continue
        try:
            return candidate, _link(source, candidate)
        except FileExistsError:
            continue
    raise AssertionError("candidate_paths is endless")


def remove_stale_partials(out: Path) -> None:
    """Temporary copies that a killed run left in out/keep and out/trash: only files named as this module names them.

    Call it holding the lock on out, after sorting: then no run is writing one, and this run resumed its own.
    """
    for folder in (out / KEEP, out / TRASH):
        for entry in os.scandir(folder) if folder.is_dir() else ():
            if _PARTIAL_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


@dataclass
class UndoReport:
    restored: int = 0
    already_restored: int = 0
    problems: list[tuple[Path, str]] = field(default_factory=list)


def _relative_inside(value: str) -> bool:
    """A relative path that stays below the folder it is relative to (no "..", not absolute)."""
    return not os.path.isabs(value) and ".." not in Path(value).parts and value not in ("", ".")


def _outside(edited: str, key: str, value: str, where: str) -> KeeptrashError:
    return KeeptrashError(f"{edited}: '{key}' {value!r} is outside {where}; undo only touches what cull moved (was the file edited?)")


def _parse_journal(path: Path) -> tuple[list[dict], set[Path]]:
    """The records (absolute paths) and the culled folders of a journal; any line that is not a record, or that
    points outside the journal's keep/ and trash/ or outside its culled folder, is an error naming it."""
    if not path.is_file():
        raise KeeptrashError(f"{path}: undo manifest not found; pass the undo-*.jsonl file that `keeptrash cull --move` wrote")
    output = Path(os.path.abspath(path.parent))
    entries, culled_folders, culled = [], set(), None
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        edited = f"{path}: line {number}"
        try:
            entry = json.loads(line.decode("ascii"))
            if isinstance(entry, dict) and "keeptrash_undo" in entry:
                culled = Path(os.path.abspath(entry["culled"]))
                culled_folders.add(culled)
                continue
            original, moved, sha256 = str(entry["from"]), str(entry["to"]), str(entry["sha256"])
            if not isinstance(entry["from"], str) or not isinstance(entry["to"], str):
                raise TypeError
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise KeeptrashError(f"{edited} is not an undo record (from, to, sha256); was the file edited?") from None
        sorted_output = f"{output}/{KEEP} and /{TRASH}"
        if culled is not None:  # today's journals: paths relative to the culled folder and to the journal's folder
            if not (_relative_inside(original) and _inside(Path(culled, original).parent, culled)):
                raise _outside(edited, "from", original, f"the culled folder {culled}")
            if not _relative_inside(moved):
                raise _outside(edited, "to", moved, sorted_output)
            original, moved = culled / original, output / moved
        elif not (os.path.isabs(original) and os.path.isabs(moved)):  # older journals held absolute paths only
            raise KeeptrashError(f"{edited} has relative paths but no header naming the culled folder; was the file edited?")
        if os.path.relpath(moved, output).split(os.sep)[0] not in (KEEP, TRASH) or not _inside(Path(moved).parent, output):
            raise _outside(edited, "to", str(moved), sorted_output)
        entries.append({"from": Path(original), "to": Path(moved), "sha256": sha256})
    return entries, culled_folders


def read_journal(path: Path) -> list[dict]:
    """The records of an undo journal, paths made absolute; a line that is not one, or that points outside the
    sorted output or the culled folder, is an error naming it, before anything moves."""
    return _parse_journal(path)[0]


def _restore(moved: Path, original: Path, sha256: str) -> None:
    """Give the photo at moved its original name again (a hard link, else a verified copy); FileExistsError if taken."""
    if moved.is_symlink():
        os.symlink(os.path.realpath(moved), original)
    elif not _hard_linked(moved, original):
        with _copier(moved, original.parent, original.name, sha256) as copy_to:
            copy_to(original)


def _discard_partial(original: Path, sha256: str) -> None:
    """The temporary copy an interrupted undo left beside original, once that photo is settled."""
    with contextlib.suppress(OSError):
        partial = _partial_path(original.parent, original.name, sha256)
        if partial.is_file() and not partial.is_symlink():
            partial.unlink()


def undo_moves(journal_path: Path) -> UndoReport:
    """Put every photo the journal moved back where it was; never overwrites, and can be run again safely."""
    entries, culled_folders = _parse_journal(journal_path)
    report = UndoReport()
    existing = [folder for folder in culled_folders if folder.is_dir()]
    with exclusive_folders(journal_path.parent, *existing):
        for entry in reversed(entries):
            _undo_one(entry["from"], entry["to"], entry["sha256"], report)
    return report


def _undo_one(original: Path, moved: Path, sha256: str, report: UndoReport) -> None:
    if not _exists(moved):
        if _digest_or_none(original) == sha256:
            report.already_restored += 1
            _discard_partial(original, sha256)
        else:
            report.problems.append((original, f"missing: neither here nor at {moved}"))
        return
    if _exists(original):
        if _same_inode(original, moved) or (_digest_or_none(original) == sha256 == _digest_or_none(moved) and not original.is_symlink()):
            # A move interrupted between its two steps: the photo is still in place and the new name is
            # the same file or a verified identical copy, so dropping that name loses nothing.
            os.unlink(moved)
            report.already_restored += 1
            _discard_partial(original, sha256)
        else:
            report.problems.append((original, f"another file now has this name; the photo stays at {moved}"))
        return
    if _digest_or_none(moved) != sha256:
        report.problems.append((original, f"{moved} is no longer the photo moved there (its bytes differ); left it in place"))
        return
    try:
        original.parent.mkdir(parents=True, exist_ok=True)
        _restore(moved, original, sha256)
    except OSError as error:
        report.problems.append((original, f"cannot restore ({error.strerror or error}); the photo stays at {moved}"))
        return
    os.unlink(moved)
    report.restored += 1
