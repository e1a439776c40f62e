"""Stage 2: label AVA images by mean score, add the user's own photos, split train/val/test."""

from keeptrash import paths
from keeptrash.errors import exits_cleanly, say
from keeptrash.io import read_table, write_json, write_table
from keeptrash.labels.labelling import build_labels, labels_summary
from keeptrash.params import load_params


@exits_cleanly
def main() -> None:
    all_params = load_params()
    params = all_params.labels
    metadata = read_table(paths.METADATA, "metadata")
    labels = build_labels(metadata, params, all_params.grouping, all_params.download.max_image_pixels)
    for note in [*labels.xmp.notes, *labels.decisions.notes, *labels.duplicates.notes]:
        say(f"labels: {note}")
    if params.own_xmp:
        xmp = labels.xmp
        say(
            f"labels: XMP of {xmp.photos} own photos: {xmp.read} read, {xmp.mapped} mapped ({xmp.keep} keep, {xmp.trash} trash), "
            f"{xmp.unmapped} unmapped ({xmp.unreadable} unreadable, {xmp.flag_conflicts} with disagreeing flags); "
            f"{xmp.labelled} labelled by it, {xmp.folder_conflicts} where keep/ or trash/ decided otherwise"
        )
    series = labels.series
    print(f"labels: {series.series} near-duplicate series ({series.photos_in_series} photos) kept within one split each, {series.photos_moved} photos moved to their series' split")
    write_table(paths.LABELS, labels.table)
    summary = labels_summary(labels, metadata, params.threshold)
    write_json(paths.LABELS_METRICS, summary)
    print(f"labels: {summary['rows']} photos, keep fraction {summary['keep_fraction']:.1%} -> {paths.LABELS}")


if __name__ == "__main__":
    main()
