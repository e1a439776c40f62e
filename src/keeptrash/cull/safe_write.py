"""Write a file without ever overwriting or losing one: claimed names, verified copies, resumable partial copies.

Every new name is claimed exclusively (a hard link, a symlink, or a rename that refuses to replace), so an existing
file is never replaced, even by another process racing for the same name. A copy is written to a hidden temporary
file beside its final name, synced, checked against its sha256 and only then given the final name, so a killed run
never leaves part of a file under its final name; the next run resumes that temporary file. Runs that write into
folders hold an exclusive lock on them.
"""

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from keeptrash.errors import KeeptrashError
from keeptrash.images import file_digest

# Hard links cannot cross filesystems (EXDEV) and some filesystems refuse them outright.
_NO_HARD_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK}
_COPY_CHUNK = 1 << 20
# A temporary copy is named after the photo and its sha256 and ends so: a rerun recognises its own copy of that very
# photo (and resumes it), and clean-up removes nothing it did not write.
PARTIAL_SUFFIX = ".keeptrash-partial"
_PARTIAL_DIGEST = 16
_PARTIAL_NAME = re.compile(rf"\..*\.[0-9a-f]{{{_PARTIAL_DIGEST}}}{re.escape(PARTIAL_SUFFIX)}", re.DOTALL)


def occupied(path: Path) -> bool:
    """Whether something has the name path, a broken symlink included."""
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


def inside(path: str | Path, folder: str | Path) -> bool:
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


def partial_path(folder: Path, name: str, sha256: str) -> Path:
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


def claim(temp: Path, target: Path) -> None:
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


def hard_linked(source: Path, target: Path) -> bool:
    """Make target a second name of source; False where the filesystem cannot (across filesystems, say)."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in _NO_HARD_LINK:
            raise
        return False
    return True


@contextlib.contextmanager
def copier(source: Path, folder: Path, name: str, sha256: str) -> Iterator[Callable[[Path], None]]:
    """copy_to(target): give target in folder a verified copy of source, copied once into a temporary file named
    after `name` however many taken targets are tried (FileExistsError each); the temporary file goes if unused."""
    temp = None

    def copy_to(target: Path) -> None:
        nonlocal temp
        temp = temp or _verified_copy(source, partial_path(folder, name, sha256), sha256)
        claim(temp, target)
        temp = None

    try:
        yield copy_to
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def same_inode(first: Path, second: Path) -> bool:
    """Two names of one file (hard links); symlinks are not followed, so a link to a file is not that file."""
    try:
        one, other = os.lstat(first), os.lstat(second)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def digest_or_none(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def remove_stale_partials(*folders: Path) -> None:
    """Temporary copies that a killed run left in folders: only files named as this module names them.

    Call it holding the lock on the folders, after writing: then no run is writing one, and this run resumed its own.
    """
    for folder in folders:
        for entry in os.scandir(folder) if folder.is_dir() else ():
            if _PARTIAL_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def writable_status(path: Path, replacing: bytes | None) -> os.stat_result | None:
    """path's status (None: no file), or the OSError write_atomically refuses it with: a symlink (ELOOP), not a regular
    file, a read-only file (EACCES), a file where replacing None expects none or none where replacing expects one."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        status = None
    if status is not None:
        if stat.S_ISLNK(status.st_mode):
            raise OSError(errno.ELOOP, "it is a symlink; keeptrash does not write through one")
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EEXIST, "it is not a regular file")
        if replacing is None:
            raise FileExistsError(errno.EEXIST, "another file took this name meanwhile")
        if not status.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):  # by its mode bits, which root too respects here
            raise PermissionError(errno.EACCES, "it is read-only; keeptrash leaves it as it is")
    elif replacing is not None:
        raise FileNotFoundError(errno.ENOENT, "it went away meanwhile")
    return status


def write_atomically(path: Path, data: bytes, replacing: bytes | None) -> None:
    """Give path the bytes data, all or nothing: written to a partial file beside it, synced, then renamed over the file
    that held `replacing` (checked just before), or, for replacing None, claimed as a new name that no file has taken
    meanwhile (FileExistsError). Refused as writable_status refuses."""
    status = writable_status(path, replacing)
    temp = partial_path(path.parent, path.name, hashlib.sha256(data).hexdigest())
    try:
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644 if status is None else stat.S_IMODE(status.st_mode))
        with os.fdopen(handle, "wb") as writer:
            writer.write(data)
            writer.flush()
            os.fsync(writer.fileno())
        if replacing is None:
            claim(temp, path)
            return
        with open(path, "rb") as current:
            if current.read() != replacing:
                raise OSError(errno.EAGAIN, "it changed while keeptrash was writing it; run again")
        os.rename(temp, path)
        _fsync_folder(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
