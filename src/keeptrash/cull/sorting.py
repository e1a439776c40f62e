"""Put photos into keep/ and trash/ without ever overwriting or losing a file, and undo a move.

Names are claimed and copies verified as safe_write does. A move is a new name for the photo, a journal line saying
where it went, and only then removal of the old name. Runs that sort or undo hold an exclusive lock on the folders
they change.
"""

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from keeptrash.cull import SortRefused
from keeptrash.cull.journal import UndoJournal, parse_journal
from keeptrash.cull.safe_write import (
    candidate_paths,
    copier,
    digest_or_none,
    exclusive_folders,
    hard_linked,
    occupied,
    partial_path,
    same_inode,
    write_atomically,
)
from keeptrash.images import file_digest

MODES = ("copy", "link", "move")


def _link(source: Path, target: Path) -> str:
    # The photo itself, not a symlink to it: a relative symlink would point elsewhere from keep/ or trash/.
    photo = os.path.realpath(source)
    if hard_linked(Path(photo), target):
        return "linked"
    os.symlink(photo, target)
    return "symlinked"


def _already_there(source: Path, candidate: Path, mode: str) -> bool:
    """A copy or link from an earlier, perhaps interrupted, run: reuse it instead of making a duplicate."""
    if mode == "link":
        photo = os.path.realpath(source)
        return os.readlink(candidate) == photo if candidate.is_symlink() else same_inode(Path(photo), candidate)
    return candidate.is_file() and candidate.stat().st_size == source.stat().st_size and file_digest(candidate) == file_digest(source)


def _names_taken(names: list[Path]) -> SortRefused:
    """What the name loops end in when they are given names to try (sort_shot) and every one is taken."""
    return SortRefused(f"{', '.join(name.name for name in names)} taken (by another run?); run again")


def _place_copy(source: Path, folder: Path, sha256: str, names: Iterable[Path]) -> tuple[Path, str]:
    """Copy source into folder under the first free name of names, reusing an identical earlier copy."""
    tried = []
    with copier(source, folder, source.name, sha256) as copy_to:
        for candidate in names:
            tried.append(candidate)
            if occupied(candidate):
                if _already_there(source, candidate, "copy"):
                    return candidate, "already there"
                continue
            try:
                copy_to(candidate)
            except FileExistsError:
                continue
            return candidate, "copied"
    raise _names_taken(tried)


def _new_name(source: Path, folder: Path, sha256: str, names: Iterable[Path]) -> Path:
    """A new name, the first free one of names, for the photo at source (a hard link, else a verified copy; a symlink
    stays a symlink)."""
    tried = []
    with copier(source, folder, source.name, sha256) as copy_to:
        for candidate in names:
            tried.append(candidate)
            if occupied(candidate):
                continue
            try:
                if source.is_symlink():
                    # Pointing at the absolute path of its photo: a relative one would resolve against its new folder.
                    os.symlink(os.path.realpath(source), candidate)
                elif not hard_linked(source, candidate):
                    copy_to(candidate)
            except FileExistsError:
                continue
            return candidate
    raise _names_taken(tried)


