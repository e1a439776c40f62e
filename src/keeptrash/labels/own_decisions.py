"""A person's keep/trash decisions from the contact sheet, as labels for their own photos.

A decisions file is the CSV the contact sheet exports or `keeptrash review` writes: `path,sha256,decision`
(decision keep or trash), in any column order, with any other columns a person adds. Cells a spreadsheet would run
as a formula are written as text (keeptrash.io.spreadsheet_safe) and read back as they were.
Photos are matched by sha256, not path, so a photo that was renamed or moved (for example copied into
labels.own_dir by `keeptrash cull --copy`) still gets its decision. The path is only shown in notes.

"Latest" decides: files are read in the order labels.own_decisions lists them and rows from top to
bottom, and the last decision for a sha256 is the one used; earlier ones that disagree are reported.
A decision labels every own photo with that sha256: in own_dir keep/ or trash/ (overriding the folder), in the
ratings CSV (overriding the rating), or anywhere else in own_dir, where photos wait unlabelled to be reviewed
(keeptrash.labels.labelling.unsorted_own_photos). Decisions for photos the labels stage cannot find there cannot become
labels, since the pipeline could not read the photo again; they are counted and ignored.

A decision decides the training target too, not only the label (`decide`): a decision that reverses a photo's label
replaces its rating, so the photo trains as one sorted by hand into the decided class.
"""

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.images import readable_file_digest
from keeptrash.io import spreadsheet_text

COLUMNS = ("path", "sha256", "decision")
# The labels table's classes (keeptrash.labels KEEP and TRASH) by the word the contact sheet writes.
LABEL_OF_DECISION = {"keep": 1, "trash": 0}
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class DecisionsReport:
    """What the decision files said and what became of it (metrics/labels.json "own_decisions")."""

    files: int = 0
    rows: int = 0
    photos: int = 0  # distinct sha256 decided
    repeated: int = 0  # rows that repeat an earlier decision for the same photo
    conflicts: int = 0  # photos decided both ways; the latest decision counts
    unmatched: int = 0  # photos no own photo matches: ignored
    applied: int = 0  # own photos labelled by a decision
    changed: int = 0  # of those, photos whose folder or rating label the decision reversed
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            name: getattr(self, name)
            for name in ("files", "rows", "photos", "repeated", "conflicts", "unmatched", "applied", "changed")
        }


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def read_decisions_table(path: Path, content: IO[bytes] | None = None) -> pd.DataFrame:
    """Every column of one exported decisions file as text (a person's own extra columns too), sha256 and decision
    checked and normalised, and each row's line number; one clear error for anything unusable.
    With content, those bytes are read as the file at path would be (the review server checks a post before saving)."""
    try:
        # A line with more fields than the header is an error, not a shifted index (pandas' default) or cut short.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            rows = pd.read_csv(
                path if content is None else content, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False
            )
    except FileNotFoundError:
        raise KeeptrashError(
            f"{path}: decisions file not found (labels.own_decisions); export one from the contact sheet or remove it from the list"
        ) from None
    except pd.errors.EmptyDataError:
        raise KeeptrashError(f"{path}: empty; a decisions file needs a header line 'path,sha256,decision'") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError) as error:
        raise KeeptrashError(
            f"{path}: not a readable CSV ({error}); each line holds path,sha256,decision: export it again from the contact sheet"
        ) from None
    except OSError as error:
        raise KeeptrashError(f"{path}: cannot be read ({error.strerror}); labels.own_decisions must name CSV files") from None
    missing = [column for column in COLUMNS if column not in rows.columns]
    if missing:
        raise KeeptrashError(f"{path}: needs columns path, sha256 and decision, missing {', '.join(missing)}")
    rows = rows.map(spreadsheet_text).assign(line=rows.index + 2)  # +1 for the header, +1 for 1-based lines
    rows = rows[(rows[list(COLUMNS)] != "").any(axis=1)]  # blank lines
    return checked_decisions(rows, f"{path}:" + rows["line"].astype(str))


def checked_decisions(rows: pd.DataFrame, where: pd.Series) -> pd.DataFrame:
    """rows with sha256 and decision normalised (stripped, lower case); KeeptrashError naming the first bad row's where."""
    sha256 = rows["sha256"].str.strip().str.lower()
    bad = ~sha256.map(lambda text: bool(_SHA256.fullmatch(text)))
    if bad.any():
        raise KeeptrashError(f"{where[bad].iloc[0]}: sha256 must be 64 hexadecimal digits, got {rows['sha256'][bad].iloc[0]!r}")
    decision = rows["decision"].str.strip().str.lower()
    bad = ~decision.isin(LABEL_OF_DECISION)
    if bad.any():
        raise KeeptrashError(f"{where[bad].iloc[0]}: decision must be keep or trash, got {rows['decision'][bad].iloc[0]!r}")
    return rows.assign(sha256=sha256, decision=decision)


