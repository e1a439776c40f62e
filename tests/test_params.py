"""params.yaml validation: a bad value fails with one line naming the param."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PARAMS_YAML
from keeptrash.errors import KeeptrashError
from keeptrash.params import SHIPPED_RUNTIME, SOURCE_NAMES, FeaturesParams, load_params, parse_params, replaced_settings, section_settings


@pytest.fixture(scope="module")
def raw_params() -> dict:
    return yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))


def changed(raw: dict, **values) -> dict:
    """A deep copy of raw with `section__key=value` changes applied."""
    result = copy.deepcopy(raw)
    for name, value in values.items():
        section, key = name.split("__")
        result[section][key] = value
    return result


def test_real_params_yaml_parses(raw_params):
    params = parse_params(raw_params)
    assert params.metadata.votes_files == tuple(raw_params["metadata"]["votes_files"])
    assert params.labels.threshold == 6.0
    assert params.labels.max_ava == raw_params["labels"]["max_ava"]
    assert params.labels.val_fraction + params.labels.test_fraction < 1
    assert params.download.source == raw_params["download"]["source"]
    assert params.features.backbone == raw_params["features"]["backbone"]
    assert params.train.depth == raw_params["train"]["depth"]
    assert params.train.learning_rate == raw_params["train"]["learning_rate"]


def test_cull_outside_a_repository_runs_the_runtime_params_yaml_ships(raw_params):
    assert raw_params["features"]["runtime"] == SHIPPED_RUNTIME


def test_load_params_reads_the_file(raw_params):
    assert load_params(PARAMS_YAML) == parse_params(raw_params)


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"labels__threshold": 11}, "labels.threshold"),
        ({"labels__threshold": 0.5}, "labels.threshold"),
        ({"labels__threshold": "6"}, "labels.threshold"),
        ({"labels__max_ava": -1}, "labels.max_ava"),
        ({"labels__max_ava": 10.5}, "labels.max_ava"),
        ({"labels__max_ava": True}, "labels.max_ava"),
        ({"train__depth": 0}, "train.depth"),
        ({"train__depth": 17}, "train.depth"),
        ({"train__depth": "six"}, "train.depth"),
        ({"train__learning_rate": 0}, "train.learning_rate"),
        ({"features__backbone": "vgg"}, "features.backbone"),
        ({"download__source": "ftp"}, "download.source"),
        ({"labels__margin": -0.1}, "labels.margin"),
        ({"features__device": "tpu"}, "features.device"),
        ({"features__pooling": "max"}, "features.pooling"),
        ({"features__runtime": "tensorrt"}, "features.runtime"),
        ({"features__runtime": None}, "features.runtime"),
        ({"features__resolution": 16}, "features.resolution"),
        ({"features__resolution": "500px"}, "features.resolution"),
        ({"train__ridge_score": "yes"}, "train.ridge_score"),
        ({"train__objective": "rank"}, "train.objective"),
        ({"train__objective": None}, "train.objective"),
        ({"train__target_scale": "percentile"}, "train.target_scale"),
        ({"train__objective": "regress", "train__class_weights": "balanced"}, "train.objective"),
        ({"train__monotone_faults": 1}, "train.monotone_faults"),
        ({"train__noise_penalty": -0.5}, "train.noise_penalty"),
        ({"train__objective": "classify", "train__class_weights": "none", "train__noise_penalty": 1.0}, "train.noise_penalty"),
        ({"features__noise_copies": -1}, "features.noise_copies"),
        ({"train__final_map_weight": 0}, "train.final_map_weight"),
        ({"train__final_map_weight": "best"}, "train.final_map_weight"),
        ({"train__cv_folds": 1}, "train.cv_folds"),
        ({"train__cv_folds": -2}, "train.cv_folds"),
        ({"train__cv_repeats": 0}, "train.cv_repeats"),
        ({"train__cv_max_rows": -1}, "train.cv_max_rows"),
        ({"train__cv_max_rows": "all"}, "train.cv_max_rows"),
        ({"train__class_weights": "Balanced"}, "train.class_weights"),
        ({"train__decision_threshold": 1.5}, "train.decision_threshold"),
        ({"train__decision_threshold": "automatic"}, "train.decision_threshold"),
        ({"train__decision_threshold": True}, "train.decision_threshold"),
        ({"metadata__votes_files": []}, "metadata.votes_files"),
        ({"labels__val_fraction": 0.6, "labels__test_fraction": 0.5}, "labels.val_fraction + labels.test_fraction"),
        ({"labels__val_fraction": 0.5, "labels__test_fraction": 0.5}, "labels.val_fraction + labels.test_fraction"),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else ",".join(f"{k}={v!r}" for k, v in value.items()),
)
def test_bad_value_names_the_param(raw_params, changes, name):
    with pytest.raises(KeeptrashError) as error:
        parse_params(changed(raw_params, **changes), Path("my/params.yaml"))
    message = str(error.value)
    assert message.startswith("my/params.yaml: ")
    assert name in message
    assert "\n" not in message


def test_bad_value_message_says_what_was_given(raw_params):
    with pytest.raises(KeeptrashError) as error:
        parse_params(changed(raw_params, train__depth="six"))
    assert str(error.value) == "params.yaml: train.depth must be a whole number from 1 to 16, got 'six'"


@pytest.mark.parametrize("section", ["metadata", "labels", "download", "features", "train", "analyze"])
def test_missing_section_is_named(raw_params, section):
    raw = copy.deepcopy(raw_params)
    del raw[section]
    with pytest.raises(KeeptrashError, match=f"section '{section}' is missing"):
        parse_params(raw)


def test_missing_key_is_named(raw_params):
    raw = copy.deepcopy(raw_params)
    del raw["train"]["depth"]
    with pytest.raises(KeeptrashError, match="train.depth must be .*, got '<missing>'"):
        parse_params(raw)


def test_section_that_is_not_a_mapping_and_empty_file(raw_params):
    with pytest.raises(KeeptrashError, match="section 'train' is missing or not a mapping"):
        parse_params({**raw_params, "train": [1, 2]})
    with pytest.raises(KeeptrashError, match="expected a mapping of sections"):
        parse_params(None)


def test_decision_threshold_is_auto_or_a_probability(raw_params):
    assert parse_params(raw_params).train.decision_threshold is None  # the shipped params.yaml says auto
    assert parse_params(changed(raw_params, train__decision_threshold=0.35)).train.decision_threshold == 0.35
    assert parse_params(changed(raw_params, train__decision_threshold=0)).train.decision_threshold == 0.0


def test_boundaries_are_accepted(raw_params):
    params = parse_params(
        changed(raw_params, labels__threshold=10, train__depth=16, labels__max_ava=0, labels__val_fraction=0.0, labels__test_fraction=0.9)
    )
    assert (params.labels.threshold, params.train.depth, params.labels.max_ava) == (10.0, 16, 0)
    assert parse_params(changed(raw_params, labels__threshold=1, train__depth=1)).train.depth == 1


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("labels:\n  threshold: 6\n  margin: [0.0\n", encoding="utf-8")
    with pytest.raises(KeeptrashError) as error:
        load_params(path)
    assert str(path) in str(error.value)
    assert "not valid YAML" in str(error.value)


def run_metadata_stage(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keeptrash.stages.metadata"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_stage_with_bad_params_exits_2_with_one_line(tmp_path):
    text = PARAMS_YAML.read_text(encoding="utf-8")
    bad = text.replace("  threshold: 6.0 ", "  threshold: 11 ", 1)
    assert bad != text
    (tmp_path / "params.yaml").write_text(bad, encoding="utf-8")
    result = run_metadata_stage(tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "labels.threshold" in lines[0]
    assert lines[0].startswith("keeptrash: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    # It failed before doing any work: nothing was written next to params.yaml.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"]


def test_stage_without_params_file_exits_2_with_one_line(tmp_path):
    result = run_metadata_stage(tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["keeptrash: error: params.yaml: not found; run the stage from the repository root"]


# --- issue 12: values too big to show, and YAML alias bombs ---------------------------------------------------


def alias_bomb(levels: int) -> str:
    """Each level lists the previous one nine times: 9**levels values once the aliases are expanded."""
    lines = ['a0: &a0 "lol"']
    lines += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]" for level in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    text = PARAMS_YAML.read_text(encoding="utf-8")
    bombed = alias_bomb(9) + text.replace("\n  depth: 2\n", "\n  depth: *a9\n", 1)
    assert "*a9" in bombed
    path = tmp_path / "params.yaml"
    path.write_text(bombed, encoding="utf-8")
    with pytest.raises(KeeptrashError) as error:
        load_params(path)
    message = str(error.value)
    assert str(path) in message and "aliases" in message and len(message) < 300, message


def test_a_self_referencing_alias_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: &loop\n  depth: *loop\n", encoding="utf-8")
    with pytest.raises(KeeptrashError, match="alias refers to the block that contains it"):
        load_params(path)


def test_a_huge_bad_value_is_shown_cut_short(tmp_path, raw_params):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_YAML.read_text(encoding="utf-8").replace("\n  depth: 2\n", f"\n  depth: {list(range(50_000))}\n", 1), encoding="utf-8")
    with pytest.raises(KeeptrashError) as error:
        load_params(path)
    message = str(error.value)
    assert "train.depth" in message and "[0, 1, 2, 3, ...]" in message and len(message) < 300, message
    with pytest.raises(KeeptrashError, match=r"got 'xxxxxxxx.*\.\.\..*'$"):
        parse_params(changed(raw_params, train__bootstrap_type="x" * 10_000))


def test_yaml_aliases_within_the_limit_still_work(tmp_path):
    path = tmp_path / "params.yaml"
    text = PARAMS_YAML.read_text(encoding="utf-8").replace("  seed: 42\n", "  seed: &seed 42\n", 1)
    path.write_text(text.replace("\n  seed: 42\n", "\n  seed: *seed\n", 1), encoding="utf-8")
    params = load_params(path)
    assert params.labels.seed == params.train.seed == 42


@pytest.mark.parametrize("value", ["yes please", 1, None])
def test_allow_paths_outside_csv_must_be_true_or_false(raw_params, value):
    with pytest.raises(KeeptrashError, match="labels.allow_paths_outside_csv must be true or false"):
        parse_params(changed(raw_params, labels__allow_paths_outside_csv=value))


@pytest.mark.parametrize(("changes", "message"), [
    ({"labels__own_xmp": "yes"}, "labels.own_xmp must be true or false"),
    ({"labels__own_xmp_keep_stars": 0}, "labels.own_xmp_keep_stars must be a whole number from 1 to 5"),
    ({"labels__own_xmp_keep_stars": 6}, "labels.own_xmp_keep_stars must be a whole number from 1 to 5"),
    ({"labels__own_xmp_keep_stars": 2.5}, "labels.own_xmp_keep_stars must be a whole number from 1 to 5"),
])
def test_the_xmp_params_are_checked_by_name(raw_params, changes, message):
    with pytest.raises(KeeptrashError, match=message):
        parse_params(changed(raw_params, **changes))


def test_a_params_file_nested_thousands_deep_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  depth: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(KeeptrashError, match="nested too deeply"):
        load_params(path)


def valid_source_settings() -> dict:
    """Values that satisfy every source's rules, so that only the change under test could fail."""
    return {
        "download__archives_dir": "data/archives", "download__mega_url": "https://mega.nz/folder/x", "download__archive_urls": [],
        "download__url_template": "https://mirror.example/ava/{id}.jpg", "download__torrent_peers": ["[::1]:6881"],
    }


