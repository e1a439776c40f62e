"""The analyze stage's series of takes: written from real photos with real EXIF times, ranked and grouped."""

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from conftest import LIVEC_IMAGES
from keeptrash.analysis.series import ORIGINAL, TAKES, original_ranks, series_evaluation, write_series
from keeptrash.analysis.registry import series_photos
from keeptrash.grouping import group_series, read_signatures
from keeptrash.params import GroupingParams

PHOTOS = sorted(LIVEC_IMAGES.glob("*.jpg"))[:4]


def sharpness(image: Image.Image) -> float:
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    return float(np.var(grey[1:-1, 2:] + grey[1:-1, :-2] + grey[2:, 1:-1] + grey[:-2, 1:-1] - 4 * grey[1:-1, 1:-1]))


def test_takes_are_a_series_one_second_apart_and_each_goes_wrong_its_own_way(tmp_path):
    takes = write_series(PHOTOS, tmp_path / "card", 500)
    assert len(takes) == len(PHOTOS) * len(TAKES) and takes["take"].value_counts().eq(len(PHOTOS)).all()
    signatures = read_signatures(list(takes["path"]), 10**8)
    times = pd.Series([signature.captured for signature in signatures])
    for _, rows in takes.groupby("series"):
        assert times[rows.index].diff().dropna().eq(1.0).all()  # EXIF DateTimeOriginal, one second apart
    assert adjusted_rand_score(takes["series"], group_series(signatures, GroupingParams())) == 1.0
    # The original is not always the first frame of its series.
    assert takes.groupby("series").head(1)["take"].nunique() > 1
    first = takes[takes["series"] == 0].set_index("take")["path"]
    images = {take: Image.open(path).convert("RGB") for take, path in first.items()}
    mean = {take: np.asarray(image, dtype=np.float64).mean() for take, image in images.items()}
    sharp = {take: sharpness(image) for take, image in images.items()}
    assert mean["underexposed"] < 0.5 * mean[ORIGINAL]
    assert sharp["missed_focus"] < 0.2 * sharp[ORIGINAL] and sharp["reframe_shake"] < 0.5 * sharp[ORIGINAL]
    assert sharp["high_iso"] > 2 * sharp[ORIGINAL]  # noise is high-frequency energy
    assert abs(mean["recompressed"] - mean[ORIGINAL]) < 3 and not np.array_equal(images["recompressed"], images[ORIGINAL])


def test_a_tie_with_a_lesser_take_counts_against_the_original():
    takes = pd.DataFrame(
        {"series": [0, 0, 0, 1, 1, 1], "take": [ORIGINAL, "a", "b"] * 2, "keep_probability": [0.9, 0.5, 0.9, 0.8, 0.1, 0.2]}
    )
    assert original_ranks(takes).tolist() == [2, 1]


def test_series_evaluation_scores_ranking_grouping_and_culling(tmp_path):
    takes = write_series(PHOTOS, tmp_path / "card", 500)
    # A model that likes noise: the high-ISO take beats the original in every series but the last.
    probability = {ORIGINAL: 0.8, "reframe_shake": 0.3, "underexposed": 0.4, "missed_focus": 0.2, "high_iso": 0.9, "recompressed": 0.6}
    takes = takes.assign(keep_probability=takes["take"].map(probability), label=(takes["series"] < 2).astype(int))
    takes.loc[(takes["series"] == 3) & (takes["take"] == "high_iso"), "keep_probability"] = 0.1
    metrics, per_take = series_evaluation(takes, 0.5, GroupingParams(), 10**8)
    assert metrics["original_first_share"] == 0.25 and metrics["original_mean_rank"] == 1.75
    assert metrics["grouping_adjusted_rand_index"] == 1.0 and metrics["groups_found"] == len(PHOTOS)
    # Series 5 s apart or less follow each other too closely for capture time alone.
    assert metrics["grouping_ari_time_only"] < 1.0
    culling = metrics["culling"]
    assert culling["threshold"]["lesser_takes_kept_share"] == 0.35  # high_iso 3 of 4 and recompressed 4 of 4: 7 of 20
    assert culling["best_of_1"]["lesser_takes_kept_share"] == 0.15 and culling["best_of_1"]["keep_series_kept_share"] == 1.0
    assert culling["best_of_1"]["keep_originals_kept_share"] == 0.0  # the noisy take was kept instead
    assert per_take.set_index("take").loc["high_iso", "beats_original_share"] == 0.75


def test_series_are_made_of_own_test_photos_first_then_the_others_so_an_ava_only_run_has_them_too():
    test = pd.DataFrame({"key": ["ava:2", "own:b", "ava:1", "own:a"], "source": ["ava", "own", "ava", "own"], "label": [1, 0, 1, 1]})
    assert series_photos(test, 3)["key"].tolist() == ["own:a", "own:b", "ava:1"]
    assert series_photos(test[test["source"] == "ava"], 24)["key"].tolist() == ["ava:1", "ava:2"]
    assert series_photos(test, 0).empty and list(series_photos(test, 2).columns) == list(test.columns)
