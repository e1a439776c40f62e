"""Labelling AVA photos by mean score, adding own photos, sampling and splitting deterministically."""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import LIVEC_IMAGES, PHOTO_NAMES, copy_photos
from keeptrash.errors import KeeptrashError
from keeptrash.labels.labelling import (
    KEEP,
    TRASH,
    assign_splits,
    build_labels,
    labels_summary,
    own_folder_photos,
    rated_own_photos,
)
from keeptrash.params import LabelsParams




def labels_table(metadata: pd.DataFrame, params: LabelsParams) -> pd.DataFrame:
    return build_labels(metadata, params).table


def metadata_frame(scores, first_id: int = 100000) -> pd.DataFrame:
    """The columns build_labels reads from the metadata table, with the dtypes the metadata stage writes."""
    n = len(scores)
    return pd.DataFrame(
        {
            "image_id": pd.Series([str(first_id + i) for i in range(n)], dtype="string"),
            "mean_score": np.asarray(scores, dtype="float64"),
            "tag_1": pd.Series(["Macro"] * n, dtype="string"),
            "tag_2": pd.Series([pd.NA] * n, dtype="string"),
            "challenge": pd.Series(["100_Meters"] * n, dtype="string"),
        }
    )


def mixed_metadata(n_keep: int, n_trash: int) -> pd.DataFrame:
    """n_keep photos scored >= 6 and n_trash below, interleaved so the label is not a function of id order."""
    rng = np.random.default_rng(7)
    scores = np.concatenate([rng.uniform(6.0, 8.0, n_keep), rng.uniform(2.0, 5.99, n_trash)])
    return metadata_frame(rng.permutation(scores))


@pytest.fixture
def own_dir(tmp_path) -> Path:
    folder = tmp_path / "own"
    (folder / "keep").mkdir(parents=True)
    (folder / "trash").mkdir()
    return folder


def make_params(own_dir: Path, **changes) -> LabelsParams:
    params = LabelsParams(
        threshold=6.0,
        margin=0.0,
        max_ava=1_000_000,
        ava_pool="all",
        seed=42,
        val_fraction=0.2,
        test_fraction=0.2,
        own_dir=str(own_dir),
        rated_own_csv="",
        rated_own_threshold=50.0,
    )
    return dataclasses.replace(params, **changes)


def ava_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["source"] == "ava"]


# --- thresholds and margins --------------------------------------------------------------------


def test_threshold_splits_keep_and_trash(own_dir):
    scores = [5.99, 6.0, 6.01, 3.0, 9.5, 1.0]
    table = labels_table(metadata_frame(scores), make_params(own_dir))
    by_id = table.set_index("image_id")
    assert by_id.loc[[str(100000 + i) for i in range(6)], "label"].tolist() == [0, 1, 1, 0, 1, 0]
    assert (table["source"] == "ava").all()
    assert table["key"].tolist() == sorted(f"ava:{100000 + i}" for i in range(6))
    assert by_id["score"].to_dict() == {str(100000 + i): score for i, score in enumerate(scores)}
    assert table["path"].isna().all()
    assert set(table["split"]) <= {"train", "val", "test"}


def test_threshold_is_a_parameter(own_dir):
    table = labels_table(metadata_frame([4.9, 5.0, 5.5, 6.5]), make_params(own_dir, threshold=5.0))
    assert table.sort_values("image_id")["label"].tolist() == [0, 1, 1, 1]


def test_margin_drops_the_ambiguous_band(own_dir):
    scores = [5.4, 5.5, 5.7, 6.0, 6.3, 6.5, 6.6]
    table = labels_table(metadata_frame(scores), make_params(own_dir, margin=0.5))
    kept = table.set_index("image_id")["label"].sort_index()
    # |score - 6| < 0.5 is dropped; exactly 0.5 away is clear enough to keep.
    assert kept.to_dict() == {"100000": 0, "100001": 0, "100005": 1, "100006": 1}


def test_tags_and_challenge_are_carried_over(own_dir):
    table = labels_table(metadata_frame([7.0]), make_params(own_dir))
    row = table.iloc[0]
    assert row["tag_1"] == "Macro" and pd.isna(row["tag_2"]) and row["challenge"] == "100_Meters"


