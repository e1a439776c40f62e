"""What the measures at native resolution cost per camera-sized photo (issue 27), beside today's decode for the CNN.

    python benchmarks/native_measures.py [--large ../shared/data/large]

Per photo of --large, CPU time in this one process (so the figure is what an idle core would take, whatever else
the machine runs) of: today's draft-mode decode for the 500-px view (keeptrash.images.open_photo); a full decode
with the view reduced from it (keeptrash.features.native.decoded_once); and native_measures on the full pixels.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from keeptrash.features.native import decoded_once, native_measures
from keeptrash.images import open_photo

VIEW_SIDE = 500


def cpu_milliseconds(work) -> tuple[float, object]:
    started = time.process_time()
    result = work()
    return 1000 * (time.process_time() - started), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, default=Path("../shared/data/large"))
    args = parser.parse_args()
    photos = sorted(args.large.glob("*.jpg"))
    if not photos:
        sys.exit(f"{args.large}: no .jpg photos; pass --large with camera-sized JPEGs")
    rows = []
    for photo in photos:
        draft, _ = cpu_milliseconds(lambda: open_photo(photo, VIEW_SIDE))
        full, (pixels, _) = cpu_milliseconds(lambda: decoded_once(photo, VIEW_SIDE))
        measures, _ = cpu_milliseconds(lambda: native_measures(pixels))
        rows.append({"photo": photo.name, "megapixels": round(pixels.shape[0] * pixels.shape[1] / 1e6, 1),
                     "draft_decode_ms": round(draft), "full_decode_and_view_ms": round(full), "native_measures_ms": round(measures)})
    megapixels = sum(row["megapixels"] for row in rows)
    totals = {key: sum(row[key] for row in rows) for key in ("draft_decode_ms", "full_decode_and_view_ms", "native_measures_ms")}
    summary = {f"{key[:-3]}_ms_per_megapixel": round(value / megapixels, 1) for key, value in totals.items()}
    json.dump({"photos": rows, "per_megapixel": summary, "cpus": os.cpu_count(), "load_average": [round(load, 1) for load in os.getloadavg()]}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
