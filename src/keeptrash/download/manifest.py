"""The download manifest: every labelled photo, where its file is, and whether it decodes."""

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from keeptrash.images import CORRUPT, CORRUPT_EXIF, MISSING, OK, check_image
from keeptrash.download.sources import ImageSource

MANIFEST_COLUMNS = ["key", "source", "path", "bytes", "sha256", "width", "height", "status", "reason"]


def build_manifest(labels: pd.DataFrame, source: ImageSource, max_pixels: int) -> pd.DataFrame:
    """AVA rows are materialised by `source`; own photos are checked where they are, never copied or changed."""
    ava_ids = labels.loc[labels["source"] == "ava", "image_id"].tolist()
    ava_paths = source.fetch(ava_ids)
    rows = []
    for row in tqdm(labels.itertuples(), total=len(labels), desc="verifying images", unit="img", disable=None):
        path = ava_paths.get(row.image_id) if row.source == "ava" else Path(row.path)
        check = check_image(path, max_pixels)
        reason = check.reason if row.source == "own" or check.status != MISSING else "not in the download source"
        rows.append(
            (row.key, row.source, path.as_posix() if path else None, check.bytes, check.sha256,
             check.width, check.height, check.status, reason)
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def manifest_summary(manifest: pd.DataFrame) -> dict:
    by_status = manifest.groupby(["source", "status"]).size()
    return {
        "images": int(len(manifest)),
        "ok": int((manifest["status"] == OK).sum()),
        "missing": int((manifest["status"] == MISSING).sum()),
        "corrupt": int((manifest["status"] == CORRUPT).sum()),
        "ok_with_corrupt_exif": int(manifest["reason"].str.startswith(CORRUPT_EXIF).sum()),
        "bytes_ok": int(manifest.loc[manifest["status"] == OK, "bytes"].sum()),
        "by_source": {f"{source}_{status}": int(count) for (source, status), count in by_status.items()},
    }