def test_ava_pool_restricts_candidates(own_dir, tmp_path):
    pool = tmp_path / "pool.jpgl"
    pool.write_text("100001\n100003\n\n100009\n", encoding="utf-8")
    table = labels_table(metadata_frame([7.0, 4.0, 7.5, 3.0, 8.0]), make_params(own_dir, ava_pool=str(pool)))
    # 100009 is in the pool but not in the metadata: it is simply absent.
    assert sorted(table["image_id"]) == ["100001", "100003"]


def test_missing_ava_pool_file_is_named(own_dir, tmp_path):
    pool = tmp_path / "nowhere.jpgl"
    with pytest.raises(KeeptrashError, match="nowhere.jpgl"):
        labels_table(metadata_frame([7.0]), make_params(own_dir, ava_pool=str(pool)))


def test_max_ava_at_or_above_candidates_takes_all(own_dir):
    table = labels_table(mixed_metadata(30, 70), make_params(own_dir, max_ava=100))
    assert len(table) == 100
    assert int(table["label"].sum()) == 30


# --- sampling with max_ava ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_keep, n_trash, max_ava, want_keep, want_trash",
    [
        (300, 700, 101, 30, 71),  # 30.3 / 70.7: the leftover seat goes to trash (remainder .7 > .3)
        (333, 667, 50, 17, 33),  # 16.65 / 33.35: the leftover seat goes to keep (remainder .65 > .35)
        (250, 750, 1, 0, 1),  # 0.25 / 0.75
        (10, 990, 10, 0, 10),  # 0.1 / 9.9
        (400, 600, 999, 400, 599),  # 399.6 / 599.4
    ],
)
def test_max_ava_is_exact_and_keeps_class_proportions(own_dir, n_keep, n_trash, max_ava, want_keep, want_trash):
    table = labels_table(mixed_metadata(n_keep, n_trash), make_params(own_dir, max_ava=max_ava))
    assert len(table) == max_ava
    assert (int((table["label"] == KEEP).sum()), int((table["label"] == TRASH).sum())) == (want_keep, want_trash)


def test_max_ava_zero_with_own_photos_uses_only_own(own_dir):
    copy_photos(PHOTO_NAMES[:2], own_dir / "keep")
    table = labels_table(mixed_metadata(10, 10), make_params(own_dir, max_ava=0))
    assert table["source"].tolist() == ["own", "own"]


def test_max_ava_zero_without_own_photos_is_an_error(own_dir):
    with pytest.raises(KeeptrashError, match="no labelled photos"):
        labels_table(mixed_metadata(10, 10), make_params(own_dir, max_ava=0))


def test_same_seed_same_selection_different_seed_different_selection(own_dir):
    metadata = mixed_metadata(300, 700)
    first = labels_table(metadata, make_params(own_dir, max_ava=100, seed=1))
    again = labels_table(metadata, make_params(own_dir, max_ava=100, seed=1))
    other = labels_table(metadata, make_params(own_dir, max_ava=100, seed=2))
    pd.testing.assert_frame_equal(first, again)
    assert set(first["image_id"]) != set(other["image_id"])
    assert len(other) == 100


def test_selection_does_not_depend_on_row_order(own_dir):
    metadata = mixed_metadata(300, 700)
    shuffled = metadata.sample(frac=1.0, random_state=3).reset_index(drop=True)
    first = labels_table(metadata, make_params(own_dir, max_ava=100))
    second = labels_table(shuffled, make_params(own_dir, max_ava=100))
    pd.testing.assert_frame_equal(first, second)


def test_raising_max_ava_keeps_every_selected_id(own_dir):
    metadata = mixed_metadata(300, 700)
    previous = None
    for max_ava in (50, 51, 120, 400, 999):
        table = labels_table(metadata, make_params(own_dir, max_ava=max_ava))
        chosen = table.set_index("image_id")["label"]
        if previous is not None:
            assert set(previous.index) <= set(chosen.index)
            assert chosen[previous.index].tolist() == previous.tolist()
        previous = chosen


def test_raising_max_ava_changes_no_previous_split(own_dir):
    metadata = mixed_metadata(300, 700)
    small = labels_table(metadata, make_params(own_dir, max_ava=100)).set_index("key")["split"]
    large = labels_table(metadata, make_params(own_dir, max_ava=400)).set_index("key")["split"]
    assert set(small.index) <= set(large.index)
    moved = small[large[small.index].to_numpy() != small.to_numpy()]
    assert moved.empty, f"{len(moved)} of {len(small)} previously assigned rows changed split"


