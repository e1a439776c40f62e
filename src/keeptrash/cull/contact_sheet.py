"""A self-contained HTML page of thumbnails, keep and trash side by side, for a person to check before sorting."""

import base64
import html
import io
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from keeptrash.cull import KEEP, TRASH, review_page
from keeptrash.cull.ordering import sheet_order
from keeptrash.errors import readable
from keeptrash.images import DECODE_ERRORS, ImageTooLarge, open_photo, pixel_limit

THUMBNAIL_SIDE = 240
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
.columns { display: flex; gap: 2em; align-items: flex-start; }
.column { flex: 1; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 250px; background: #fff; border: 1px solid #ddd; padding: 5px; }
figure img { display: block; margin: 0 auto; max-width: 240px; max-height: 240px; }
figcaption { font-size: 12px; overflow-wrap: anywhere; }
.probability { font-weight: bold; font-size: 14px; }
h2.keep { color: #1b7a2e; } h2.trash { color: #a61b1b; }
.series figure.keep { border: 3px solid #1b7a2e; } .series figure.trash { border: 3px solid #a61b1b; opacity: 0.8; }
.series { margin-bottom: 1em; } .series h3 { font-size: 14px; margin: 0.3em 0; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
"""


def thumbnail_data_uri(path: Path, max_pixels: int, side: int = THUMBNAIL_SIDE) -> str:
    """An upright JPEG thumbnail as a data: URI, or "" when the photo cannot be opened any more."""
    try:
        with pixel_limit(max_pixels):
            image, _ = open_photo(path, side)
    except (ImageTooLarge, *DECODE_ERRORS):
        return ""
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _card(row: pd.Series, thumbnail: str) -> str:
    # A RAW+JPEG pair is one card, named by both files (keeptrash.cull.pairs).
    files = [Path(row["path"]), *row.get("paired_with", ())]
    name = html.escape(" + ".join(readable(file.name) for file in files))
    image = f'<img src="{thumbnail}" alt="{name}">' if thumbnail else "<p>(no thumbnail)</p>"
    return (
        f'<figure {review_page.card_attributes(readable(row["path"]), row["sha256"], row["decision"])}>{image}<figcaption>'
        f'<span class="verdict">{row["decision"]}</span>'
        f'<span class="probability">{row["keep_probability"]:.2f}</span> {name}<br>'
        f'{html.escape(row["reason"])}</figcaption></figure>'
    )


def _series_section(series: pd.DataFrame, thumbnails: dict) -> str:
    """Each series of near-identical shots in one row, best shot first; the series in shooting order."""
    if series.empty:
        return ""
    rows = []
    for group, shots in series.sort_values("group_rank").groupby("group", sort=True):
        kept = int((shots["decision"] == KEEP).sum())
        cards = "".join(_card(row, thumbnails[index]) for index, row in shots.iterrows())
        rows.append(
            f'<div class="series" data-group="{group}"><h3>series {group}: {len(shots)} shots, keep {kept}</h3>'
            f'<div class="grid">{cards}</div></div>'
        )
    return f"<h2>series of near-identical shots ({len(rows)})</h2>{''.join(rows)}"


def render_contact_sheet(
    scores: pd.DataFrame, skipped: list[tuple[Path, str]], threshold: float, title: str, max_pixels: int, order: str = "probability"
) -> str:
    """scores has path, sha256, keep_probability, decision and reason, and may have group and group_rank (see
    cull.series): series of two or more shots come first, one row each, best first; the other photos follow in a
    keep and a trash column, both in `order` (keeptrash.cull.ordering). A person can flip and export the decisions
    (keeptrash.cull.review_page)."""
    ranked = sheet_order(scores, threshold, order).reset_index(drop=True)
    thumbnails = {
        index: thumbnail_data_uri(Path(row["path"]), max_pixels)
        for index, row in tqdm(ranked.iterrows(), total=len(ranked), desc="contact sheet", unit="img", disable=None)
    }
    in_series = ranked["group"].map(ranked["group"].value_counts()) > 1 if "group" in ranked else pd.Series(False, index=ranked.index)
    cards = {KEEP: [], TRASH: []}
    for index, row in ranked[~in_series].iterrows():
        cards[row["decision"]].append(_card(row, thumbnails[index]))
    columns = "".join(
        f'<div class="column"><h2 class="{decision}">{decision} ({len(cards[decision])})</h2>'
        f'<div class="grid">{"".join(cards[decision])}</div></div>'
        for decision in (KEEP, TRASH)
    )
    skipped_rows = "".join(
        f"<tr><td>{html.escape(readable(path))}</td><td>{html.escape(readable(reason))}</td></tr>" for path, reason in skipped
    )
    skipped_table = (
        f"<h2>skipped ({len(skipped)})</h2><table><tr><th>file</th><th>reason</th></tr>{skipped_rows}</table>" if skipped else ""
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}{review_page.STYLE}</style></head><body {review_page.page_body_attributes()}><h1>{html.escape(title)}</h1>"
        f"<p>{len(scores)} photos scored; keep when the keep probability is at least {threshold:g}"
        f"{'; nearest that threshold first' if order == 'uncertain' else ''}. "
        "Reasons are the features that pushed the decision most (SHAP, log-odds).</p>"
        f"{review_page.toolbar()}{_series_section(ranked[in_series], thumbnails)}"
        f'<div class="columns">{columns}</div>{skipped_table}<script>{review_page.SCRIPT}</script></body></html>\n'
    )
