"""The `keeptrash` command: cull a photo folder with a trained model, review its contact sheet, and undo a move."""

import argparse
import contextlib
import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from keeptrash import paths
from keeptrash.cull import KEEP, TRASH, SortRefused, review_page
from keeptrash.cull.contact_sheet import render_contact_sheet
from keeptrash.cull.journal import UndoJournal, new_journal
from keeptrash.cull.ordering import ORDERS, uncertain_first
from keeptrash.cull.pairs import SEPARATOR
from keeptrash.cull.safe_write import exclusive_folders, remove_stale_partials
from keeptrash.cull.scan import scan_folder
from keeptrash.cull.sidecars import NAMING_HELP, NAMINGS, XmpPlan, configured_xmp, plan_sidecars, write_sidecars
from keeptrash.cull.sorting import MODES, sort_photo, sort_shot, undo_moves
from keeptrash.errors import KeeptrashError, exits_cleanly, readable, say
from keeptrash.features.store import default_cache_root
from keeptrash.images import file_digest
from keeptrash.io import csv_text
from keeptrash.output_folder import OutputFolder
from keeptrash.params import GroupingParams

# Large enough for 100+ MP panoramas, small enough that a decompression bomb is refused.
DEFAULT_MAX_PIXELS = 300_000_000
CSV_NAME, SHEET_NAME = "keeptrash.csv", "contact_sheet.html"
XMP_WRITES = ("sidecar", "embed")