def read_decisions_file(path: Path, content: IO[bytes] | None = None) -> pd.DataFrame:
    """The decisions of one exported file (path, sha256, decision) and where each was read (file:line)."""
    rows = read_decisions_table(path, content)
    return pd.DataFrame({"path": rows["path"], "sha256": rows["sha256"], "decision": rows["decision"], "where": f"{path}:" + rows["line"].astype(str)})


def read_decisions(files: list[Path], own_dir: Path) -> tuple[pd.DataFrame, DecisionsReport]:
    """The latest decision per sha256 (indexed by sha256) over every file, and the repeats and conflicts found.

    The files must lie inside own_dir: the labels stage depends on that folder in dvc.yaml, so editing or
    adding a decisions file there is what makes the next `dvc repro` retrain.
    """
    report = DecisionsReport(files=len(files))
    for path in files:
        if not _inside(path, own_dir):
            raise KeeptrashError(
                f"{path}: labels.own_decisions files must be inside labels.own_dir ({own_dir}), which dvc repro watches; "
                f"move it to {own_dir}/decisions/"
            )
    parts = [read_decisions_file(path) for path in files]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*COLUMNS, "where"])
    report.rows = len(rows)
    for sha256, decided in rows.groupby("sha256", sort=False):
        if len(decided) == 1:
            continue
        latest = decided.iloc[-1]
        if decided["decision"].nunique() > 1:
            report.conflicts += 1
            earlier = ", ".join(f"{row.decision} at {row.where}" for row in decided.iloc[:-1].itertuples())
            report.notes.append(
                f"photo {sha256[:12]} ({latest['path']}) decided {earlier}, then {latest['decision']} at {latest['where']}: the latest counts"
            )
        report.repeated += len(decided) - 1
    latest = rows.drop_duplicates("sha256", keep="last").set_index("sha256")
    report.photos = len(latest)
    return latest, report


def decide(table: pd.DataFrame, decided: pd.Series) -> pd.DataFrame:
    """The labels table (label and score per row) with a person's decisions: decided holds the decided class (KEEP 1 or
    TRASH 0) of some of its rows, by index. Any label source of decisions goes through here, so they all train alike.

    A decision sets the photo's label. Where it reverses the label (a rating on the other side of its threshold, say),
    it also clears the photo's score: the person overruled the rating, which must then say nothing about the photo,
    neither as the target the ridge score and the regression learn nor in the Spearman against ratings. The photo
    trains as a photo sorted by hand into the decided class, whose target model_inputs.score_target places inside
    that class (its source's mean for the class on zscore, the class's end on rank), wherever its rating was. The
    decision says which side, not how far: a top-rated photo the person trashed is no worse than their other trash.
    A decision that agrees with the label changes nothing: the rating stays, as it says how good within the class.
    """
    rows = decided.index
    overruled = rows[(table.loc[rows, "label"] != decided).to_numpy()]
    table = table.copy()
    table.loc[rows, "label"] = decided.astype(table["label"].dtype)
    table.loc[overruled, "score"] = np.nan
    return table


def apply_decisions(
    table: pd.DataFrame, decisions: pd.DataFrame, report: DecisionsReport, unlabelled: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """The table with every own photo whose sha256 has a decision (each copy of it) decided by it (`decide`: its label,
    and its rating where the decision overrules it), and which rows a decision labelled. unlabelled marks rows whose label is only a placeholder (a decision there changes
    nothing). Counts the applied, changed and unmatched decisions into report."""
    decided = pd.Series(False, index=table.index)
    if decisions.empty:
        return table, decided
    own = table.loc[table["source"] == "own", "path"]
    hashing = tqdm(own.items(), total=len(own), desc="matching decisions", unit="img", disable=None)
    contents = pd.Series({index: readable_file_digest(Path(path)) for index, path in hashing}, dtype=object)
    matched = contents[contents.isin(decisions.index)]
    labels = matched.map(decisions["decision"]).map(LABEL_OF_DECISION)
    report.applied = matched.nunique()
    reversed_label = (table.loc[matched.index, "label"] != labels) & ~unlabelled[matched.index]
    report.changed = matched[reversed_label].nunique()
    table = decide(table, labels)
    decided[matched.index] = True
    unmatched = decisions[~decisions.index.isin(matched)]
    report.unmatched = len(unmatched)
    if report.unmatched:
        report.notes.append(
            f"{report.unmatched} decisions match no photo in labels.own_dir or labels.rated_own_csv and are ignored "
            f"(first: {unmatched['path'].iloc[0]} at {unmatched['where'].iloc[0]}); copy those photos into own_dir"
        )
    return table, decided
