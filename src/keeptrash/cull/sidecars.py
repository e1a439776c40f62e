"""`keeptrash cull --xmp`: each photo's decision in XMP where Lightroom, darktable, digiKam and Capture One read it.

A trash photo is xmp:Rating -1 (rejected) and digiKam:PickLabel 1; a keep is 1 to 5 stars by its keep probability
(params xmp.*_stars_from) and PickLabel 3; a photo near the keep threshold gets the xmp:Label xmp.uncertain_label.
keeptrash's own namespace holds the probability, decision, model, series and reason, and the verdict values keeptrash
wrote: a rating, label or pick label that still has the value keeptrash wrote is keeptrash's to change on a later run;
any other one is the person's, and that photo keeps the person's verdict unless --xmp-overwrite; keeptrash's own
earlier values of the other verdict properties then go, so that none contradicts the person's.

Sidecars are merged, never clobbered (keeptrash.xmp keeps every other property), written all or nothing and never
through a symlink (keeptrash.cull.safe_write), and the journal keeps each one's previous bytes for `keeptrash undo`.
"""

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from keeptrash.cull import KEEP
from keeptrash.cull.journal import UndoJournal
from keeptrash.cull.safe_write import hard_linked, remove_stale_partials, writable_status, write_atomically
from keeptrash.images import IMAGE_SUFFIXES
from keeptrash.params import PARAMS_FILE, XmpParams, load_params
from keeptrash.xmp import EMBEDDABLE_SUFFIXES, XmpError, embedded, existing_sidecars, merged_sidecar, read_bytes, read_file, read_packet, sidecar_names

RATING, LABEL, PICK_LABEL = "xmp:Rating", "xmp:Label", "digiKam:PickLabel"
VERDICT_PROPERTIES = (RATING, LABEL, PICK_LABEL)
REJECTED_RATING, REJECTED_PICK, ACCEPTED_PICK = "-1", "1", "3"
# The value keeptrash wrote into each verdict property, in its own namespace.
WROTE = {name: f"keeptrash:Wrote{name.split(':')[1]}" for name in VERDICT_PROPERTIES}
# Values that mean "not set": XMP's 0 stars is unrated, digiKam's PickLabel 0 is no flag.
UNSET = {RATING: {"0", ""}, LABEL: {""}, PICK_LABEL: {"0", ""}}
# Verdicts other tools record (Lightroom's pick flag, Photo Mechanic's tag and colour class): keeptrash never writes
# them, and a photo carrying one keeps the person's verdict.
OTHER_VERDICTS = {"xmpDM:pick": {"0", ""}, "photomechanic:Tagged": {"false", ""}, "photomechanic:ColorClass": {"0", ""}}
# --xmp-naming: which of keeptrash.xmp.sidecar_names a new sidecar gets.
NAMINGS = {"lightroom": 0, "darktable": 1}
NAMING_HELP = "lightroom: IMG_0001.xmp (Lightroom, Capture One, DxO, Photo Mechanic); darktable: IMG_0001.CR2.xmp (darktable, digiKam)"


def configured_xmp(params_file: Path = PARAMS_FILE) -> XmpParams:
    """params.yaml's xmp section when cull runs inside a repository, else the defaults it repeats."""
    return load_params(params_file).xmp if params_file.is_file() else XmpParams()


def stars(probability: float, params: XmpParams) -> int:
    return 1 + sum(probability >= cutoff for cutoff in params.star_cutoffs)


def verdict(probability: float, decision: str, threshold: float, params: XmpParams) -> dict[str, str | None]:
    """The verdict properties of one decision; a label of None means no label (an earlier one of keeptrash's goes)."""
    keep = decision == KEEP
    uncertain = params.uncertain_margin > 0 and abs(probability - threshold) <= params.uncertain_margin
    return {
        RATING: str(stars(probability, params)) if keep else REJECTED_RATING,
        PICK_LABEL: ACCEPTED_PICK if keep else REJECTED_PICK,
        LABEL: params.uncertain_label if uncertain else None,
    }


def keeptrash_record(row: pd.Series, model_version: str) -> dict[str, str]:
    """keeptrash's own namespace: what it concluded about the photo and why."""
    record = {
        "keeptrash:Probability": f"{row['keep_probability']:.4f}",
        "keeptrash:Decision": row["decision"],
        "keeptrash:Model": model_version,
        "keeptrash:Reason": row["reason"],
    }
    if "group" in row and not pd.isna(row["group"]):
        record["keeptrash:Series"], record["keeptrash:SeriesRank"] = str(row["group"]), str(row["group_rank"])
    return record