def _number_within(low: float, high: float, what: str, bounds: str) -> Callable[[str], float]:
    """An argparse type for a number from low to high; errors say what it should be."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not {bounds}")
        return value

    return parse


_probability = _number_within(0.0, 1.0, "a number", "between 0 and 1")
_seconds = _number_within(0.0, 86400.0, "a number of seconds", "from 0 to 86400 seconds")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def _hash_bits(text: str) -> int:
    if not text.isdigit() or int(text) > 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 64")
    return int(text)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one line, exit code 2 (argparse would print the whole usage)."""

    def error(self, message: str) -> None:
        raise KeeptrashError(f"{self.prog}: {message}; see {self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keeptrash", description="Sort photos into keep and trash with a trained model.")
    commands = parser.add_subparsers(dest="command", required=True)
    cull = commands.add_parser(
        "cull",
        help="score a folder of photos; sort them only with --copy, --link or --move, write XMP only with --xmp",
        description="Score every photo in FOLDER and write a CSV and an HTML contact sheet to --out. "
        "Nothing is copied, linked, moved or written beside the photos unless asked; nothing is ever deleted or overwritten.",
    )
    cull.add_argument("folder", type=Path, help="folder of photos (JPEG, PNG, TIFF, WebP, HEIC; GIF, AVIF, RAW ... are listed too)")
    cull.add_argument("--model", type=Path, default=paths.MODEL, help=f"model from the train stage (default {paths.MODEL})")
    cull.add_argument("--out", type=Path, help="output folder for keep/, trash/, the CSV and contact sheet (default FOLDER-keeptrash)")
    cull.add_argument("-r", "--recursive", action="store_true", help="also score photos in subfolders")
    cull.add_argument(
        "--follow-links", action="store_true",
        help="with -r, also enter symlinked folders (photos whose real folder lies outside FOLDER are scored, never moved)",
    )
    cull.add_argument("--threshold", type=_probability, help="keep when P(keep) >= this (default: chosen on validation, stored in the model)")
    sort_mode = cull.add_mutually_exclusive_group()
    for mode in MODES:
        sort_mode.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode, help=f"{mode} photos into OUT/keep and OUT/trash")
    cull.add_argument(
        "--xmp", nargs="?", const="sidecar", choices=XMP_WRITES,
        help="write each decision as XMP (rating, label, digiKam pick label) for Lightroom, darktable, digiKam, Capture One: "
        "into the photo's sidecar (default), or with 'embed' into JPEG, TIFF and DNG files themselves (others get a sidecar)",
    )
    cull.add_argument("--xmp-naming", choices=tuple(NAMINGS), default="lightroom", help=f"a new sidecar's name: {NAMING_HELP} (default %(default)s)")
    cull.add_argument(
        "--xmp-overwrite", action="store_true",
        help="replace a rating, label or pick label you set with keeptrash's (by default a photo you rated or flagged keeps yours)",
    )
    cull.add_argument(
        "--best-of", type=_positive, metavar="N",
        help="keep at most the best N shots of each series of near-identical photos (bursts, retakes); the rest go to trash",
    )
    defaults = GroupingParams()
    cull.add_argument(
        "--series-gap", type=_seconds, default=defaults.max_gap_seconds, metavar="SECONDS",
        help="a photo shot at most this long after the one before it (EXIF time, else file time) may join its series (default %(default)s)",
    )
    cull.add_argument(
        "--series-distance", type=_hash_bits, default=defaults.max_hash_distance, metavar="BITS",
        help="... if their 64-bit perceptual hashes differ in at most this many bits; 0 = only identical looks (default %(default)s)",
    )
    cull.add_argument("--no-contact-sheet", dest="contact_sheet", action="store_false", help="skip the HTML contact sheet")
    cull.add_argument(
        "--order", choices=ORDERS, default=ORDERS[0],
        help="probability (default): the sheet from most to least likely keep, the CSV in folder order; "
        "uncertain: CSV and sheet nearest the keep threshold first, the photos worth labelling first",
    )
    cull.add_argument("--max-pixels", type=_positive, default=DEFAULT_MAX_PIXELS, help="skip images larger than this (default %(default)s)")
    cull.add_argument("--batch-size", type=_positive, default=32, help="images per CNN batch (default %(default)s)")
    review = commands.add_parser(
        "review",
        help="serve a cull's contact sheet on 127.0.0.1 and save your keep/trash decisions to a CSV as you make them",
        description="Serve the contact sheet `keeptrash cull FOLDER` wrote, on 127.0.0.1 only, to whoever opens the address "
        "it prints (it holds a token). Every keep/trash decision you make on it is merged into --decisions "
        "(path,sha256,decision; other photos' rows are kept), the file labels.own_decisions lists; see docs/review-loop.md. "
        "Stop with Ctrl+C.",
    )
    review.add_argument("folder", type=Path, help="the culled photo folder, or the --out folder holding contact_sheet.html")
    review.add_argument("--decisions", type=Path, help="a new .csv, or a decisions CSV to add to (default: keeptrash-decisions.csv beside the sheet)")
    review.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free one, printed)")
    undo = commands.add_parser(
        "undo", help="put back every photo a `cull --move` moved and every sidecar a `cull --xmp` wrote",
        description="Restore moved photos to where they were and XMP sidecars to their bytes before the cull.",
    )
    undo.add_argument("manifest", type=Path, help="the undo-*.jsonl file that `keeptrash cull --move` or `--xmp` wrote")
    report = commands.add_parser(
        "report",
        help="write a markdown review of the workspace (or --new) against --base",
        description="Compare two revisions' test predictions, paired photo by photo, and write OUT/report.md with PNG plots. "
        "A revision is a git commit, branch or tag, or an experiment name from `dvc exp show`.",
    )
    report.add_argument("--base", default="HEAD", help="revision to compare against (default %(default)s)")
    report.add_argument("--new", help="revision under review (default: the workspace, after dvc repro)")
    report.add_argument("--out", type=Path, default=Path("report"), help="folder for report.md and its PNGs (default %(default)s)")
    return parser


def _skip_summary(skipped: list[tuple[Path, str]]) -> str:
    counts = Counter(reason.split(":")[0] for _, reason in skipped)
    return ", ".join(f"{reason} {count}" for reason, count in counts.most_common())


