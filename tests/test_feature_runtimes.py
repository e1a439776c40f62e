"""features.runtime: ONNX Runtime and OpenVINO run the backbone exported from the same weights and agree with torch eager."""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import LIVEC_IMAGES, PARAMS_YAML
from keeptrash.features.backbones import BACKBONES
from keeptrash.features.extract import cache_namespace
from keeptrash.features.table import feature_table
from keeptrash.features.runtimes import EXPORTS_FOLDER, RUNTIMES, NormalisedInput, exported_model, float16_steps, weights_digest
from keeptrash.features.store import FeatureStore
from keeptrash.params import load_params

MAX_PIXELS = 300_000_000
# The default backbone, pooling and resolution: the features the pipeline stores.
DEFAULT = dataclasses.replace(load_params(PARAMS_YAML).features, runtime="torch", device="cpu", engine="local")
AVA_IMAGES = LIVEC_IMAGES.parent.parent / "ava" / "images"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Real photos of several shapes: 500 x 500 LIVE-C photos, AVA photos as taken, and a LIVE-C photo made wide."""
    with Image.open(LIVEC_IMAGES / "100.jpg") as original:
        wide = tmp_path_factory.mktemp("wide") / "wide.jpg"
        original.convert("RGB").resize((750, 400)).save(wide, quality=95)
    return [*sorted(LIVEC_IMAGES.glob("*.jpg"))[:4], *sorted(AVA_IMAGES.glob("*.jpg"))[:3], wide]


def extract(photos: list[Path], store: FeatureStore, params=DEFAULT):
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in photos]
    return feature_table([str(path) for path in photos], digests, params, store, MAX_PIXELS)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    """One feature cache root for the module, so the backbone is exported once beside its stores."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def torch_features(photos, cache_root):
    table, failures, computed = extract(photos, FeatureStore(cache_root, "torch"))
    assert not failures and computed == len(photos)
    return table


@pytest.mark.parametrize("workers", [None, 0], ids=["worker processes", "one process"])
@pytest.mark.parametrize("runtime", [runtime for runtime in RUNTIMES if runtime != "torch"])
def test_runtime_features_agree_with_torch_eager_within_a_float16_step(photos, cache_root, torch_features, runtime, workers):
    params = dataclasses.replace(DEFAULT, runtime=runtime, workers=workers)
    table, failures, computed = extract(photos, FeatureStore(cache_root, f"{runtime}-{workers}"), params)
    assert not failures and computed == len(photos)
    expected, got = (frame.filter(like="cnn_").to_numpy().astype(np.float16) for frame in (torch_features, table))
    assert got.shape == expected.shape == (len(photos), BACKBONES[DEFAULT.backbone].dims[DEFAULT.pooling])
    steps = float16_steps(expected, got)
    assert steps.max() <= 1, f"{(steps > 1).sum()} values more than one float16 step from torch's"
    assert (steps == 0).mean() > 0.95  # most values round to the very same float16
    assert sorted(path.suffix for path in (cache_root / EXPORTS_FOLDER).iterdir()) == [".onnx"]  # exported once, beside the stores


def test_every_runtime_shares_one_cache_namespace_and_reuses_the_features_of_another(photos, tmp_path):
    assert len({cache_namespace(dataclasses.replace(DEFAULT, runtime=runtime)) for runtime in RUNTIMES}) == 1
    store = FeatureStore(tmp_path, cache_namespace(DEFAULT))
    first, _, computed = extract(photos[:2], store)
    assert computed == 2
    for runtime in RUNTIMES[1:]:
        again, _, computed = extract(photos[:2], store, dataclasses.replace(DEFAULT, runtime=runtime))
        assert computed == 0
        assert again.equals(first)
    assert not (tmp_path / EXPORTS_FOLDER).exists()  # features already cached need no exported model


def test_the_export_is_reused_and_named_by_the_weights_it_holds(tmp_path):
    backbone = BACKBONES["mobilenet_v2"]
    path = exported_model(backbone, "last", tmp_path)
    written = path.stat().st_mtime_ns
    assert exported_model(backbone, "last", tmp_path) == path
    assert path.stat().st_mtime_ns == written
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no temporary file left beside it

    model = NormalisedInput(backbone.build("last"), backbone)
    assert weights_digest(model) in path.name
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert weights_digest(model) not in path.name