# --- splits ------------------------------------------------------------------------------------


def split_table(n_by_stratum: dict[tuple[str, int], int]) -> pd.DataFrame:
    rows = []
    for (source, label), n in n_by_stratum.items():
        rows += [{"key": f"{source}:{label}:{i}", "source": source, "label": label} for i in range(n)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "val_fraction, test_fraction",
    [(0.2, 0.2), (0.1, 0.3), (0.0, 0.25), (0.3, 0.0)],
)
def test_split_fractions_hold_in_every_stratum(val_fraction, test_fraction):
    sizes = {("ava", 1): 3000, ("ava", 0): 7000, ("own", 1): 2000, ("own", 0): 2000}
    table = split_table(sizes)
    table["split"] = assign_splits(table, val_fraction, test_fraction, seed=42)
    for (source, label), n in sizes.items():
        shares = table[(table["source"] == source) & (table["label"] == label)]["split"].value_counts() / n
        # Hash draws are binomial: 4 standard errors of a share at n >= 2000 is under 0.045.
        assert shares.get("test", 0.0) == pytest.approx(test_fraction, abs=0.045), (source, label)
        assert shares.get("val", 0.0) == pytest.approx(val_fraction, abs=0.045), (source, label)
        if test_fraction == 0:
            assert "test" not in shares
        if val_fraction == 0:
            assert "val" not in shares


def test_splits_are_deterministic_and_seeded():
    table = split_table({("ava", 1): 40, ("ava", 0): 60})
    first = assign_splits(table, 0.2, 0.2, seed=42)
    assert first.tolist() == assign_splits(table, 0.2, 0.2, seed=42).tolist()
    assert first.tolist() != assign_splits(table, 0.2, 0.2, seed=43).tolist()
    # Depends on the keys, not on the row order.
    shuffled = table.sample(frac=1.0, random_state=5)
    again = assign_splits(shuffled, 0.2, 0.2, seed=42)
    assert again.sort_index().tolist() == first.tolist()


def test_adding_rows_to_a_stratum_keeps_old_rows_in_their_split():
    small = split_table({("ava", 1): 50, ("ava", 0): 50})
    large = split_table({("ava", 1): 200, ("ava", 0): 200})  # the same 100 keys plus 300 new ones
    before = pd.Series(assign_splits(small, 0.2, 0.2, seed=42).to_numpy(), index=small["key"])
    after = pd.Series(assign_splits(large, 0.2, 0.2, seed=42).to_numpy(), index=large["key"])
    moved = before[after[before.index].to_numpy() != before.to_numpy()]
    assert moved.empty, f"{len(moved)} of {len(before)} rows changed split"


def test_build_labels_splits_every_row_by_its_key(own_dir):
    copy_photos(PHOTO_NAMES[:5], own_dir / "keep")
    params = make_params(own_dir)
    table = labels_table(mixed_metadata(30, 70), params)
    assert table.groupby(["source", "label"]).size().to_dict() == {("ava", 0): 70, ("ava", 1): 30, ("own", 1): 5}
    expected = assign_splits(table, params.val_fraction, params.test_fraction, params.seed)
    assert table["split"].tolist() == expected.tolist()
    assert set(table.loc[table["source"] == "ava", "split"]) == {"train", "val", "test"}
    assert table["key"].is_unique
    assert table["key"].tolist() == sorted(table["key"])


# --- own photos --------------------------------------------------------------------------------


def test_own_folder_photos_are_labelled_by_folder(own_dir):
    keep = copy_photos(PHOTO_NAMES[:2], own_dir / "keep") + copy_photos(PHOTO_NAMES[2:3], own_dir / "keep" / "2024")
    trash = copy_photos(PHOTO_NAMES[3:5], own_dir / "trash")
    (own_dir / "keep" / ".hidden.jpg").write_bytes((own_dir / "keep" / PHOTO_NAMES[0]).read_bytes())
    (own_dir / "trash" / "notes.txt").write_text("not a photo", encoding="utf-8")
    photos = own_folder_photos(own_dir)
    labels = dict(zip(photos["path"], photos["label"]))
    assert labels == {**{p.as_posix(): 1 for p in keep}, **{p.as_posix(): 0 for p in trash}}
    assert (photos["source"] == "own").all()
    assert photos["key"].tolist() == [f"own:{path}" for path in photos["path"]]
    assert photos["image_id"].isna().all()
    assert photos["score"].isna().all()


