"""The undo journal of a cull: where each moved photo came from and went, and each XMP sidecar's bytes before keeptrash
wrote it, synced before the photo leaves its folder or the sidecar changes."""

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from keeptrash.cull import KEEP, TRASH, SortRefused
from keeptrash.cull.safe_write import candidate_paths, inside
from keeptrash.errors import KeeptrashError

JOURNAL_VERSION = 2
ORIGINALS = "xmp-originals"  # beside the journal: photos as they were before `--xmp embed` wrote into them


class UndoJournal:
    """An undo journal: a header naming the culled folder, then one JSON line per moved photo (from, to, sha256) and
    per written sidecar (xmp, in, before, after), synced to disk before the photo leaves its folder or the sidecar
    changes.

    "from" is relative to the culled folder and "to" to the journal's own folder, so the output folder can be
    renamed or moved and undo still finds the photos beside the journal. A sidecar's "xmp" is relative to the folder
    "in" names (culled, or out for a sidecar beside a moved photo); "before" holds its bytes (base64; null: keeptrash
    created it, or "backup" names the copy of a photo XMP was written into) and "after" the sha256 of what keeptrash
    wrote.
    """

    def __init__(self, path: Path, culled: Path, fresh: bool = False):
        self.path = path
        self.culled = Path(os.path.abspath(culled))
        self.moves = 0
        self.xmp_writes = 0
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

    @property
    def originals(self) -> Path:
        """Where photos are kept as they were before XMP was written into them (--xmp embed), for undo."""
        return self.path.parent / ORIGINALS

    def record_xmp(self, sidecar: Path, before: bytes | None, after_sha256: str, backup: Path | None = None) -> None:
        """Before keeptrash writes the sidecar (or into a photo): its bytes until now (None: it does not exist; or kept
        as the file `backup` in self.originals) and the hash of the new ones."""
        output = Path(os.path.abspath(self.path.parent))
        where = "out" if inside(sidecar.parent, output) else "culled"
        if where == "culled" and not inside(sidecar.parent, self.culled):
            raise ValueError(f"{sidecar} is neither in {self.culled} nor in {output}")
        entry = {
            "xmp": os.path.relpath(os.path.abspath(sidecar), output if where == "out" else self.culled),
            "in": where,
            "before": None if before is None else base64.b64encode(before).decode("ascii"),
            "after": after_sha256,
        }
        if backup is not None:
            entry["backup"] = os.path.relpath(os.path.abspath(backup), output)
        self._write(entry)
        self.xmp_writes += 1

    @property
    def empty(self) -> bool:
        return self.moves == 0 and self.xmp_writes == 0

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
    return KeeptrashError(f"{edited}: '{key}' {value!r} is outside {where}; undo only touches what cull moved or wrote (was the file edited?)")


@dataclass
class ParsedJournal:
    moves: list[dict] = field(default_factory=list)  # from, to, sha256
    xmp_writes: list[dict] = field(default_factory=list)  # xmp (absolute), before (bytes or None), after, backup
    culled_folders: set[Path] = field(default_factory=set)


def _xmp_record(entry: dict, edited: str, culled: Path | None, output: Path) -> dict:
    """A written sidecar's record, its path checked to lie in the culled folder or in keep/ or trash/ beside the journal."""
    sidecar, where, before, after = entry["xmp"], entry["in"], entry["before"], str(entry["after"])
    if not isinstance(sidecar, str) or where not in ("culled", "out") or not (before is None or isinstance(before, str)):
        raise TypeError
    base = culled if where == "culled" else output
    if base is None or not _relative_inside(sidecar) or not inside(Path(base, sidecar).parent, base):
        raise _outside(edited, "xmp", sidecar, f"the culled folder {culled}" if where == "culled" else str(output))
    if where == "out" and Path(sidecar).parts[0] not in (KEEP, TRASH):
        raise _outside(edited, "xmp", sidecar, f"{output}/{KEEP} and /{TRASH}")
    backup = entry.get("backup")
    if backup is not None and not (isinstance(backup, str) and _relative_inside(backup) and Path(backup).parts[0] == ORIGINALS):
        raise _outside(edited, "backup", str(backup), f"{output}/{ORIGINALS}")
    try:
        previous = None if before is None else base64.b64decode(before, validate=True)
    except ValueError:
        raise TypeError from None
    return {"xmp": base / sidecar, "before": previous, "after": after, "backup": None if backup is None else output / backup}


def parse_journal(path: Path) -> ParsedJournal:
    """The records (absolute paths) and the culled folders of a journal; any line that is not a record, or that
    points outside the journal's keep/ and trash/ or outside its culled folder, is an error naming it."""
    if not path.is_file():
        raise KeeptrashError(f"{path}: undo manifest not found; pass the undo-*.jsonl file that `keeptrash cull` wrote")
    output = Path(os.path.abspath(path.parent))
    parsed, culled = ParsedJournal(), None
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        edited = f"{path}: line {number}"
        try:
            entry = json.loads(line.decode("ascii"))
            if isinstance(entry, dict) and "keeptrash_undo" in entry:
                culled = Path(os.path.abspath(entry["culled"]))
                parsed.culled_folders.add(culled)
                continue
            if isinstance(entry, dict) and "xmp" in entry:
                parsed.xmp_writes.append(_xmp_record(entry, edited, culled, output))
                continue
            original, moved, sha256 = str(entry["from"]), str(entry["to"]), str(entry["sha256"])
            if not isinstance(entry["from"], str) or not isinstance(entry["to"], str):
                raise TypeError
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise KeeptrashError(f"{edited} is not an undo record (from, to, sha256, or a sidecar's xmp, in, before, after); was the file edited?") from None
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
        parsed.moves.append({"from": Path(original), "to": Path(moved), "sha256": sha256})
    return parsed


def read_journal(path: Path) -> list[dict]:
    """The records of an undo journal, paths made absolute; a line that is not one, or that points outside the
    sorted output or the culled folder, is an error naming it, before anything moves."""
    return parse_journal(path).moves