# Each param-only rule of a download source: (source, the bad change, what the one-line error must say).
SOURCE_RULE_CASES = [
    ("archives", {"download__archives_dir": ""}, "download.archives_dir is empty; set it to the folder holding the AVA 7z archive"),
    ("mega", {"download__archives_dir": ""}, "download.archives_dir is empty; set it to the folder the MEGA volumes"),
    ("torrent", {"download__archives_dir": ""}, "download.archives_dir is empty; set it to the folder the torrent is downloaded into"),
    ("mega", {"download__mega_url": ""}, "download.mega_url is empty; set it to the public MEGA folder link"),
    ("http", {"download__url_template": "http://127.0.0.1:1/images.jpg"}, "download.url_template must contain {id}"),
    (
        "archives", {"download__archive_urls": ["http://127.0.0.1:1/AVA_dataset.7z.001", "http://127.0.0.1:1/index.html"]},
        "download.archive_urls: http://127.0.0.1:1/index.html does not end in a 7z volume name like AVA_dataset.7z.001",
    ),
    ("archives", {"download__archive_urls": ["http://127.0.0.1:1/a/.."]}, "does not end in a 7z volume name"),
    ("archives", {"download__archive_urls": ["http://127.0.0.1:1/"]}, "does not end in a 7z volume name"),
    ("torrent", {"download__torrent_peers": ["127.0.0.1:6881", "no-port"]}, "download.torrent_peers: 'no-port' is not host:port"),
    ("torrent", {"download__torrent_peers": ["127.0.0.1:http"]}, "download.torrent_peers: '127.0.0.1:http' is not host:port"),
]


