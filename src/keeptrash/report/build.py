"""Write DIR/report.md and its PNGs for one revision against another."""

from pathlib import Path

from keeptrash.errors import KeeptrashError
from keeptrash.io import atomic_write
from keeptrash.report.comparison import changed_decisions, compare, pair_predictions
from keeptrash.report.figures import contact_sheet, plots_of, render_plots
from keeptrash.report.markdown import report_markdown
from keeptrash.report.revisions import load_revision

CONTACT_SHEET_PHOTOS = 24
REPORT_NAME, SHEET_NAME = "report.md", "changed_decisions.png"


def _write_shareable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)  # readable like the PNGs beside it (the temporary file starts private)


def build_report(base_name: str, new_name: str | None, out: Path) -> Path:
    """new_name None compares the workspace (after `dvc repro` or `dvc exp apply`) with base_name."""
    base, new = load_revision(base_name), load_revision(new_name)
    pairing = pair_predictions(base.predictions, new.predictions)
    if pairing.photos.empty:
        raise KeeptrashError(f"{base.name} and {new.name} share no test photo with the same label; nothing to compare")
    comparison = compare(pairing, base.threshold, new.threshold)
    changed = changed_decisions(pairing, base.threshold, new.threshold)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KeeptrashError(f"{out}: cannot create the report folder ({error.strerror}); pass --out a writable folder") from None
    plots = render_plots(plots_of([base_name] + ([new_name] if new_name else [])), out)
    sheet = None
    if not changed.empty:
        contact_sheet(changed.head(CONTACT_SHEET_PHOTOS), new.photo_paths, base.name, new.name, out / SHEET_NAME)
        sheet = SHEET_NAME
    text = report_markdown(base, new, pairing, comparison, {name: path.name for name, path in plots.items()}, changed, sheet)
    atomic_write(out / REPORT_NAME, lambda temp: _write_shareable(temp, text))
    return out / REPORT_NAME
