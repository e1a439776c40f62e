"""Writing stage outputs: atomically, so an interrupted stage never leaves a half-written file."""

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow

from keeptrash.errors import KeeptrashError


def _json_safe(value: Any) -> Any:
    """NaN is not JSON; metrics that cannot be computed (one class only, too few rows) are null."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write) -> None:
    """Call write(temp_path), then rename the finished file over `path`."""
    temp = None
    try:
        # Creating the folder or the temporary file fails too on a full disk or one out of inodes.
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
        os.close(handle)
        temp = Path(temp_name)
        write(temp)
        os.replace(temp, path)
        temp = None
    except OSError as error:
        raise KeeptrashError(f"{path}: cannot write ({error.strerror}); free disk space or fix permissions") from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def leftover_temp_files(path: Path) -> list[Path]:
    """The temporary files of atomic_write(path) beside it: `.NAME.` + tempfile's 8 random characters + `.tmp`. Left
    behind only by a process killed mid-write; a live writer's is among them too, so remove them only while no other
    process can be writing path."""
    name = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    return [entry for entry in entries if name.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink()]


# A spreadsheet runs a cell that starts like a formula (OWASP, "CSV Injection"); leading quotes are counted so
# that spreadsheet_text undoes spreadsheet_safe exactly, whatever the cell held.
FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"^'+[=+\-@\t\r]")


def spreadsheet_safe(cell: str) -> str:
    """The cell as a spreadsheet shows it as text: a formula-like start gets a leading single quote."""
    return "'" + cell if FORMULA_START.match(cell) else cell


def spreadsheet_text(cell: str) -> str:
    """The cell spreadsheet_safe was given back (for reading our own CSVs)."""
    return cell[1:] if _NEUTRALISED.match(cell) else cell


def write_json(path: Path, value: Any) -> None:
    text = json.dumps(_json_safe(value), indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def write_table(path: Path, table: pd.DataFrame) -> None:
    atomic_write(path, lambda temp: table.to_parquet(temp, index=False))


def csv_text(table: pd.DataFrame) -> str:
    """The table as CSV for people to open: text cells spreadsheet_safe, numbers as they are (a negative number is
    not a formula, and must stay a number)."""
    safe = table.copy()
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            safe[column] = table[column].map(lambda cell: spreadsheet_safe(cell) if isinstance(cell, str) else cell)
    # CRLF ends rows (RFC 4180): the csv module quotes a cell holding any character of the row ending, so a carriage
    # return inside a file name is quoted too, not left raw to split the row (as it was with "\n").
    return safe.to_csv(index=False, lineterminator="\r\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    text = csv_text(table)
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8", newline=""))


def read_table(path: Path, produced_by: str) -> pd.DataFrame:
    if not path.is_file():
        raise KeeptrashError(f"{path}: not found; run the '{produced_by}' stage first (dvc repro)")
    table = pd.read_parquet(path)
    # Arrow's allocator keeps the memory of the columns it has just converted to pandas for its own reuse, where
    # numpy cannot reach it: it goes back to the system (at AVA scale, gigabytes the next steps' arrays would add to).
    pyarrow.default_memory_pool().release_unused()
    return table
