"""The report's pictures: DVC's own plots of both revisions rendered to PNG offline with vl-convert,
and a contact sheet of the test photos whose decision changed."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import vl_convert
from PIL import Image, ImageDraw, ImageFont

from keeptrash.errors import KeeptrashError
from keeptrash.images import DECODE_ERRORS, ImageTooLarge, open_photo, pixel_limit

# File name -> the plot's id in dvc.yaml; both revisions' data drawn on one chart, as `dvc plots diff` does.
KEY_PLOTS = {
    "learning_curve": "Learning curve (scores against training-set size)",
    "learning_curve_logloss": "Learning curve (log loss)",
    "roc": "metrics/benchmark_plots/plots/sklearn/roc.json",
    "calibration": "Calibration (test split; diagonal = perfect)",
    "degradation": "Mean keep probability as photos degrade (severity 0 = untouched)",
}
# DVC's plot templates are Vega-Lite 5 specs (the same version .dvc/plots_offline.html inlines).
VEGA_LITE_VERSION = "5.21"
THUMBNAIL, CAPTION, COLUMNS, MAX_PIXELS = 180, 64, 6, 300_000_000


def plots_of(revisions: list[str]) -> dict[str, dict]:
    """Each plot id -> its Vega-Lite spec holding every revision's data (`dvc plots diff REVS --json`)."""
    result = subprocess.run([sys.executable, "-m", "dvc", "plots", "diff", *revisions, "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise KeeptrashError(f"dvc plots diff {' '.join(revisions)} failed: {last}")
    return {
        plot_id: renders[0]["content"]
        for plot_id, renders in json.loads(result.stdout)["data"].items()
        if renders and renders[0].get("type") == "vega"
    }


def plot_file(name: str) -> str:
    return f"{name}.png"


def render_plots(specs: dict[str, dict]) -> dict[str, bytes]:
    """The PNG of each key plot that the revisions have, by name."""
    return {
        name: vl_convert.vegalite_to_png(specs[plot_id], scale=1.5, vl_version=VEGA_LITE_VERSION)
        for name, plot_id in KEY_PLOTS.items()
        if plot_id in specs
    }


def _thumbnail(path: str | None) -> Image.Image | None:
    if not path:
        return None
    try:
        with pixel_limit(MAX_PIXELS):
            image, _ = open_photo(Path(path), THUMBNAIL)
    except (ImageTooLarge, *DECODE_ERRORS):
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return image


def contact_sheet(changed: pd.DataFrame, photo_paths: dict[str, str], base_name: str, new_name: str) -> bytes:
    """A PNG grid of the changed photos, each captioned with its true label and both revisions' keep probability."""
    cell_width, cell_height = THUMBNAIL + 20, THUMBNAIL + CAPTION
    rows = -(-len(changed) // COLUMNS)
    sheet = Image.new("RGB", (cell_width * min(len(changed), COLUMNS), cell_height * rows), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for index, photo in enumerate(changed.itertuples()):
        left, top = cell_width * (index % COLUMNS) + 10, cell_height * (index // COLUMNS) + 4
        thumbnail = _thumbnail(photo_paths.get(photo.key))
        if thumbnail is None:
            draw.rectangle([left, top, left + THUMBNAIL, top + THUMBNAIL], outline="grey")
            draw.text((left + 8, top + THUMBNAIL // 2), "photo not on this disk", fill="grey", font=font)
        else:
            sheet.paste(thumbnail, (left + (THUMBNAIL - thumbnail.width) // 2, top + (THUMBNAIL - thumbnail.height) // 2))
        caption = (
            f"{Path(photo.key).name[:28]}  (truly {'keep' if photo.label == 1 else 'trash'})\n"
            f"{base_name[:14]}: {photo.probability_base:.2f} {photo.decision_base}\n"
            f"{new_name[:14]}: {photo.probability_new:.2f} {photo.decision_new}"
        )
        draw.multiline_text((left, top + THUMBNAIL + 4), caption, fill="black", font=font, spacing=3)
    png = io.BytesIO()
    sheet.save(png, "PNG")
    return png.getvalue()