def _unchanged(path: Path, before: os.stat_result) -> bool:
    after = path.stat()
    return (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def _move(source: Path, folder: Path, scored_sha256: str, journal: UndoJournal, names: Iterable[Path]) -> tuple[Path, str]:
    journal.check_move(source, folder)
    before = source.stat()
    # Hashed now, not when scored: the journal holds the bytes that were actually moved.
    sha256 = file_digest(source)
    moved = _new_name(source, folder, sha256, names)
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


def sort_photo(
    source: Path, folder: Path, mode: str, sha256: str, journal: UndoJournal | None, names: Iterable[Path] | None = None
) -> tuple[Path, str]:
    """Copy, link or move source into folder under its own name or the first free suffixed one (or the first free one
    of names); (where, what was done).

    SortRefused (or OSError) when this photo cannot be sorted; nothing is left half done.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = candidate_paths(folder, source.name) if names is None else names
    if mode == "move":
        return _move(source, folder, sha256, journal, names)
    if mode == "copy":
        return _place_copy(source, folder, file_digest(source), names)
    tried = []
    for candidate in names:
        tried.append(candidate)
        if occupied(candidate):
            if _already_there(source, candidate, mode):
                return candidate, "already there"
            continue
        try:
            return candidate, _link(source, candidate)
        except FileExistsError:
            continue
    raise _names_taken(tried)


def _free_for(source: Path, name: Path, mode: str) -> bool:
    return not occupied(name) or (mode != "move" and _already_there(source, name, mode))


def sort_shot(sources: list[Path], folder: Path, mode: str, sha256: str, journal: UndoJournal | None) -> list[tuple[Path | None, str]]:
    """Sort the files of one shot, a RAW+JPEG pair (keeptrash.cull.pairs), together: all into folder under one stem, the
    first (IMG_0001.*, IMG_0001-1.*, ...) at which every file's name is free or already holds that file from an earlier
    run, so photo tools still see them as a pair. sha256 is the first file's as scored; (where, what was done) per file.

    SortRefused (or OSError) when the first file cannot be sorted, and then none is. A move is refused for all when
    any file may not be moved; a later file that fails all the same (unreadable, say) gets "not sorted: why"."""
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "move":
        for source in sources:
            journal.check_move(source, folder)
    names = next(names for names in zip(*(candidate_paths(folder, source.name) for source in sources))
                 if all(_free_for(source, name, mode) for source, name in zip(sources, names)))
    done = [sort_photo(sources[0], folder, mode, sha256, journal, names=[names[0]])]
    for source, name in zip(sources[1:], names[1:]):
        try:
            done.append(sort_photo(source, folder, mode, file_digest(source), journal, names=[name]))
        except (SortRefused, OSError) as error:
            done.append((None, f"not sorted: {error if isinstance(error, SortRefused) else error.strerror or error}"))
    return done


@dataclass
class UndoReport:
    restored: int = 0
    already_restored: int = 0
    sidecars_restored: int = 0  # put back as they were before keeptrash wrote them, or removed when it created them
    sidecars_already_restored: int = 0
    problems: list[tuple[Path, str]] = field(default_factory=list)


def _restore(moved: Path, original: Path, sha256: str) -> None:
    """Give the photo at moved its original name again (a hard link, else a verified copy); FileExistsError if taken."""
    if moved.is_symlink():
        os.symlink(os.path.realpath(moved), original)
    elif not hard_linked(moved, original):
        with copier(moved, original.parent, original.name, sha256) as copy_to:
            copy_to(original)


def _discard_partial(original: Path, sha256: str) -> None:
    """The temporary copy an interrupted undo left beside original, once that photo is settled."""
    with contextlib.suppress(OSError):
        partial = partial_path(original.parent, original.name, sha256)
        if partial.is_file() and not partial.is_symlink():
            partial.unlink()


def undo_moves(journal_path: Path) -> UndoReport:
    """Put every sidecar the journal wrote back as it was, then every photo it moved back where it was; never
    overwrites a file keeptrash did not write, and can be run again safely."""
    journal = parse_journal(journal_path)
    report = UndoReport()
    existing = [folder for folder in journal.culled_folders if folder.is_dir()]
    with exclusive_folders(journal_path.parent, *existing):
        for write in reversed(journal.xmp_writes):
            _undo_sidecar(write["xmp"], write["before"], write["after"], write["backup"], report)
        for entry in reversed(journal.moves):
            _undo_one(entry["from"], entry["to"], entry["sha256"], report)
    return report


def _undo_sidecar(sidecar: Path, before: bytes | None, after_sha256: str, backup: Path | None, report: UndoReport) -> None:
    """The sidecar's bytes before keeptrash wrote them (no sidecar, when keeptrash created it; the photo as kept in
    `backup`, when keeptrash wrote into the photo), unless it changed since: then the person's or their photo
    manager's later edits stay, and it is a problem to report."""
    try:
        if sidecar.is_symlink():
            raise OSError(errno.ELOOP, "it is now a symlink")
        current = sidecar.read_bytes() if os.path.lexists(sidecar) else None
        if backup is not None and backup.is_file():
            before = backup.read_bytes()
    except OSError as error:
        report.problems.append((sidecar, f"cannot read it ({error.strerror or error}); left as it is"))
        return
    written = current is not None and hashlib.sha256(current).hexdigest() == after_sha256
    if backup is not None and not backup.is_file():
        # The kept photo is removed once the photo is back in place.
        if written:
            report.problems.append((sidecar, f"its original, kept as {backup}, is gone; left as it is"))
        else:
            report.sidecars_already_restored += 1
        return
    if current == before:
        report.sidecars_already_restored += 1
    elif not written:
        report.problems.append((sidecar, "changed since keeptrash wrote it (by you or your photo manager); left as it is"))
        return
    else:
        try:
            if before is None:
                os.unlink(sidecar)
            else:
                write_atomically(sidecar, before, current)
        except OSError as error:
            report.problems.append((sidecar, f"cannot restore it ({error.strerror or error}); left as it is"))
            return
        report.sidecars_restored += 1
    if backup is not None:
        backup.unlink()


def _undo_one(original: Path, moved: Path, sha256: str, report: UndoReport) -> None:
    if not occupied(moved):
        if digest_or_none(original) == sha256:
            report.already_restored += 1
            _discard_partial(original, sha256)
        else:
            report.problems.append((original, f"missing: neither here nor at {moved}"))
        return
    if occupied(original):
        if same_inode(original, moved) or (digest_or_none(original) == sha256 == digest_or_none(moved) and not original.is_symlink()):
            # A move interrupted between its two steps: the photo is still in place and the new name is
            # the same file or a verified identical copy, so dropping that name loses nothing.
            os.unlink(moved)
            report.already_restored += 1
            _discard_partial(original, sha256)
        else:
            report.problems.append((original, f"another file now has this name; the photo stays at {moved}"))
        return
    if digest_or_none(moved) != sha256:
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
