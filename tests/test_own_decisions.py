"""Decisions exported from the contact sheet become labels of the user's own photos, matched by sha256."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import LIVEC_IMAGES, PHOTO_NAMES, copy_photos
from keeptrash.errors import KeeptrashError
from keeptrash.labels.labelling import KEEP, TRASH, build_labels, labels_summary
from keeptrash.labels.own_decisions import decide
from keeptrash.model.model_inputs import score_target
from keeptrash.params import LabelsParams
from test_labelling import metadata_frame


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests_below(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): sha256_of(path) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def own_dir(tmp_path) -> Path:
    """own/keep holds PHOTO_NAMES[0:2], own/trash PHOTO_NAMES[2:4]; a ratings CSV next to them rates PHOTO_NAMES[4] 80."""
    folder = tmp_path / "own"
    copy_photos(PHOTO_NAMES[:2], folder / "keep")
    copy_photos(PHOTO_NAMES[2:4], folder / "trash")
    copy_photos(PHOTO_NAMES[4:5], folder / "rated")
    (folder / "rated" / "ratings.csv").write_text(f"path,score\n{PHOTO_NAMES[4]},80\n", encoding="utf-8")
    return folder


def params_for(own_dir: Path, decision_files: list[Path]) -> LabelsParams:
    return LabelsParams(
        threshold=6.0, margin=0.0, max_ava=10, ava_pool="all", seed=42, val_fraction=0.2, test_fraction=0.2,
        own_dir=str(own_dir), rated_own_csv=str(own_dir / "rated" / "ratings.csv"), rated_own_threshold=50.0,
        own_decisions=tuple(str(path) for path in decision_files),
    )


def write_decisions(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["path", "sha256", "decision"]).to_csv(path, index=False)
    return path


def original(name: str) -> str:
    """The sha256 of a demo photo, as the contact sheet of a folder holding a renamed copy of it would export it."""
    return sha256_of(LIVEC_IMAGES / name)


def own_labels(labels) -> dict[str, int]:
    own = labels.table[labels.table["source"] == "own"]
    return {Path(path).name: int(label) for path, label in zip(own["path"], own["label"])}


def test_no_decision_files_change_nothing(own_dir):
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, []))
    assert own_labels(labels) == {PHOTO_NAMES[0]: 1, PHOTO_NAMES[1]: 1, PHOTO_NAMES[2]: 0, PHOTO_NAMES[3]: 0, PHOTO_NAMES[4]: 1}
    assert labels_summary(labels, metadata_frame([7.0]), 6.0)["own_decisions"] == {
        "files": 0, "rows": 0, "photos": 0, "repeated": 0, "conflicts": 0, "unmatched": 0, "applied": 0, "changed": 0,
    }


def test_a_decision_overrides_the_folder_and_the_rating_by_sha256_and_photos_stay_untouched(own_dir, tmp_path):
    # Decided on a sheet of another folder, where the photos had other names.
    decisions = write_decisions(own_dir / "decisions" / "mine.csv", [
        ("/holiday/IMG_0001.jpg", original(PHOTO_NAMES[0]), "trash"),  # was in keep/
        ("/holiday/IMG_0002.jpg", original(PHOTO_NAMES[2]), "keep"),  # was in trash/
        ("/holiday/IMG_0003.jpg", original(PHOTO_NAMES[4]).upper(), "TRASH"),  # rated 80, above the threshold
        ("/holiday/IMG_0004.jpg", original(PHOTO_NAMES[1]), "keep"),  # agrees with its folder
    ])
    before = digests_below(own_dir)
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [decisions]))
    assert own_labels(labels) == {PHOTO_NAMES[0]: 0, PHOTO_NAMES[1]: 1, PHOTO_NAMES[2]: 1, PHOTO_NAMES[3]: 0, PHOTO_NAMES[4]: 0}
    summary = labels_summary(labels, metadata_frame([7.0]), 6.0)["own_decisions"]
    assert summary == {"files": 1, "rows": 4, "photos": 4, "repeated": 0, "conflicts": 0, "unmatched": 0, "applied": 4, "changed": 3}
    assert digests_below(own_dir) == before
    # The person overruled the rating: it no longer scores the photo (its target follows the decision, see below).
    assert pd.isna(labels.table.set_index("path").loc[(own_dir / "rated" / PHOTO_NAMES[4]).as_posix(), "score"])


def test_the_latest_decision_wins_across_files_and_rows_and_conflicts_are_reported(own_dir):
    first = write_decisions(own_dir / "decisions" / "1-september.csv", [
        ("a.jpg", original(PHOTO_NAMES[0]), "trash"),
        ("b.jpg", original(PHOTO_NAMES[3]), "keep"),
        ("b.jpg", original(PHOTO_NAMES[3]), "keep"),  # the same decision twice: a repeat, no conflict
    ])
    second = write_decisions(own_dir / "decisions" / "2-october.csv", [
        ("a.jpg", original(PHOTO_NAMES[0]), "keep"),  # changed mind: keep after all
        ("c.jpg", original(PHOTO_NAMES[2]), "keep"),
        ("c.jpg", original(PHOTO_NAMES[2]), "trash"),  # and within a file, the later row
    ])
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [first, second]))
    assert own_labels(labels)[PHOTO_NAMES[0]] == 1
    assert own_labels(labels)[PHOTO_NAMES[2]] == 0
    assert own_labels(labels)[PHOTO_NAMES[3]] == 1
    summary = labels_summary(labels, metadata_frame([7.0]), 6.0)["own_decisions"]
    assert (summary["rows"], summary["photos"], summary["repeated"], summary["conflicts"], summary["changed"]) == (6, 3, 3, 2, 1)
    conflicts = [note for note in labels.decisions.notes if "the latest counts" in note]
    assert len(conflicts) == 2
    assert f"trash at {first}:2, then keep at {second}:2" in conflicts[0]
    # Listing the files the other way round reverses the outcome for the photo decided in both.
    reversed_order = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [second, first]))
    assert own_labels(reversed_order)[PHOTO_NAMES[0]] == 0


def test_decisions_for_unknown_photos_are_counted_and_ignored(own_dir):
    stranger = LIVEC_IMAGES / sorted(p.name for p in LIVEC_IMAGES.glob("*.jpg"))[300]
    decisions = write_decisions(own_dir / "decisions" / "mine.csv", [
        ("/elsewhere/stranger.jpg", sha256_of(stranger), "keep"),
        ("x.jpg", original(PHOTO_NAMES[1]), "trash"),
    ])
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [decisions]))
    assert stranger.name not in own_labels(labels)
    assert own_labels(labels)[PHOTO_NAMES[1]] == 0
    summary = labels_summary(labels, metadata_frame([7.0]), 6.0)["own_decisions"]
    assert (summary["unmatched"], summary["applied"]) == (1, 1)
    assert any("/elsewhere/stranger.jpg" in note and "ignored" in note for note in labels.decisions.notes)


def test_a_decision_settles_a_photo_sorted_into_both_keep_and_trash(own_dir):
    shutil.copyfile(own_dir / "keep" / PHOTO_NAMES[0], own_dir / "trash" / "copy.jpg")
    undecided = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, []))
    assert PHOTO_NAMES[0] not in own_labels(undecided)  # contradictory folders: left out
    decisions = write_decisions(own_dir / "decisions" / "mine.csv", [("p.jpg", original(PHOTO_NAMES[0]), "trash")])
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [decisions]))
    copies = {name: label for name, label in own_labels(labels).items() if name in (PHOTO_NAMES[0], "copy.jpg")}
    assert list(copies.values()) == [0]  # one row for the photo, labelled as decided


def test_photos_waiting_in_own_dir_become_labels_only_once_decided(own_dir):
    waiting = copy_photos(sorted(p.name for p in LIVEC_IMAGES.glob("*.jpg"))[300:303], own_dir / "review" / "holiday")
    decisions = write_decisions(own_dir / "decisions" / "mine.csv", [
        ("IMG_1.jpg", sha256_of(waiting[0]), "keep"),
        ("IMG_2.jpg", sha256_of(waiting[1]), "trash"),
        ("IMG_3.jpg", original(PHOTO_NAMES[4]), "keep"),  # the rated photo (kept inside own_dir too): as rated
    ])
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [decisions]))
    assert {name: label for name, label in own_labels(labels).items() if name not in PHOTO_NAMES} == {waiting[0].name: 1, waiting[1].name: 0}
    assert own_labels(labels)[PHOTO_NAMES[4]] == 1
    summary = labels_summary(labels, metadata_frame([7.0]), 6.0)
    assert (summary["own_decisions"]["applied"], summary["own_decisions"]["changed"]) == (3, 0)
    assert summary["duplicates"]["rows_dropped"] == 0
    assert len(labels.table[labels.table["source"] == "own"]) == 7
    # Without decisions, photos outside keep/ and trash/ are not labels at all.
    assert len(own_labels(build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [])))) == 5


def test_a_decisions_file_outside_own_dir_is_refused(own_dir, tmp_path):
    outside = write_decisions(tmp_path / "mine.csv", [("a.jpg", original(PHOTO_NAMES[0]), "trash")])
    with pytest.raises(KeeptrashError, match=r"mine.csv: labels.own_decisions files must be inside labels.own_dir"):
        build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [outside]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,decision\na.jpg,keep\n", "needs columns path, sha256 and decision, missing sha256"),
        ("path,sha256,decision\na.jpg,1234,keep\n", ":2: sha256 must be 64 hexadecimal digits, got '1234'"),
        (f"path,sha256,decision\na.jpg,{'a' * 64},keep\n\nb.jpg,{'b' * 64},maybe\n", ":4: decision must be keep or trash, got 'maybe'"),
        ("", "empty; a decisions file needs a header line"),
        (f"path,sha256,decision\na.jpg,{'a' * 64},keep,extra\n", "not a readable CSV"),
        (f"path,sha256,decision\na.jpg,{'a' * 64},keep\nb.jpg,{'b' * 64},keep,extra\n", "not a readable CSV"),
        ("path,sha256,decision\na.jpg\n", ":2: sha256 must be 64 hexadecimal digits, got ''"),
    ],
)
def test_a_bad_decisions_file_is_named_with_its_line(own_dir, text, message):
    path = own_dir / "decisions" / "mine.csv"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KeeptrashError) as error:
        build_labels(metadata_frame([7.0, 4.0]), params_for(own_dir, [path]))
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def test_own_decisions_param_must_be_a_list(tmp_path):
    import yaml

    from conftest import PARAMS_YAML
    from keeptrash.params import parse_params

    raw = yaml.safe_load(PARAMS_YAML.read_text())
    assert parse_params(raw).labels.own_decisions == ()
    raw["labels"]["own_decisions"] = "data/own/decisions/mine.csv"
    with pytest.raises(KeeptrashError, match=r"labels.own_decisions must be a list of strings, got 'data/own/decisions/mine.csv'"):
        parse_params(raw)



# --- a decision decides the training target, not only the label ----------------------------------------------------

RATINGS = (95, 85, 75, 65, 45, 35, 25, 15)  # threshold 50: four keeps, four trash


@pytest.fixture
def rated_dir(tmp_path) -> Path:
    """own/rated holds 8 demo photos rated RATINGS (the first rated 95); own/keep and own/trash are empty."""
    folder = tmp_path / "own"
    (folder / "keep").mkdir(parents=True)
    (folder / "trash").mkdir()
    names = sorted(path.name for path in LIVEC_IMAGES.glob("*.jpg"))[:len(RATINGS)]
    copy_photos(names, folder / "rated")
    pd.DataFrame({"path": names, "score": RATINGS}).to_csv(folder / "rated" / "ratings.csv", index=False)
    return folder


def own_targets(labels, scale: str) -> pd.Series:
    """The score target of each own photo (by its rating's position in RATINGS), as the ridge score and the regression
    see it: all own photos together, as in one split."""
    own = labels.table[labels.table["source"] == "own"].reset_index(drop=True)
    names = sorted(own["path"].map(lambda path: Path(path).name))
    position = own["path"].map(lambda path: names.index(Path(path).name))
    return pd.Series(score_target(own, scale), index=position).sort_index()


@pytest.mark.parametrize("scale", ["zscore", "rank"])
def test_a_photo_decided_against_its_rating_trains_inside_its_decided_class(rated_dir, scale):
    photos = sorted((rated_dir / "rated").glob("*.jpg"))
    decisions = write_decisions(rated_dir / "decisions" / "mine.csv", [
        ("best.jpg", sha256_of(photos[0]), "trash"),  # rated 95, the best: the person trashes it
        ("worst.jpg", sha256_of(photos[-1]), "keep"),  # rated 15, the worst: the person keeps it
    ])
    labels = build_labels(metadata_frame([7.0, 4.0]), params_for(rated_dir, [decisions]))
    assert labels.decisions.summary()["changed"] == 2
    targets = own_targets(labels, scale)
    rated_keeps, rated_trash = targets[1:4], targets[4:7]
    assert targets[0] < rated_keeps.min() and targets[7] > rated_trash.max()
    if scale == "zscore":  # the mean target of the class in its source, whatever the overruled rating was
        assert targets[0] == pytest.approx(rated_trash.mean()) and targets[7] == pytest.approx(rated_keeps.mean())
    else:  # the class's end, as a photo sorted by hand into keep/ or trash/
        assert (targets[0], targets[7]) == (0.0, 1.0)


@pytest.mark.parametrize("scale", ["zscore", "rank"])
def test_decisions_that_confirm_the_ratings_leave_every_target_as_it_was(rated_dir, scale):
    photos = sorted((rated_dir / "rated").glob("*.jpg"))
    decisions = write_decisions(rated_dir / "decisions" / "mine.csv", [
        (photo.name, sha256_of(photo), "keep" if rating >= 50 else "trash") for photo, rating in zip(photos, RATINGS)
    ])
    undecided = build_labels(metadata_frame([7.0, 4.0]), params_for(rated_dir, []))
    confirmed = build_labels(metadata_frame([7.0, 4.0]), params_for(rated_dir, [decisions]))
    assert (confirmed.decisions.summary()["applied"], confirmed.decisions.summary()["changed"]) == (len(RATINGS), 0)
    pd.testing.assert_frame_equal(confirmed.table, undecided.table)
    pd.testing.assert_series_equal(own_targets(confirmed, scale), own_targets(undecided, scale))


def test_decide_sets_the_label_and_clears_only_the_ratings_it_overrules():
    table = pd.DataFrame(
        {"source": ["own", "own", "own", "own", "ava"], "score": [90.0, 20.0, np.nan, 70.0, 7.5], "label": np.array([1, 0, 1, 1, 1], dtype="int8")},
        index=[10, 11, 12, 13, 14],
    )
    decided = pd.Series({10: TRASH, 11: TRASH, 12: TRASH, 14: TRASH})  # 13 undecided
    result = decide(table, decided)
    assert result["label"].tolist() == [0, 0, 0, 1, 0] and result["label"].dtype == "int8"
    # 10 and 14 overruled (rated above their threshold): unrated now; 11 confirmed: its rating stays.
    assert result["score"].tolist()[1] == 20.0 and result["score"].tolist()[3] == 70.0
    assert result["score"].isna().tolist() == [True, False, True, False, True]
    assert table["score"].tolist()[0] == 90.0  # the caller's table is left alone
    pd.testing.assert_frame_equal(decide(table, pd.Series(dtype="int64")), table)  # no decisions: nothing changes
