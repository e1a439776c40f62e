"""A photographer's past culls, read from the XMP of their photos, as keep/trash decisions (labels.own_xmp).

Culling tools record a verdict in XMP, each in its own property: darktable's xmp:Rating -1 (rejected) and stars,
digiKam's PickLabel, Lightroom's xmpDM:pick and stars, Photo Mechanic's Tagged and ColorClass 8 (Trash). EXPLICIT
below maps each, and docs/own-photos.md shows the table a person reads.

A pick or a reject is an explicit verdict and beats stars: a five-star photo that was later rejected is trash.
Stars below the threshold, 0 stars (unrated) and digiKam's "pending" decide nothing: darktable gives every
imported photo one star, so a single star is no judgement there. When explicit verdicts disagree (a photo both
picked and rejected, by two tools or one), no label can be trusted and the photo stays unmapped, as identical
photos labelled both ways are left out (keeptrash.labels.labelling.deduplicate).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from keeptrash.images import max_file_bytes
from keeptrash.labels.own_decisions import LABEL_OF_DECISION, decide
from keeptrash.xmp import XmpError, read_properties

# The qualified names keeptrash.xmp reads (the namespaces' usual prefixes, whatever prefix a file declares).
RATING = "xmp:Rating"
PICK = "xmpDM:pick"
PICK_LABEL = "digiKam:PickLabel"
TAGGED = "photomechanic:Tagged"
COLOR_CLASS = "photomechanic:ColorClass"
FLAG_PROPERTIES = (RATING, PICK, PICK_LABEL, TAGGED, COLOR_CLASS)

REJECTED_RATING = -1  # the XMP specification's "rejected", which darktable and Bridge write
STARS = range(0, 6)
# Explicit verdicts, by property and value as the tools write them; values not listed (digiKam's 2 "pending",
# Lightroom's 0 "unflagged", a ColorClass other than Trash, Tagged False) decide nothing.
EXPLICIT = {
    PICK: {"1": "keep", "-1": "trash"},
    PICK_LABEL: {"3": "keep", "1": "trash"},
    TAGGED: {"true": "keep"},
    COLOR_CLASS: {"8": "trash"},
}
# What each property may hold; anything else is a malformed value, reported rather than guessed.
VALID_VALUES = {
    PICK: {"-1", "0", "1"},
    PICK_LABEL: {"0", "1", "2", "3"},
    TAGGED: {"true", "false"},
    COLOR_CLASS: {str(value) for value in range(9)},
}


@dataclass(frozen=True)
class Verdict:
    """What a photo's XMP says: "keep", "trash" or None (unmapped), and the flags that say it, for notes."""

    decision: str | None
    because: str = ""
    conflicting: bool = False  # explicit flags disagree


def _rating(value: str) -> int:
    """xmp:Rating as a whole number of stars, or -1; a real like "3.0" (which some tools write) is accepted."""
    number = float(value)
    if not number.is_integer() or not (number == REJECTED_RATING or int(number) in STARS):
        raise ValueError(value)
    return int(number)


def verdict_of(properties: Mapping[str, str], keep_stars: int) -> Verdict:
    """The keep/trash decision a photo's XMP properties (qualified name -> text) record, by the rule above.
    Raises ValueError naming the property for a value no tool writes (a sidecar edited by hand or broken)."""
    explicit, stars = [], []
    for name in FLAG_PROPERTIES:
        if name not in properties:
            continue
        value = str(properties[name]).strip()
        if name == RATING:
            try:
                rating = _rating(value)
            except ValueError:
                raise ValueError(f"{RATING} must be -1 (rejected) or 0 to 5 stars, got {value!r}") from None
            if rating == REJECTED_RATING:
                explicit.append(("trash", f"{RATING} -1"))
            elif rating >= keep_stars:
                stars.append(("keep", f"{RATING} {rating}"))
            continue
        normal = value.lower()
        if normal not in VALID_VALUES[name]:
            raise ValueError(f"{name} must be one of {', '.join(sorted(VALID_VALUES[name]))}, got {value!r}")
        if normal in EXPLICIT[name]:
            explicit.append((EXPLICIT[name][normal], f"{name} {value}"))
    deciding = explicit or stars
    decisions = {decision for decision, _ in deciding}
    because = ", ".join(flag for _, flag in deciding)
    if len(decisions) > 1:
        return Verdict(None, because, conflicting=True)
    return Verdict(decisions.pop() if decisions else None, because)


