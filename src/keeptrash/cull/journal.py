"""The undo journal of a move: where each photo came from and went, synced before the photo leaves its folder."""

import json
import os
from datetime import datetime
from pathlib import Path

from keeptrash.cull import KEEP, TRASH, SortRefused
from keeptrash.cull.safe_write import candidate_paths, inside
from keeptrash.errors import KeeptrashError

JOURNAL_VERSION = 2


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
        if not inside(source.parent, self.culled):
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


def _relative_inside(value: str) -> bool:
    """A relative path that stays below the folder it is relative to (no "..", not absolute)."""
    return not os.path.isabs(value) and ".." not in Path(value).parts and value not in ("", ".")


def _outside(edited: str, key: str, value: str, where: str) -> KeeptrashError:
    return KeeptrashError(f"{edited}: '{key}' {value!r} is outside {where}; undo only touches what cull moved (was the file edited?)")


def parse_journal(path: Path) -> tuple[list[dict], set[Path]]:
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
            if not (_relative_inside(original) and inside(Path(culled, original).parent, culled)):
                raise _outside(edited, "from", original, f"the culled folder {culled}")
            if not _relative_inside(moved):
                raise _outside(edited, "to", moved, sorted_output)
            original, moved = culled / original, output / moved
        elif not (os.path.isabs(original) and os.path.isabs(moved)):  # older journals held absolute paths only
            raise KeeptrashError(f"{edited} has relative paths but no header naming the culled folder; was the file edited?")
        if os.path.relpath(moved, output).split(os.sep)[0] not in (KEEP, TRASH) or not inside(Path(moved).parent, output):
            raise _outside(edited, "to", str(moved), sorted_output)
        entries.append({"from": Path(original), "to": Path(moved), "sha256": sha256})
    return entries, culled_folders


def read_journal(path: Path) -> list[dict]:
    """The records of an undo journal, paths made absolute; a line that is not one, or that points outside the
    sorted output or the culled folder, is an error naming it, before anything moves."""
    return parse_journal(path)[0]
