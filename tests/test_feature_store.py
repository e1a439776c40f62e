"""The content-addressed feature cache: shards on disk, one row per image digest."""

import hashlib

import numpy as np
import pandas as pd

from keeptrash.features import PREPROCESSING_VERSION
from keeptrash.features.backbones import BACKBONES
from keeptrash.features.extract import cache_namespace, embedding_columns
from keeptrash.features.table import manifest_features
from keeptrash.features.image_stats import STAT_NAMES
from keeptrash.features.store import CACHE_ENV, FeatureStore, default_cache_root
from keeptrash.params import FeaturesParams

N_STATS = len(STAT_NAMES)


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def random_rows(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (n, dim)).astype(np.float32), rng.normal(0, 10, (n, N_STATS)).astype(np.float32)


def test_empty_store_loads_empty(tmp_path):
    (tmp_path / "created-but-empty").mkdir()
    for store in (FeatureStore(tmp_path, "never-written"), FeatureStore(tmp_path, "created-but-empty")):
        index, embeddings, statistics = store.load()
        assert index == {} and store.digests() == set()
        assert embeddings.shape[0] == 0 and statistics.shape[0] == 0
        assert embeddings.dtype == np.float16 and statistics.dtype == np.float32


def test_two_shards_load_every_digest_once_with_its_rows(tmp_path):
    store = FeatureStore(tmp_path, "ns")
    first_digests, second_digests = [digest("a"), digest("b"), digest("c")], [digest("d"), digest("e")]
    first_embeddings, first_stats = random_rows(3, 16, seed=1)
    second_embeddings, second_stats = random_rows(2, 16, seed=2)
    store.append(first_digests, first_embeddings, first_stats)
    store.append(second_digests, second_embeddings, second_stats)

    index, embeddings, statistics = store.load()
    assert sorted(index) == sorted(first_digests + second_digests)
    assert store.digests() == set(first_digests + second_digests)  # what is cached, read without the features
    assert sorted(index.values()) == list(range(5))
    assert embeddings.shape == (5, 16) and embeddings.dtype == np.float16
    assert statistics.shape == (5, N_STATS) and statistics.dtype == np.float32
    for digests, want_embeddings, want_stats in ((first_digests, first_embeddings, first_stats), (second_digests, second_embeddings, second_stats)):
        for row, key in enumerate(digests):
            # float16 keeps about three significant digits.
            np.testing.assert_allclose(embeddings[index[key]].astype(np.float32), want_embeddings[row], rtol=1e-3, atol=1e-3)
            np.testing.assert_array_equal(statistics[index[key]], want_stats[row])


def test_shards_are_complete_npz_files_and_no_temp_files_remain(tmp_path):
    store = FeatureStore(tmp_path, "ns")
    store.append([digest("a")], *random_rows(1, 4, seed=3))
    store.append([digest("b")], *random_rows(1, 4, seed=4))
    names = sorted(path.name for path in (tmp_path / "ns").iterdir())
    assert len(names) == 2
    assert all(name.startswith("shard-") and name.endswith(".npz") for name in names)


def test_duplicate_digest_is_returned_once_and_rows_stay_aligned(tmp_path):
    store = FeatureStore(tmp_path, "ns")
    embeddings, stats = random_rows(4, 8, seed=5)
    # Two runs raced on photo "b": both wrote it, with the same features.
    store.append([digest("a"), digest("b")], embeddings[[0, 1]], stats[[0, 1]])
    store.append([digest("b"), digest("c"), digest("d")], embeddings[[1, 2, 3]], stats[[1, 2, 3]])
    index, loaded_embeddings, loaded_stats = store.load()
    assert sorted(index) == sorted(digest(name) for name in "abcd")
    assert len(loaded_embeddings) == len(loaded_stats) == 4
    for row, name in enumerate("abcd"):
        np.testing.assert_allclose(loaded_embeddings[index[digest(name)]].astype(np.float32), embeddings[row], rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(loaded_stats[index[digest(name)]], stats[row])


def test_duplicate_digest_within_one_shard_is_returned_once(tmp_path):
    store = FeatureStore(tmp_path, "ns")
    embeddings, stats = random_rows(3, 8, seed=6)
    store.append([digest("a"), digest("a"), digest("b")], embeddings[[0, 0, 2]], stats[[0, 0, 2]])
    index, loaded_embeddings, loaded_stats = store.load()
    assert index == {digest("a"): 0, digest("b"): 1}
    np.testing.assert_array_equal(loaded_stats, stats[[0, 2]])


def test_namespaces_are_separate(tmp_path):
    FeatureStore(tmp_path, "mobilenet_v2-224px-v1").append([digest("a")], *random_rows(1, 4, seed=7))
    assert FeatureStore(tmp_path, "efficientnet_lite0-224px-v1").load()[0] == {}
    assert list(FeatureStore(tmp_path, "mobilenet_v2-224px-v1").load()[0]) == [digest("a")]


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert default_cache_root() == tmp_path / "cache"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "keeptrash" / "features"


def test_feature_table_uses_cached_rows_without_computing(tmp_path):
    """Every digest is cached, so no model is built: the table joins cached rows to manifest keys."""
    params = FeaturesParams(backbone="mobilenet_v2", pooling="last", resolution=224, batch_size=8, device="cpu")
    backbone = BACKBONES[params.backbone]
    store = FeatureStore(tmp_path, cache_namespace(params))
    embeddings, stats = random_rows(2, backbone.dims["last"], seed=8)
    store.append([digest("x"), digest("y")], embeddings, stats)
    manifest = pd.DataFrame(
        {
            "key": ["own:b.jpg", "ava:1", "own:copy-of-b.jpg"],
            "path": ["b.jpg", "1.jpg", "copy-of-b.jpg"],
            "sha256": [digest("y"), digest("x"), digest("y")],
        }
    )
    table, computed = manifest_features(manifest, params, store, max_pixels=10**8)
    assert computed == 0
    assert table["key"].tolist() == manifest["key"].tolist()
    assert list(table.columns) == ["key", *embedding_columns(backbone, "last"), *STAT_NAMES]
    cnn = table[embedding_columns(backbone, "last")].to_numpy()
    # The table keeps the store's float16: exactly the stored values, at half the memory of float32.
    assert cnn.dtype == np.float16
    np.testing.assert_array_equal(cnn, embeddings[[1, 0, 1]].astype(np.float16))
    np.testing.assert_array_equal(table[list(STAT_NAMES)].to_numpy(), stats[[1, 0, 1]])
    assert cache_namespace(params) == f"mobilenet_v2-last-224px-v{PREPROCESSING_VERSION}"