@pytest.mark.parametrize("source, changes, expected", SOURCE_RULE_CASES, ids=lambda value: str(value)[:40])
def test_a_source_rule_fails_with_one_line_naming_the_param(raw_params, source, changes, expected):
    with pytest.raises(KeeptrashError) as error:
        parse_params(changed(raw_params, download__source=source, **{**valid_source_settings(), **changes}), Path("my/params.yaml"))
    message = str(error.value)
    assert message.startswith("my/params.yaml: download.") and expected in message and "\n" not in message


@pytest.mark.parametrize("source, changes, expected", SOURCE_RULE_CASES, ids=lambda value: str(value)[:40])
def test_a_source_rule_does_not_fire_for_the_other_sources(raw_params, source, changes, expected):
    rule_sources = {rule_source for rule_source, rule_changes, _ in SOURCE_RULE_CASES if rule_changes.keys() == changes.keys()}
    for other in set(SOURCE_NAMES) - rule_sources:
        params = parse_params(changed(raw_params, download__source=other, **{**valid_source_settings(), **changes}))
        assert params.download.source == other


def test_valid_source_settings_pass_every_source(raw_params):
    for source in SOURCE_NAMES:
        params = parse_params(changed(raw_params, download__source=source, **valid_source_settings()))
        assert params.download.source == source and params.download.torrent_peers == ("[::1]:6881",)