def persons_verdict(existing: dict[str, str]) -> str | None:
    """The first verdict property the person (or another tool) set, not keeptrash; None when there is none."""
    for name in VERDICT_PROPERTIES:
        value = existing.get(name)
        if value is not None and value.strip() not in UNSET[name] and value != existing.get(WROTE[name]):
            return name
    for name, unset in OTHER_VERDICTS.items():
        if name in existing and existing[name].strip().lower() not in unset:
            return name
    return None


def changes(
    existing: dict[str, str], decided: dict[str, str | None], record: dict[str, str], overwrite: bool, elsewhere: tuple[dict[str, str], ...] = (),
) -> tuple[dict, str | None]:
    """The properties to set (None: remove) in XMP holding `existing`, and the person's verdict property left alone:
    one set there or in the photo's other XMP (`elsewhere`: its sidecars when keeptrash writes into the photo)."""
    kept = None if overwrite else next(filter(None, map(persons_verdict, (existing, *elsewhere))), None)
    wanted: dict[str, str | None] = dict(record)
    if kept is None:
        for name, value in decided.items():
            if value is None and existing.get(name) not in (None, existing.get(WROTE[name])):
                continue  # never remove a label keeptrash did not write
            wanted[name] = wanted[WROTE[name]] = value
    else:
        # The person overrode keeptrash's verdict: its own earlier values of the other verdict properties (a reject
        # flag beside their 5 stars) would contradict theirs, so they go.
        for name in VERDICT_PROPERTIES:
            if existing.get(name) is not None and existing.get(name) == existing.get(WROTE[name]):
                wanted[name] = wanted[WROTE[name]] = None
    return {name: value for name, value in wanted.items() if existing.get(name) != value}, kept


@dataclass
class SidecarWrite:
    """One sidecar as it is (`before`, None when there is none) and as it will be."""

    photo: Path
    sidecar: Path
    before: bytes | None
    after: bytes | None  # None: nothing to change
    kept: str | None  # the person's verdict property that keeptrash left alone

    @property
    def inside_photo(self) -> bool:
        return self.sidecar == self.photo

    @property
    def status(self) -> str:
        if self.after is None:
            return "unchanged"
        return "created" if self.before is None else "changed"


@dataclass
class XmpPlan:
    writes: list[SidecarWrite] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[tuple[Path, Path, str]] = field(default_factory=list)  # photo, sidecar, what went wrong

    def counts(self) -> dict[str, int]:
        counted = {"created": 0, "changed": 0, "unchanged": 0, "inside photos": 0}
        for write in self.writes:
            counted[write.status] += 1
            counted["inside photos"] += write.inside_photo and write.after is not None
        return counted

    def kept_persons(self) -> int:
        return sum(write.kept is not None for write in self.writes)


def _raw_first(photos: list[Path]) -> list[Path]:
    """A RAW file before the JPEG or TIFF developed from it: the sidecar a RAW+JPEG pair shares holds the RAW's decision."""
    return sorted(photos, key=lambda photo: (photo.suffix.lower() in IMAGE_SUFFIXES, photo.name))


def _sidecars_for(photo: Path, original: Path, naming: str) -> list[tuple[Path, Path | None]]:
    """(sidecar to write, sidecar whose bytes it starts from) for the photo now at `photo`, first found at `original`:
    every sidecar the photo already has, in either naming, else a new one in `naming`. A moved photo's sidecars are
    written beside it, starting from those it left behind (which stay as they were)."""
    found = existing_sidecars(photo) or existing_sidecars(original)
    if not found:
        return [(sidecar_names(photo)[NAMINGS[naming]], None)]
    pairs = []
    for source in found:
        naming_index = 0 if source.stem.lower() == original.stem.lower() else 1
        target = source if source.parent == photo.parent else sidecar_names(photo)[naming_index]
        pairs.append((target, target if os.path.lexists(target) else source))
    return pairs


def _read_sidecar(path: Path | None) -> tuple[bytes | None, dict[str, str]]:
    if path is None:
        return None, {}
    if path.is_symlink():
        raise OSError("it is a symlink; keeptrash does not write through one")
    data = read_bytes(path)
    return data, read_packet(data, path)


