"""Stage 4: CNN embeddings and image statistics for every verified photo, from the cache where possible."""

import time

from keeptrash import paths
from keeptrash.errors import exits_cleanly
from keeptrash.features.extract import cache_namespace
from keeptrash.features.table import manifest_features, noise_copy_features
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.images import OK
from keeptrash.io import read_table, write_json, write_table
from keeptrash.params import load_params


@exits_cleanly
def main() -> None:
    params = load_params()
    manifest = read_table(paths.MANIFEST, "download")
    usable = manifest[manifest["status"] == OK]
    store = FeatureStore(default_cache_root(), cache_namespace(params.features))
    started = time.perf_counter()
    table, extracted = manifest_features(usable, params.features, store, params.download.max_image_pixels)
    copies, copies_extracted = noise_copy_features(usable, params.features.noise_copies, params.features, store, params.download.max_image_pixels)
    seconds = time.perf_counter() - started
    write_table(paths.FEATURES, table)
    write_table(paths.NOISE_COPIES, copies)
    write_json(
        paths.FEATURES_METRICS,
        {
            "images": len(table),
            "backbone": params.features.backbone,
            "pooling": params.features.pooling,
            "resolution": params.features.resolution,
            "columns": table.shape[1] - 1,
            "noise_copies": len(copies),
        },
    )
    print(
        f"features: {len(table)} photos ({extracted} extracted, {len(table) - extracted} from the cache "
        f"{store.folder}) and {len(copies)} noisy copies ({copies_extracted} extracted) in {seconds:.1f} s -> {paths.FEATURES}, {paths.NOISE_COPIES}"
    )


if __name__ == "__main__":
    main()