MODEL_FEATURES = {"backbone": "mobilenet_v2", "pooling": "last", "resolution": 224, "batch_size": 32, "device": "auto"}


def test_settings_built_outside_params_yaml_go_through_the_same_declarations():
    features = section_settings(FeaturesParams, MODEL_FEATURES, Path("models/model.cbm"))
    assert features == FeaturesParams(**MODEL_FEATURES)
    with pytest.raises(KeeptrashError) as error:
        section_settings(FeaturesParams, {**MODEL_FEATURES, "resolution": 16}, Path("models/model.cbm"))
    assert str(error.value) == "models/model.cbm: features.resolution must be a whole number from 32 to 4096, got 16"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"batch_size": 5000}, "keeptrash cull: features.batch_size must be a whole number from 1 to 4096, got 5000"),
        ({"batch_size": 0}, "keeptrash cull: features.batch_size must be a whole number from 1 to 4096, got 0"),
        ({"device": "tpu"}, "keeptrash cull: features.device must be one of auto, cpu, cuda, got 'tpu'"),
    ],
)
def test_changed_settings_are_checked_by_their_declarations(changes, expected):
    features = FeaturesParams(**MODEL_FEATURES)
    assert replaced_settings(features, {"batch_size": 8, "device": "cpu"}, "keeptrash cull").batch_size == 8
    with pytest.raises(KeeptrashError) as error:
        replaced_settings(features, changes, "keeptrash cull")
    assert str(error.value) == expected


# --- issue 26: a misspelt or repeated name in params.yaml -------------------------------------------------------


def line_of(text: str, line: str) -> int:
    return text.splitlines().index(line) + 1