def _targets(photo: Path, original: Path, naming: str, embed: bool) -> list[tuple[Path, Path | None]]:
    """(file to write, file whose bytes it starts from): the photo itself with --xmp embed where it can hold XMP, else
    its sidecars."""
    if embed and photo.suffix.lower() in EMBEDDABLE_SUFFIXES:
        return [(photo, photo)]
    return _sidecars_for(photo, original, naming)


def plan_sidecars(
    shots: list[tuple[pd.Series, list[tuple[Path, Path]]]], threshold: float, params: XmpParams, model_version: str, naming: str,
    overwrite: bool, embed: bool = False,
) -> XmpPlan:
    """What --xmp writes for each scored shot: its row of scores and, for each of its files (the photo and any RAW
    files paired with it), where it was and where it is now (sorted into keep/ or trash/, or where it was)."""
    plan = XmpPlan()
    by_target: dict[Path, list[tuple[Path, pd.Series, Path | None]]] = defaultdict(list)
    for row, files in shots:
        for original, photo in files:
            for target, source in _targets(photo, original, naming, embed):
                by_target[target].append((photo, row, source))
    for target, claimants in tqdm(by_target.items(), total=len(by_target), desc="reading XMP", unit="file", disable=None):
        photos = _raw_first([photo for photo, _, _ in claimants])
        if len(photos) > 1:
            plan.warnings.append(
                f"{', '.join(photo.name for photo in photos)} share the sidecar {target}: it holds the decision on {photos[0].name}; "
                "--xmp-naming darktable gives each photo its own"
            )
        photo, row, source = next(claimant for claimant in claimants if claimant[0] == photos[0])
        try:
            before, existing = _read_sidecar(source)
            inside_photo = target == photo
            # The photo's sidecars override its embedded XMP in every DAM: a verdict the person set there stands too.
            elsewhere = tuple(map(read_file, existing_sidecars(photo))) if inside_photo else ()
            wanted, kept = changes(
                existing, verdict(row["keep_probability"], row["decision"], threshold, params), keeptrash_record(row, model_version), overwrite,
                elsewhere,
            )
            write = embedded if inside_photo else merged_sidecar
            after = write(before, wanted, target) if wanted else None
        except (XmpError, OSError) as error:
            plan.problems.append((photo, target, f"{error}; left as it is"))
            continue
        if source is not None and source != target:
            before = None  # a new sidecar beside a moved photo, started from the one left behind
        plan.writes.append(SidecarWrite(photo, target, before, after, kept))
    return plan


def write_sidecars(plan: XmpPlan, journal: UndoJournal) -> None:
    """Write every changed sidecar, each after a journal line keeping its previous bytes; a failure is a problem of that
    sidecar alone. Partial files a killed run left beside them are removed."""
    for write in tqdm(plan.writes, desc="writing XMP", unit="file", disable=None):
        if write.after is None:
            continue
        try:
            writable_status(write.sidecar, write.before)  # a refused write leaves no journal line for undo to trip over
            backup = _kept_original(write.photo, write.before, journal) if write.inside_photo else None
            journal.record_xmp(write.sidecar, None if backup else write.before, hashlib.sha256(write.after).hexdigest(), backup)
            write_atomically(write.sidecar, write.after, write.before)
        except OSError as error:
            plan.problems.append((write.photo, write.sidecar, f"not written: {error.strerror or error}"))
            write.after = None
    # Every folder with a planned file, also where nothing changed this time: a killed run's partial file may be there.
    remove_stale_partials(*{write.sidecar.parent for write in plan.writes})


def _kept_original(photo: Path, data: bytes, journal: UndoJournal) -> Path:
    """The photo as it is, kept beside the journal for undo before XMP is written into it: a second name of the same
    file where the filesystem allows (writing XMP gives the photo's name a new file), else a copy."""
    backup = journal.originals / f"{hashlib.sha256(data).hexdigest()}{photo.suffix.lower()}"
    if os.path.lexists(backup):
        return backup
    backup.parent.mkdir(parents=True, exist_ok=True)
    if not hard_linked(photo, backup) or backup.read_bytes() != data:
        backup.unlink(missing_ok=True)
        write_atomically(backup, data, None)
    return backup