def _sort_row(row: pd.Series, folder: Path, mode: str, journal: UndoJournal | None) -> tuple[list[Path | None], str]:
    """Where each file of one scored photo, or of a RAW+JPEG pair sorted together (keeptrash.cull.pairs), went (None:
    not sorted), and the JPEG's action with each RAW file's where it differs."""
    paired = row.get("paired_with") or ()
    if not paired:
        where, action = sort_photo(row["path"], folder, mode, row["sha256"], journal)
        return [where], action
    done = sort_shot([row["path"], *paired], folder, mode, row["sha256"], journal)
    action = done[0][1]
    differing = [f"; {readable(raw.name)} {raw_action}" for raw, (_, raw_action) in zip(paired, done[1:]) if raw_action != action]
    return [where or None for where, _ in done], action + "".join(differing)


def sort_scored(scores: pd.DataFrame, out: Path, mode: str, journal: UndoJournal | None) -> dict:
    """Sort every scored photo of the culled folder into out/keep or out/trash, filling sorted_to and action; a move
    goes into the journal. Where each file of each shot went, by row. The caller holds the lock on the culled folder
    and out."""
    places = {}
    for index, row in tqdm(scores.iterrows(), total=len(scores), desc=mode, unit="img", disable=None):
        try:
            places[index], action = _sort_row(row, out / row["decision"], mode, journal)
        except SortRefused as refusal:
            action = f"not sorted: {refusal}"
        except OSError as error:
            action = f"not sorted: {error.strerror or error}"
        where = SEPARATOR.join(readable(place) for place in places.get(index, ()) if place)
        scores.loc[index, ["sorted_to", "action"]] = [where, readable(action)]
    remove_stale_partials(out / KEEP, out / TRASH)
    return places


def opened_journal(out: Path, folder: Path) -> UndoJournal:
    try:
        return new_journal(out, folder)
    except OSError as error:
        raise KeeptrashError(f"{out}: cannot create the undo journal ({error.strerror}); nothing was moved or written") from None


def shot_files(scores: pd.DataFrame, places: dict) -> list[tuple[pd.Series, list[tuple[Path, Path]]]]:
    """Each scored shot with (where each of its files was, where it is now) for its photo and any paired RAW files."""
    shots = []
    for index, row in scores.iterrows():
        originals = [Path(row["path"]), *(row.get("paired_with") or ())]
        now = places.get(index) or [None] * len(originals)
        shots.append((row, [(original, place or original) for original, place in zip(originals, now)]))
    return shots


def results_table(scores: pd.DataFrame, skipped: list[tuple[Path, str]]) -> pd.DataFrame:
    """One CSV row per photo found: the scored ones, then the skipped ones with decision "skipped" and the reason."""
    skipped_rows = pd.DataFrame(
        {"path": [path for path, _ in skipped], "decision": "skipped", "reason": [reason for _, reason in skipped]},
        dtype=object,
    )
    table = pd.concat([scores, skipped_rows], ignore_index=True)
    paired = table["paired_with"] if "paired_with" in table else pd.Series([()] * len(table), dtype=object)
    return table.assign(
        path=table["path"].map(readable),
        paired_with=[SEPARATOR.join(map(readable, raws)) if isinstance(raws, tuple) else "" for raws in paired],
        reason=table["reason"].map(readable),
    )


