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

    def load(self) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """(sha256 -> row, embeddings float16, statistics float32) over every shard written so far."""
        shards = sorted(self.folder.glob("shard-*.npz"))
        if not shards:
            return {}, np.zeros((0, 0), np.float16), np.zeros((0, 0), np.float32)
        digests, embeddings, statistics = [], [], []
        for shard in shards:
            with np.load(shard) as arrays:
                digests.append(arrays["sha256"])
                embeddings.append(arrays["embedding"])
                statistics.append(arrays["statistics"])
        all_digests = np.concatenate(digests)
        # Two runs racing on one photo may both write it; keep one copy so rows stay aligned.
        keep = np.sort(np.unique(all_digests, return_index=True)[1])
        index = {str(digest): row for row, digest in enumerate(all_digests[keep])}
        return index, np.concatenate(embeddings)[keep], np.concatenate(statistics)[keep]

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