def test_own_photos_enter_the_label_table(own_dir):
    copy_photos(PHOTO_NAMES[:2], own_dir / "keep")
    copy_photos(PHOTO_NAMES[2:3], own_dir / "trash")
    table = labels_table(metadata_frame([7.0, 4.0]), make_params(own_dir))
    own = table[table["source"] == "own"].set_index("path")
    assert own["label"].to_dict() == {
        (own_dir / "keep" / PHOTO_NAMES[0]).as_posix(): 1,
        (own_dir / "keep" / PHOTO_NAMES[1]).as_posix(): 1,
        (own_dir / "trash" / PHOTO_NAMES[2]).as_posix(): 0,
    }
    assert len(ava_rows(table)) == 2


def test_empty_keep_and_trash_folders_are_allowed(own_dir):
    photos = own_folder_photos(own_dir)
    assert photos.empty
    assert list(photos.columns) == ["key", "source", "image_id", "path", "score", "label"]
    table = labels_table(metadata_frame([7.0, 4.0]), make_params(own_dir))
    assert table["source"].tolist() == ["ava", "ava"]


def test_missing_own_dir_is_named(tmp_path):
    missing = tmp_path / "my_photos"
    with pytest.raises(KeeptrashError) as error:
        labels_table(metadata_frame([7.0]), make_params(missing))
    assert str(missing) in str(error.value)
    assert "labels.own_dir" in str(error.value)


# --- rated photos (ratings CSV) ----------------------------------------------------------------


