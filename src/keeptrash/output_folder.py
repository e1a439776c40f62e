"""Writing files into a folder a person names (`cull --out`, `report --out`): never over a file keeptrash did not
write there, never through a symlink.

A hidden record in the folder (.keeptrash-<command>.json) holds the sha256 of every file the command wrote; a rerun
replaces a file only while it still has those bytes, so a person's own file of the same name, or one they edited
since, is refused in one line, not replaced. A new name is claimed exclusively (keeptrash.cull.safe_write.claim: a
hard link of the finished temporary file or a rename that refuses to replace, failing on any existing name, a
symlink too); a recorded file is replaced by rename, which replaces the directory entry and never writes through a
link planted there.
"""

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from keeptrash.cull.safe_write import claim
from keeptrash.errors import KeeptrashError

# Readable like a photo beside it (a temporary file starts private).
FILE_MODE = 0o644


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_nofollow(path: Path) -> bytes:
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(handle, "rb") as reader:
        return reader.read()


def _holds_anything(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(True for _ in entries)


class OutputFolder:
    """The files `keeptrash command` may write into folder. The constructor checks, creating nothing; the first write creates
    the folder. With new_only, the folder must be new, empty or made by this command (a report's folder); else it may
    hold anything (cull writes beside photos), and only the named files are checked."""

    def __init__(self, folder: Path, command: str, names: tuple[str, ...], new_only: bool, hint: str):
        self.folder, self.command, self.hint = folder, command, hint
        self.record_path = folder / f".keeptrash-{command}.json"
        self.written: dict[str, list[str]] = {}
        if folder.exists() and not folder.is_dir():
            raise KeeptrashError(f"{folder}: not a folder, so it cannot be the output folder; {hint}")
        if not folder.is_dir():
            return  # a new folder: nothing in the way (one that cannot be created fails at the first write)
        self.written = self._read_record()
        if new_only and not self.written and _holds_anything(folder):
            raise KeeptrashError(f"{folder}: holds files keeptrash {command} did not write; {hint}")
        for name in names:
            self._check_replaceable(name)

    def _read_record(self) -> dict[str, str]:
        try:
            record = json.loads(_read_nofollow(self.record_path))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise KeeptrashError(f"{self.record_path}: not the record keeptrash {self.command} keeps of its files; {self.hint}") from None
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict):
            return {}
        return {str(name): [str(digest) for digest in digests] for name, digests in files.items() if isinstance(digests, list)}

    def _save_record(self) -> None:
        record = json.dumps({"written_by": f"keeptrash {self.command}", "files": self.written}, indent=1, sort_keys=True)
        self._save(self.record_path, record.encode("utf-8"), replacing=True)

    def _check_replaceable(self, name: str) -> bool:
        """Whether folder/name exists (then it is a file this command wrote, unchanged); KeeptrashError otherwise."""
        path = self.folder / name
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(status.st_mode):
            raise KeeptrashError(f"{path}: is a symlink; keeptrash writes through no link: remove it, or {self.hint}")
        if not stat.S_ISREG(status.st_mode) or _sha256(_read_nofollow(path)) not in self.written.get(name, []):
            raise KeeptrashError(
                f"{path}: exists and is not a file keeptrash {self.command} wrote (or it changed since); "
                f"move it away, or {self.hint}"
            )
        return True

    def write(self, name: str, data: bytes) -> Path:
        """folder/name holding data, written whole (a temporary file renamed into place) or not at all."""
        path = self.folder / name
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise KeeptrashError(f"{self.folder}: cannot create the output folder ({error.strerror}); {self.hint}") from None
        try:
            replacing = self._check_replaceable(name)
            # Recorded before the file gets its name: cut short between the two, a rerun finds either version its own.
            digest = _sha256(data)
            self.written[name] = [*dict.fromkeys([*self.written.get(name, []), digest])]
            self._save_record()
            self._save(path, data, replacing)
        except FileExistsError:
            raise KeeptrashError(f"{path}: appeared while keeptrash {self.command} was writing it; move it away, or {self.hint}") from None
        except OSError as error:
            raise KeeptrashError(f"{path}: cannot write ({error.strerror}); free disk space or fix permissions") from None
        self.written[name] = [digest]
        with contextlib.suppress(OSError):  # the earlier version's digest left in the record is harmless
            self._save_record()
        return path

    def _save(self, path: Path, data: bytes, replacing: bool) -> None:
        handle, temp_name = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as writer:
                writer.write(data)
            temp.chmod(FILE_MODE)
            if replacing:
                os.replace(temp, path)  # a rename replaces the name itself, whatever it is now
            else:
                claim(temp, path)  # exclusive: fails on any existing name, a symlink too
        finally:
            temp.unlink(missing_ok=True)
