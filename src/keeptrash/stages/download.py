"""Stage 3: make the labelled AVA images available from `download.source` and verify every photo."""

from keeptrash import paths
from keeptrash.errors import exits_cleanly
from keeptrash.io import read_table, write_json, write_table
from keeptrash.download.manifest import build_manifest, manifest_summary
from keeptrash.params import load_params
from keeptrash.download.sources import open_source


@exits_cleanly
def main() -> None:
    params = load_params().download
    labels = read_table(paths.LABELS, "labels")
    manifest = build_manifest(labels, open_source(params), params.max_image_pixels)
    write_table(paths.MANIFEST, manifest)
    summary = manifest_summary(manifest)
    write_json(paths.DOWNLOAD_METRICS, summary)
    print(f"download: {summary['ok']} ok, {summary['missing']} missing, {summary['corrupt']} corrupt -> {paths.MANIFEST}")


if __name__ == "__main__":
    main()