@dataclass
class XmpReport:
    """What the XMP of the own photos said and what became of it (metrics/labels.json "own_xmp")."""

    photos: int = 0  # own photos under own_dir whose XMP was looked for
    read: int = 0  # of those, photos with XMP (a sidecar or embedded) that was read
    unreadable: int = 0  # photos whose sidecar or embedded XMP could not be read or holds a malformed flag: unmapped
    mapped: int = 0  # photos whose flags decide keep or trash
    keep: int = 0
    trash: int = 0
    unmapped: int = 0  # photos without XMP, without a deciding flag, with conflicting flags, or unreadable
    flag_conflicts: int = 0  # photos picked and rejected at once: unmapped
    folder_conflicts: int = 0  # photos in own_dir keep/ or trash/ whose XMP says the other: the folder decides
    labelled: int = 0  # photos outside keep/ and trash/ that their XMP labels
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {name: getattr(self, name) for name in (
            "photos", "read", "unreadable", "mapped", "keep", "trash", "unmapped", "flag_conflicts", "folder_conflicts", "labelled",
        )}


def _readable_photo(photo: Path, max_bytes: int) -> bool:
    """A regular file no larger than an image within the pixel limit can be. Anything else (a pipe named like a photo,
    which reading would wait on forever; a 30 GB sparse file, which reading whole would exhaust memory) is not read:
    the download stage records why, and no label could train on it."""
    try:
        return photo.is_file() and photo.stat().st_size <= max_bytes
    except OSError:
        return False


def _decision_of(photo: Path, keep_stars: int, max_bytes: int, report: XmpReport) -> str | None:
    if not _readable_photo(photo, max_bytes):
        return None
    try:
        properties = read_properties(photo)
    except XmpError as error:
        report.unreadable += 1
        report.notes.append(f"{error}; {photo.name} is left unmapped")
        return None
    if not properties:
        return None
    report.read += 1
    try:
        verdict = verdict_of(properties, keep_stars)
    except ValueError as error:
        report.unreadable += 1
        report.notes.append(f"{photo}: its XMP's {error}; it is left unmapped")
        return None
    if verdict.conflicting:
        report.flag_conflicts += 1
        report.notes.append(f"{photo}: XMP flags disagree ({verdict.because}); it is left unmapped")
    return verdict.decision


def apply_xmp(
    table: pd.DataFrame, read: pd.Series, sorted_by_hand: pd.Series, keep_stars: int, max_pixels: int
) -> tuple[pd.DataFrame, pd.Series, XmpReport]:
    """The table with the photos of the rows marked `read` outside own_dir keep/ and trash/ labelled by their XMP, which of
    its rows the XMP labelled, and the counts. An XMP verdict is a person's decision, so it sets the label and the
    training target as a contact-sheet decision does (own_decisions.decide). A photo in keep/ or trash/ keeps its
    folder's label (sorted by hand for keeptrash, the person's most deliberate verdict); where its XMP says the other,
    that is counted and noted."""
    report = XmpReport()
    paths = table.loc[read, "path"]
    reading = tqdm(paths.items(), total=len(paths), desc="reading XMP", unit="img", disable=None)
    max_bytes = max_file_bytes(max_pixels)
    decisions = pd.Series({index: _decision_of(Path(path), keep_stars, max_bytes, report) for index, path in reading}, dtype=object)
    report.photos = len(paths)
    mapped = decisions.dropna()
    labels = mapped.map(LABEL_OF_DECISION).astype(table["label"].dtype)
    report.mapped, report.keep, report.trash = len(mapped), int((mapped == "keep").sum()), int((mapped == "trash").sum())
    report.unmapped = report.photos - report.mapped
    in_folder = sorted_by_hand[labels.index]
    disagreeing = labels[in_folder & (labels != table.loc[labels.index, "label"])]
    report.folder_conflicts = len(disagreeing)
    if len(disagreeing):
        first = disagreeing.index[0]
        report.notes.append(
            f"the keep/ or trash/ folder decides over the XMP for {len(disagreeing)} of its photos whose XMP says the other "
            f"(first: {table.loc[first, 'path']}, XMP says {mapped[first]})"
        )
    labelled = labels[~in_folder]
    table = decide(table, labelled)
    report.labelled = len(labelled)
    return table, pd.Series(table.index.isin(labelled.index), index=table.index), report