SHIPPED_TEXT = PARAMS_YAML.read_text(encoding="utf-8")
DEPTH_LINE, GROUPING_LINE = line_of(SHIPPED_TEXT, "  depth: 2"), line_of(SHIPPED_TEXT, "grouping:")
TRAIN_KEYS = "iterations, depth, learning_rate, l2_leaf_reg, rsm, bootstrap_type, subsample, feature_set, pca_components, ridge_score, "
# Each: (text in the shipped params.yaml, what replaces it, the one line after `params.yaml: `).
MISSPELT_OR_REPEATED = [
    ("\n  depth: 2\n", "\n  depth: 2\n  dept: 4\n", "unknown key train.dept; did you mean train.depth?"),
    ("\n  learning_rate: 0.03\n", "\n  learnig_rate: 0.5\n", "unknown key train.learnig_rate; did you mean train.learning_rate?"),
    ("\ntrain:\n", "\ntrian:\n  depth: 4\ntrain:\n", "unknown section trian; did you mean train?"),
    ("\ntrain:\n", "\ntrain:\n  cats: 1\n", f"unknown key train.cats; known keys: {TRAIN_KEYS}"),
    ("\ntrain:\n", "\nyes: 1\ntrain:\n", "unknown section True; known sections: metadata, labels, download, features, train, analyze, grouping"),
    ("\n  depth: 2\n", "\n  depth: 2\n  depth: 4\n", f"train.depth is written twice (lines {DEPTH_LINE} and {DEPTH_LINE + 1}); keep one"),
    ("\ngrouping:\n", "\ngrouping: {}\ngrouping:\n", f"grouping is written twice (lines {GROUPING_LINE} and {GROUPING_LINE + 1}); keep one"),
    ("\n    - data/ava/AVA_partial.txt\n", "\n    - {a: 1, a: 2}\n", "metadata.votes_files.0.a is written twice (lines 7 and 7); keep one"),
]


def edited_params(folder: Path, shipped: str, edited: str) -> Path:
    assert SHIPPED_TEXT.count(shipped) == 1
    path = folder / "params.yaml"
    path.write_text(SHIPPED_TEXT.replace(shipped, edited), encoding="utf-8")
    return path


@pytest.mark.parametrize("shipped, edited, expected", MISSPELT_OR_REPEATED, ids=lambda value: str(value).strip()[:30])
def test_a_misspelt_or_repeated_name_fails_the_stage_in_one_line_naming_it(tmp_path, shipped, edited, expected):
    """Issue 26: PyYAML kept the last of a repeated key and the stages ignored unknown ones, running with the defaults."""
    edited_params(tmp_path, shipped, edited)
    result = run_metadata_stage(tmp_path)
    assert result.returncode == 2
    message = result.stderr.splitlines()
    assert len(message) == 1 and message[0].startswith(f"keeptrash: error: params.yaml: {expected}"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_merge_key_may_be_overridden_and_is_not_a_repeated_key(tmp_path):
    path = edited_params(tmp_path, "\ntrain:\n", "\ntrain:\n  <<: {depth: 5, seed: 7}\n")
    params = load_params(path)
    assert (params.train.depth, params.train.seed) == (2, 42)  # the keys written out win over the merged ones
    with pytest.raises(KeeptrashError, match=r"unknown key train\.dept; did you mean train\.depth\?"):
        load_params(edited_params(tmp_path, "\ntrain:\n", "\ntrain:\n  <<: {dept: 5}\n"))


def test_a_misspelt_key_set_through_dvc_exp_run_fails_the_train_stage_and_cull_in_one_line(pipeline_repo, tmp_path):
    """DVC refuses `-S train.dept=4` for a key params.yaml lacks; `+train.dept=4` adds it, and the stage must refuse it."""
    from dvc_repos import dvc

    expected = "keeptrash: error: params.yaml: unknown key train.dept; did you mean train.depth?"
    model = (pipeline_repo / "models/model.cbm").read_bytes()
    result = dvc(pipeline_repo, "exp", "run", "-S", "+train.dept=4", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert expected in output.splitlines() and "Traceback" not in output, output
    assert "Running stage 'train'" in output and "Running stage 'benchmark'" not in output

    # DVC removed the train stage's outputs before running it; the last finished ones come back from its cache.
    subprocess.run(["git", "checkout", "params.yaml"], cwd=pipeline_repo, check=True)
    dvc(pipeline_repo, "checkout", "-q")
    assert (pipeline_repo / "models/model.cbm").read_bytes() == model

    edited_params(pipeline_repo, "\n  depth: 2\n", "\n  depth: 2\n  dept: 4\n")
    cull = subprocess.run(
        [str(Path(sys.executable).parent / "keeptrash"), "cull", "data/sample/livec/images", "--out", str(tmp_path / "culled")],
        cwd=pipeline_repo, capture_output=True, text=True, timeout=300,
    )
    assert (cull.returncode, cull.stderr.splitlines()) == (2, [expected]), cull.stderr
    assert not (tmp_path / "culled").exists()