def prepare_output(out: Path, contact_sheet: bool) -> OutputFolder:
    """Create the output folder up front, so a bad --out fails in a second, not after scoring every photo: a file in
    the way of the CSV or sheet, or a keep/ or trash/ that is a symlink (photos would leave --out, out of undo's reach)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KeeptrashError(f"{out}: cannot create the output folder ({error.strerror}); pass --out a writable folder") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise KeeptrashError(f"{out}: output folder is not writable; pass --out a writable folder")
    output = OutputFolder(out, "cull", (CSV_NAME, *([SHEET_NAME] if contact_sheet else [])), new_only=False, hint="pass another --out")
    for sorted_folder in (out / KEEP, out / TRASH):
        if sorted_folder.is_symlink() or (sorted_folder.exists() and not sorted_folder.is_dir()):
            raise KeeptrashError(
                f"{sorted_folder}: is a symlink or not a folder; photos are sorted only into real folders "
                "inside --out: remove it, or pass another --out"
            )
    return output


def cull(args: argparse.Namespace) -> None:
    # Imported here, not at the top: scoring loads torch and CatBoost, seconds that `keeptrash undo` need not wait.
    from keeptrash.cull.scoring import load_scoring_model, score_shots
    from keeptrash.cull.series import add_series, keep_best_of, series_summary

    folder = args.folder
    out = args.out or folder.resolve().parent / f"{folder.resolve().name}-keeptrash"
    model = load_scoring_model(args.model, batch_size=args.batch_size)
    if args.threshold is not None:
        model = dataclasses.replace(model, threshold=args.threshold)
    if not folder.is_dir():
        raise KeeptrashError(f"{folder}: not a folder; pass the folder of photos to cull")
    output = prepare_output(out, args.contact_sheet)
    acting = args.mode or args.xmp
    # A second run sorting or writing the same photos or into the same output waits for nothing: it is refused in one line.
    with exclusive_folders(folder, out) if acting else contextlib.nullcontext():
        started = time.perf_counter()
        # Never score what an earlier run sorted, even when --out is the photo folder itself.
        scan = scan_folder(folder, args.recursive, exclude=(out, out / KEEP, out / TRASH), follow_links=args.follow_links)
        scores, failed = score_shots(scan.photos, model, default_cache_root(), args.max_pixels)
        scores = add_series(scores, GroupingParams(args.series_gap, args.series_distance), args.max_pixels)
        if args.best_of:
            scores = keep_best_of(scores, args.best_of)
        skipped = scan.skipped + failed
        scoring_seconds = time.perf_counter() - started
        if args.order == "uncertain":
            scores = uncertain_first(scores, model.threshold)
        if args.contact_sheet:
            # Before sorting: a move takes the photos away from the paths the thumbnails are read from.
            page = render_contact_sheet(
                scores, skipped, model.threshold, f"keeptrash: {readable(folder)}", args.max_pixels, args.order
            )
            output.write(SHEET_NAME, page.encode("utf-8"))
        scores = scores.assign(sorted_to="", action="")
        journal = opened_journal(out, folder) if args.mode == "move" or args.xmp else None
        try:
            places = sort_scored(scores, out, args.mode, journal) if args.mode else {}
            # After sorting: a sorted photo's XMP goes beside it. Planned in a dry run too, to say what --xmp would do.
            xmp_plan = plan_xmp(shot_files(scores, places), model, args)
            if args.xmp:
                write_sidecars(xmp_plan, journal)
                scores = scores.assign(xmp=xmp_column(shot_files(scores, places), xmp_plan))
        finally:
            if journal:
                journal.close()
        if journal and journal.empty:
            journal.path.unlink()  # nothing was moved or written: an empty journal would only confuse
            journal = None
        table = results_table(scores, skipped)
        output.write(CSV_NAME, csv_text(table).encode("utf-8"))
        seconds = time.perf_counter() - started
        kept = int((scores["decision"] == KEEP).sum())
        scanned = len(scan.photos) + len(scan.skipped)
        say(
            f"cull: scanned {scanned}, keep {kept}, trash {len(scores) - kept}, skipped {len(skipped)}"
            + (f" ({_skip_summary(skipped)})" if skipped else "")
            + f"; {seconds:.1f} s, {scanned / max(seconds, 1e-9):.1f} images/s (scoring {scoring_seconds:.1f} s)"
        )
        pairs = int(scores["paired_with"].map(bool).sum())
        say(
            f"cull: {series_summary(scores)}" + (f", at most the best {args.best_of} of each kept" if args.best_of else "")
            + (f"; {pairs} RAW+JPEG pairs, each scored once from its JPEG" if pairs else "")
        )
        say(f"cull: wrote {out / CSV_NAME}" + (f" and {out / SHEET_NAME}" if args.contact_sheet else ""))
        print_xmp_summary(xmp_plan, written=bool(args.xmp))
        if not acting:
            review = "review the contact sheet, then " if args.contact_sheet else ""
            print(
                f"cull: dry run, no photo was copied, linked or moved; {review}rerun with --copy, --link or --move to sort, "
                "--xmp to write XMP"
            )
            return
        if args.mode:
            actions = Counter(scores["action"])
            done = ", ".join(f"{action} {count}" for action, count in actions.most_common()) or "no photo to sort"
            say(f"cull: into {out}/keep and /trash: {done}")
        if journal:
            say(f"cull: to undo: keeptrash undo {journal.path}")


def plan_xmp(shots: list, model, args: argparse.Namespace) -> XmpPlan:
    model_version = f"{args.model.name} sha256:{file_digest(args.model)[:16]}"
    return plan_sidecars(
        shots, model.threshold, configured_xmp(), model_version, args.xmp_naming, args.xmp_overwrite, embed=args.xmp == "embed"
    )


def xmp_column(shots: list, plan: XmpPlan) -> list[str]:
    """What --xmp did for each shot, for the CSV."""
    done: dict[Path, list[str]] = {}
    for write in plan.writes:
        kept = f" (kept your {write.kept})" if write.kept else ""
        if write.inside_photo:
            what = "wrote into the photo" if write.status != "unchanged" else "unchanged in the photo"
        else:
            what = f"{write.status} {write.sidecar.name}"
        done.setdefault(write.photo, []).append(f"{what}{kept}")
    for photo, sidecar, reason in plan.problems:
        done.setdefault(photo, []).append(f"{sidecar.name}: {reason}")
    return [readable("; ".join(note for _, now in files for note in done.get(now, []))) for _, files in shots]


# Warnings shown in full; the rest are counted (a shoot of RAW+JPEG pairs warns once per pair).
WARNINGS_SHOWN = 3


def print_xmp_summary(plan: XmpPlan, written: bool) -> None:
    counts = plan.counts()
    kept = plan.kept_persons()
    kept_text = f"; {kept} keep the rating or flag you set (--xmp-overwrite replaces it)" if kept else ""
    inside = f" (into {counts['inside photos']} photos themselves)" if counts["inside photos"] else ""
    if written:
        print(f"cull: xmp: created {counts['created']} sidecars, changed {counts['changed']}{inside}, unchanged {counts['unchanged']}{kept_text}")
    else:
        print(f"cull: --xmp would create {counts['created']} sidecars and change {counts['changed']} ({counts['unchanged']} unchanged){kept_text}")
    for warning in plan.warnings[:WARNINGS_SHOWN]:
        say(f"cull: xmp: {warning}")
    if len(plan.warnings) > WARNINGS_SHOWN:
        print(f"cull: xmp: ... and {len(plan.warnings) - WARNINGS_SHOWN} more photos sharing a sidecar")
    for _, sidecar, reason in plan.problems:
        say(f"cull: xmp: {sidecar}: {reason}")


def review(args: argparse.Namespace) -> None:
    from keeptrash.cull.review_server import decisions_to_write, find_sheet, serve

    sheet = find_sheet(args.folder)
    serve(sheet, decisions_to_write(args.decisions or sheet.parent / review_page.EXPORT_NAME), args.port)


def undo(args: argparse.Namespace) -> None:
    report = undo_moves(args.manifest)
    for path, reason in report.problems:
        say(f"undo: {path}: {reason}")
    print(
        f"undo: restored {report.restored}, already in place {report.already_restored}, problems {len(report.problems)}; "
        f"sidecars restored {report.sidecars_restored}, already as they were {report.sidecars_already_restored}"
    )
    if report.problems:
        raise KeeptrashError(f"{len(report.problems)} photos or sidecars could not be restored; see the lines above")


def report(args: argparse.Namespace) -> None:
    from keeptrash.report.build import build_report  # DVC is imported only by the command that needs it

    started = time.perf_counter()
    written = build_report(args.base, args.new, args.out)
    say(f"report: wrote {written} in {time.perf_counter() - started:.1f} s")


@exits_cleanly
def main() -> None:
    args = build_parser().parse_args()
    {"cull": cull, "review": review, "undo": undo, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
