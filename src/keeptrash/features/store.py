"""A content-addressed cache of per-image features, shared by every workspace on the machine.

Entries are keyed by the sha256 of the image bytes inside a folder per backbone, input size and
preprocessing version, so a renamed photo is not re-extracted and a new backbone starts afresh.
Features are written in shards (one .npz per chunk of images) by atomic rename: an interrupted
extraction keeps every finished shard and never leaves a partial one behind. The cache lives
outside the repo because DVC's queued experiments run in temporary copies of it.
"""

import os
import uuid
from pathlib import Path

import numpy as np

from keeptrash.io import atomic_write

CACHE_ENV = "KEEPTRASH_FEATURE_CACHE"


def default_cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keeptrash" / "features"


class FeatureStore:
    def __init__(self, root: Path, namespace: str):
        self.folder = root / namespace

    def _shard_digests(self) -> tuple[list[Path], list[np.ndarray]]:
        shards = sorted(self.folder.glob("shard-*.npz"))
        digests = []
        for shard in shards:
            with np.load(shard) as arrays:
                digests.append(arrays["sha256"])
        return shards, digests

    def digests(self) -> set[str]:
        """The sha256 of every photo in the store, without reading its features."""
        return {str(digest) for shard_digests in self._shard_digests()[1] for digest in shard_digests}

    def load(self) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """(sha256 -> row, embeddings float16, statistics float32) over every shard written so far.

        The rows are copied once, shard by shard, into arrays of the final size: at AVA scale the embeddings are
        gigabytes, and a list of the shards' arrays concatenated would hold them twice."""
        shards, digests = self._shard_digests()
        if not shards:
            return {}, np.zeros((0, 0), np.float16), np.zeros((0, 0), np.float32)
        with np.load(shards[0]) as arrays:
            embeddings = np.empty((sum(map(len, digests)), arrays["embedding"].shape[1]), np.float16)
            statistics = np.empty((len(embeddings), arrays["statistics"].shape[1]), np.float32)
        start = 0
        for shard, shard_digests in zip(shards, digests):
            with np.load(shard) as arrays:
                embeddings[start : start + len(shard_digests)] = arrays["embedding"]
                statistics[start : start + len(shard_digests)] = arrays["statistics"]
            start += len(shard_digests)
        all_digests = np.concatenate(digests)
        # Two runs racing on one photo may both write it; keep one copy so rows stay aligned.
        keep = np.sort(np.unique(all_digests, return_index=True)[1])
        index = {str(digest): row for row, digest in enumerate(all_digests[keep])}
        if len(keep) < len(all_digests):
            embeddings, statistics = embeddings[keep], statistics[keep]
        return index, embeddings, statistics

    def append(self, digests: list[str], embeddings: np.ndarray, statistics: np.ndarray) -> None:
        shard = self.folder / f"shard-{uuid.uuid4().hex}.npz"

        def write(temp: Path) -> None:
            with temp.open("wb") as handle:
                np.savez(
                    handle,
                    sha256=np.array(digests),
                    embedding=embeddings.astype(np.float16),
                    statistics=statistics.astype(np.float32),
                )

        atomic_write(shard, write)
