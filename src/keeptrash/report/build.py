"""Write DIR/report.md and its PNGs for one revision against another."""

from pathlib import Path

from keeptrash.errors import KeeptrashError
from keeptrash.output_folder import OutputFolder
from keeptrash.report.comparison import changed_decisions, compare, pair_predictions
from keeptrash.report.figures import KEY_PLOTS, contact_sheet, plot_file, plots_of, render_plots
from keeptrash.report.markdown import report_markdown
from keeptrash.report.revisions import load_revision

CONTACT_SHEET_PHOTOS = 24
REPORT_NAME, SHEET_NAME = "report.md", "changed_decisions.png"


def report_folder(out: Path) -> OutputFolder:
    """out, checked before any work: new, empty or an earlier report's, and no file there in the way of this one's."""
    names = (REPORT_NAME, SHEET_NAME, *(plot_file(name) for name in KEY_PLOTS))
    return OutputFolder(out, "report", names, new_only=True, hint="pass --out a new or empty folder")


def build_report(base_name: str, new_name: str | None, out: Path) -> Path:
    """new_name None compares the workspace (after `dvc repro` or `dvc exp apply`) with base_name."""
    folder = report_folder(out)
    base, new = load_revision(base_name), load_revision(new_name)
    pairing = pair_predictions(base.predictions, new.predictions)
    if pairing.photos.empty:
        raise KeeptrashError(f"{base.name} and {new.name} share no test photo with the same label; nothing to compare")
    comparison = compare(pairing, base.threshold, new.threshold)
    changed = changed_decisions(pairing, base.threshold, new.threshold)
    specs = plots_of([base_name] + ([new_name] if new_name else []))
    plots = {name: folder.write(plot_file(name), png).name for name, png in render_plots(specs).items()}
    sheet = None
    if not changed.empty:
        sheet = folder.write(SHEET_NAME, contact_sheet(changed.head(CONTACT_SHEET_PHOTOS), new.photo_paths, base.name, new.name)).name
    text = report_markdown(base, new, pairing, comparison, plots, changed, sheet)
    return folder.write(REPORT_NAME, text.encode("utf-8"))
