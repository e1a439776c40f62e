"""features.engine: ray runs the same extraction on Ray Data (a local Ray here) and must match the local engine."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from conftest import CHEAP_FEATURES, LIVEC_IMAGES, PARAMS_YAML
from keeptrash.features.extract import SHARD_SIZE, cache_namespace
from keeptrash.features.table import feature_table
from keeptrash.features.store import FeatureStore
from keeptrash.images import file_digest
from keeptrash.params import load_params

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def photos_with_one_broken(tmp_path, count):
    paths = [str(path) for path in sorted(LIVEC_IMAGES.glob("*.jpg"))[:count]]
    broken = tmp_path / "truncated.jpg"
    broken.write_bytes(LIVEC_IMAGES.joinpath("100.jpg").read_bytes()[:3000])
    paths.insert(5, str(broken))
    return paths


def test_the_ray_engine_writes_the_same_features_as_the_local_engine(local_ray, tmp_path):
    features = load_params(PARAMS_YAML).features
    paths = photos_with_one_broken(tmp_path, SHARD_SIZE + 20)  # two shards, the second partial
    digests = [file_digest(Path(path)) for path in paths]
    results = {}
    for engine in ("local", "ray"):
        # One actor with this machine's 2 cores: the same threads as the local engine, so the very same arithmetic.
        params = dataclasses.replace(features, engine=engine, ray_actors=1, ray_cpus_per_actor=2, **CHEAP_FEATURES)
        store = FeatureStore(tmp_path / engine, cache_namespace(params))
        results[engine] = feature_table(paths, digests, params, store, 10**8)
    (local_table, local_failures, local_computed), (ray_table, ray_failures, ray_computed) = results["local"], results["ray"]
    assert local_computed == ray_computed == len(paths) - 1
    assert ray_failures == local_failures and list(ray_failures) == [paths[5]]
    assert list(ray_table.columns) == list(local_table.columns)
    assert (ray_table["sha256"] == local_table["sha256"]).all()
    assert np.array_equal(ray_table.drop(columns="sha256").to_numpy(), local_table.drop(columns="sha256").to_numpy())
