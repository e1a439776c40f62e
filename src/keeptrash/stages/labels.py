"""Stage 2: label AVA images by mean score, add the user's own photos, split train/val/test."""

from keeptrash import paths
from keeptrash.errors import exits_cleanly
from keeptrash.io import read_table, write_json, write_table
from keeptrash.labels.labelling import build_labels, labels_summary
from keeptrash.params import load_params


@exits_cleanly
def main() -> None:
    params = load_params().labels
    metadata = read_table(paths.METADATA, "metadata")
    labels = build_labels(metadata, params)
    for note in labels.duplicates.notes:
        print(f"labels: {note}")
    write_table(paths.LABELS, labels.table)
    summary = labels_summary(labels, metadata, params.threshold)
    write_json(paths.LABELS_METRICS, summary)
    print(f"labels: {summary['rows']} photos, keep fraction {summary['keep_fraction']:.1%} -> {paths.LABELS}")


if __name__ == "__main__":
    main()