def write_ratings(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ratings.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_ratings_csv_labels_keep_at_or_above_threshold(tmp_path):
    csv = write_ratings(tmp_path / "rated", "path,score\nimages/a.jpg,49.99\nimages/b.jpg,50\nimages/c.jpg,87.5\nd.jpg,0\n")
    photos = rated_own_photos(csv, 50.0)
    base = (tmp_path / "rated").as_posix()
    assert photos["path"].tolist() == [f"{base}/images/a.jpg", f"{base}/images/b.jpg", f"{base}/images/c.jpg", f"{base}/d.jpg"]
    assert photos["label"].tolist() == [0, 1, 1, 0]
    assert photos["score"].tolist() == [49.99, 50.0, 87.5, 0.0]
    assert (photos["source"] == "own").all()
    assert photos["key"].tolist() == [f"own:{path}" for path in photos["path"]]


def test_ratings_csv_joins_the_label_table(own_dir, tmp_path):
    csv = write_ratings(tmp_path / "rated", "path,score\nx.jpg,10\ny.jpg,90\n")
    table = labels_table(metadata_frame([7.0]), make_params(own_dir, rated_own_csv=str(csv), rated_own_threshold=60.0))
    own = table[table["source"] == "own"].set_index("path")
    assert own["label"].to_dict() == {(tmp_path / "rated" / "x.jpg").as_posix(): 0, (tmp_path / "rated" / "y.jpg").as_posix(): 1}


def test_photo_in_own_folder_and_ratings_csv_is_one_photo_with_the_folder_label(own_dir):
    copy_photos(PHOTO_NAMES[:1], own_dir / "keep")
    csv = write_ratings(own_dir, f"path,score\nkeep/{PHOTO_NAMES[0]},20\n")
    labels = build_labels(metadata_frame([7.0]), make_params(own_dir, rated_own_csv=str(csv), max_ava=0))
    assert labels.table[["path", "label"]].values.tolist() == [[(own_dir / "keep" / PHOTO_NAMES[0]).as_posix(), 1]]
    assert labels.duplicates.summary() == {"rows_dropped": 1, "conflicts_settled_by_folder": 1, "conflicting_photos_dropped": 0}


# --- byte-identical photos (issue 12): one photo, one label, one split ------------------------------------------

DEMO_NAMES = sorted(path.name for path in LIVEC_IMAGES.glob("*.jpg"))


def test_copies_under_new_names_in_keep_and_trash_are_left_out_and_reported(own_dir):
    """60 demo photos copied into trash/ under new names while their originals sit in keep/: before, 31 of them
    had identical bytes in two splits with conflicting labels."""
    names = DEMO_NAMES[:60]
    copy_photos(names, own_dir / "keep")
    for name in names:
        (own_dir / "trash" / f"copy-of-{name}").write_bytes((own_dir / "keep" / name).read_bytes())
    copy_photos(DEMO_NAMES[60:70], own_dir / "trash")  # unique photos, untouched by the rule
    labels = build_labels(metadata_frame([7.0]), make_params(own_dir, max_ava=0))
    assert sorted(labels.table["path"]) == sorted((own_dir / "trash" / name).as_posix() for name in DEMO_NAMES[60:70])
    assert labels.duplicates.summary() == {"rows_dropped": 120, "conflicts_settled_by_folder": 0, "conflicting_photos_dropped": 60}
    assert len(labels.duplicates.notes) == 60 and "copy-of-" in labels.duplicates.notes[0]


def test_a_ratings_row_naming_a_photo_by_another_path_is_the_same_photo(tmp_path):
    """Rows like ../livec/images/x.jpg next to images/x.jpg: before, 200 conflicts and 98 photos split apart."""
    own = tmp_path / "own"
    (own / "keep").mkdir(parents=True)
    (own / "trash").mkdir()
    rated = tmp_path / "livec"
    copy_photos(DEMO_NAMES[:40], rated / "images")
    rows = [f"images/{name},{80 if i % 2 else 20}" for i, name in enumerate(DEMO_NAMES[:40])]
    # The same files again by a path through the parent folder: agreeing scores for 20, opposite ones for 20.
    rows += [f"../livec/images/{name},{80 if (i % 2) == (i < 20) else 20}" for i, name in enumerate(DEMO_NAMES[:40])]
    csv = write_ratings(rated, "path,score\n" + "\n".join(rows) + "\n")
    params = make_params(own, rated_own_csv=str(csv), max_ava=0, allow_paths_outside_csv=True)
    labels = build_labels(metadata_frame([7.0]), params)
    table = labels.table
    assert table["key"].is_unique
    digests = [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in table["path"]]
    assert len(set(digests)) == len(digests) == 20  # the 20 agreeing photos once each; the 20 conflicting left out
    assert table["path"].str.contains("/../").sum() == 0  # paths are normalised
    assert labels.duplicates.summary() == {"rows_dropped": 60, "conflicts_settled_by_folder": 0, "conflicting_photos_dropped": 20}


def test_dropping_duplicates_moves_no_unique_photo_to_another_split(own_dir):
    copy_photos(DEMO_NAMES[:50], own_dir / "keep")
    before = labels_table(metadata_frame([7.0]), make_params(own_dir, max_ava=0)).set_index("key")["split"]
    for name in DEMO_NAMES[:10]:
        (own_dir / "keep" / f"again-{name}").write_bytes((own_dir / "keep" / name).read_bytes())
    after = labels_table(metadata_frame([7.0]), make_params(own_dir, max_ava=0)).set_index("key")["split"]
    assert after.to_dict() == before.to_dict()  # each copy went, every original kept its split


def test_unreadable_or_missing_own_photos_are_not_merged(tmp_path, own_dir):
    csv = write_ratings(own_dir, "path,score\ngone-1.jpg,80\ngone-2.jpg,20\n")
    table = labels_table(metadata_frame([7.0]), make_params(own_dir, rated_own_csv=str(csv), max_ava=0))
    assert table["label"].tolist() == [1, 0]  # both kept: the download stage records them missing


# --- ratings CSV paths must stay in the CSV's folder tree ------------------------------------------------------


@pytest.mark.parametrize("path", ["../../../etc/shadow", "/etc/shadow", "images/../../x.jpg", ".."])
def test_ratings_csv_path_leaving_its_folder_is_refused_naming_the_row(tmp_path, path):
    csv = write_ratings(tmp_path / "rated", f"path,score\nimages/a.jpg,50\n{path},60\n")
    with pytest.raises(KeeptrashError) as error:
        rated_own_photos(csv, 50.0)
    message = str(error.value)
    assert f"{csv}:3:" in message and repr(path) in message and "labels.allow_paths_outside_csv" in message


def test_ratings_csv_paths_outside_are_read_when_the_param_allows(tmp_path):
    csv = write_ratings(tmp_path / "rated", "path,score\n../elsewhere/a.jpg,60\nimages/./b.jpg,40\n")
    photos = rated_own_photos(csv, 50.0, allow_outside=True)
    assert photos["path"].tolist() == [(tmp_path / "elsewhere" / "a.jpg").as_posix(), (tmp_path / "rated" / "images" / "b.jpg").as_posix()]


@pytest.mark.parametrize(
    "score, words", [("nan", "'nan', which is not a number"), ("", "an empty cell"), ("inf", "'inf', which is infinite")]
)
def test_ratings_csv_score_that_is_not_a_number_says_so_plainly(tmp_path, score, words):
    csv = write_ratings(tmp_path, f"path,score\na.jpg,50\nb.jpg,{score}\n")
    with pytest.raises(KeeptrashError) as error:
        rated_own_photos(csv, 50.0)
    assert f"{csv}:3: score must be a number, got {words}" in str(error.value), error.value
    assert "np." not in str(error.value) and "float64" not in str(error.value)


@pytest.mark.parametrize(
    "text, missing",
    [("path,rating\na.jpg,50\n", "score"), ("file,score\na.jpg,50\n", "path"), ("score\n50\n", "path")],
)
def test_ratings_csv_missing_a_column_is_named(tmp_path, text, missing):
    csv = write_ratings(tmp_path, text)
    with pytest.raises(KeeptrashError) as error:
        rated_own_photos(csv, 50.0)
    message = str(error.value)
    assert str(csv) in message
    assert f"missing {missing}" in message


@pytest.mark.parametrize(
    "text, line, value",
    [
        ("path,score\na.jpg,50\nb.jpg,high\nc.jpg,3\n", 3, "'high'"),
        ("path,score\na.jpg,50\nb.jpg,60\nc.jpg,7 stars\n", 4, "'7 stars'"),
        ("path,score\na.jpg,n/a\n", 2, None),
    ],
)
def test_ratings_csv_non_numeric_score_names_file_and_line(tmp_path, text, line, value):
    csv = write_ratings(tmp_path, text)
    with pytest.raises(KeeptrashError) as error:
        rated_own_photos(csv, 50.0)
    message = str(error.value)
    assert f"{csv}:{line}: score must be a number" in message
    if value:
        assert value in message


def test_missing_ratings_csv_is_named(tmp_path):
    csv = tmp_path / "nowhere.csv"
    with pytest.raises(KeeptrashError, match="nowhere.csv: ratings file not found"):
        rated_own_photos(csv, 50.0)


def test_ratings_csv_line_number_counts_blank_lines(tmp_path):
    csv = write_ratings(tmp_path, "path,score\n\na.jpg,50\nb.jpg,high\n")
    with pytest.raises(KeeptrashError) as error:
        rated_own_photos(csv, 50.0)
    assert f"{csv}:4:" in str(error.value)


def test_ratings_csv_empty_path_names_file_and_line(tmp_path):
    csv = write_ratings(tmp_path, "path,score\na.jpg,50\n,60\n")
    with pytest.raises(KeeptrashError) as error:
        rated_own_photos(csv, 50.0)
    assert f"{csv}:3" in str(error.value)


# --- summary -----------------------------------------------------------------------------------


def test_labels_summary_counts(own_dir):
    copy_photos(PHOTO_NAMES[:5], own_dir / "trash")
    metadata = mixed_metadata(30, 70)
    labels = build_labels(metadata, make_params(own_dir))
    table = labels.table
    summary = labels_summary(labels, metadata, 6.0)
    assert summary["ava_metadata_keep_fraction"] == 0.3
    assert labels_summary(labels, metadata, 2.0)["ava_metadata_keep_fraction"] == 1.0
    assert summary["duplicates"] == {"rows_dropped": 0, "conflicts_settled_by_folder": 0, "conflicting_photos_dropped": 0}
    assert summary["rows"] == 105
    assert summary["keep_fraction"] == round(30 / 105, 4)
    assert summary["keep_fraction_by_source"] == {"ava": 0.3, "own": 0.0}
    assert summary["rows_by_split"] == {split: int((table["split"] == split).sum()) for split in ("train", "val", "test")}
    assert sum(summary["rows_by_split"].values()) == 105
    own = table[table["source"] == "own"]
    assert summary["counts"]["own"] == {
        split: {"keep": 0, "trash": int((own["split"] == split).sum())} for split in sorted(set(own["split"]))
    }
    assert sum(sum(cell.values()) for cell in summary["counts"]["ava"].values()) == 100
