"""`features.engine: ray`: the same extraction on Ray Data, on this machine or on a cluster.

The photos to extract are cut into shards; Ray Data maps the shards over a pool of actors (a batch
map, one shard per call), each actor holding one copy of the backbone and running the local
engine's own decode, statistics and inference on its shard. The driver (the features stage) writes
every finished shard to its feature store as it arrives, so an interrupted run keeps what was done,
and a laptop can train on features a cluster extracted. Workers open photos by path: on a cluster
the photos must be at the same path on every node (a shared or mounted folder).
"""

import math
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.features.extract import SHARD_SIZE, ExtractedShard, PhotoLoader, extracted_shards, make_embedder, store_shard
from keeptrash.features.runtimes import EXPORTS_FOLDER
from keeptrash.features.store import FeatureStore
from keeptrash.params import FeaturesParams


class _ShardExtractor:
    """A Ray actor: the backbone loaded once, then whole shards of photos."""

    def __init__(self, params: FeaturesParams, max_pixels: int, exports_folder: Path):
        self.params, self.max_pixels = params, max_pixels
        self.embed = make_embedder(params, exports_folder)

    def __call__(self, shards: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for keys, loaders in zip(shards["keys"], shards["loaders"]):
            keys, loaders = list(keys), list(loaders)
            for shard in extracted_shards(loaders, keys, self.params, self.max_pixels, self.embed, len(loaders)):
                rows.append(vars(shard))
        return pd.DataFrame(rows, columns=["keys", "embeddings", "statistics", "failures"])


def _connect(address: str) -> None:
    import ray

    if ray.is_initialized():
        return
    try:
        # An empty address starts Ray on this machine; otherwise join the cluster (auto, or ray://head:10001).
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise KeeptrashError(
            f"features.ray_address {address!r}: cannot connect to Ray ({error}); start the cluster, or leave it empty for a Ray on this machine"
        ) from None


def ray_shard_size(batch_size: int) -> int:
    """SHARD_SIZE rounded up to whole batches, so the model sees the same batches as in the local engine."""
    return batch_size * math.ceil(SHARD_SIZE / batch_size)


def compute_missing_on_ray(loaders: list[PhotoLoader], keys: list[str], params: FeaturesParams, store: FeatureStore, max_pixels: int) -> dict[str, str]:
    """Like the local engine's compute_missing_locally: features into the store, key -> reason for photos that do not decode."""
    import ray.data

    _connect(params.ray_address)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # shards arrive in order, as in the local engine
    context.enable_progress_bars = False  # the bar below counts photos instead
    size = ray_shard_size(params.batch_size)
    shards = [{"keys": keys[start : start + size], "loaders": loaders[start : start + size]} for start in range(0, len(loaders), size)]
    extracted = ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
        _ShardExtractor,
        fn_constructor_args=(params, max_pixels, store.folder.parent / EXPORTS_FOLDER),
        batch_size=1,
        batch_format="pandas",
        # One shard per actor at a time: otherwise the first actor ready takes several queued shards while the others
        # are still loading the backbone, and with few shards one actor does the work of all (measured: benchmarks/ray_actors.py).
        compute=ray.data.ActorPoolStrategy(size=params.ray_actors, max_tasks_in_flight_per_actor=1),
        num_cpus=params.ray_cpus_per_actor,
        num_gpus=1 if params.device == "cuda" else 0,
    )
    failures = {}
    progress = tqdm(total=len(loaders), desc=f"extracting {params.backbone} features on Ray", unit="img", disable=None)
    for row in extracted.iter_rows():
        shard = ExtractedShard(list(row["keys"]), row["embeddings"], row["statistics"], dict(row["failures"]))
        store_shard(store, shard)
        failures.update(shard.failures)
        progress.update(len(shard.keys) + len(shard.failures))
    progress.close()
    return failures
