"""Read params.yaml into typed, validated settings.

Every stage loads and checks the whole file before it does any work, so a bad value fails the
first stage that runs, with one line naming the param, instead of part-way through a pipeline.
"""

import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keeptrash.errors import KeeptrashError

PARAMS_FILE = Path("params.yaml")
# CatBoost's symmetric trees support depths 1..16.
CATBOOST_MAX_DEPTH = 16
CLASS_WEIGHTS = {"none": None, "balanced": "Balanced", "sqrt_balanced": "SqrtBalanced"}
BOOTSTRAP_TYPES = ("MVS", "Bernoulli", "Bayesian", "No")
# Which features the classifier sees (keeptrash.model_inputs): the CNN embedding and/or the image statistics.
FEATURE_SETS = ("all", "cnn", "stats")
# What CatBoost learns (keeptrash.training): keep/trash labels, or the within-source score rank with the
# keep probability from a logistic calibration fitted out-of-fold on the training split.
OBJECTIVES = ("classify", "regress")
FEATURE_ENGINES = ("local", "ray")
# params.yaml holds about a hundred values; YAML aliases may repeat a block, but a document that expands
# to more than this (an alias bomb: aliases of aliases, multiplying at each level) is refused before it is built.
MAX_PARAMS_VALUES = 100_000
# A bad value is quoted in the error this short: enough to recognise it, never the whole of a huge one.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 2, 4, 4, 60, 60, 40


@dataclass(frozen=True)
class MetadataParams:
    votes_files: tuple[str, ...]
    tags_file: str
    challenges_file: str
    official_train_list: str
    official_test_list: str


@dataclass(frozen=True)
class LabelsParams:
    threshold: float
    margin: float
    max_ava: int
    ava_pool: str
    seed: int
    val_fraction: float
    test_fraction: float
    own_dir: str
    rated_own_csv: str
    rated_own_threshold: float
    # Ratings-CSV paths that leave the CSV's folder (.., absolute) are refused unless this is set.
    allow_paths_outside_csv: bool = False


@dataclass(frozen=True)
class DownloadParams:
    source: str
    folder: str
    archives_dir: str
    archive_urls: tuple[str, ...]
    mega_url: str
    torrent: str
    torrent_peers: tuple[str, ...]
    torrent_stall_seconds: float
    images_dir: str
    url_template: str
    concurrency: int
    retries: int
    requests_per_second: float
    max_image_pixels: int


@dataclass(frozen=True)
class FeaturesParams:
    backbone: str
    pooling: str  # keeptrash.features.backbones.POOLINGS
    resolution: int  # the whole photo's long side, in pixels, as the backbone sees it
    batch_size: int
    device: str
    # None: the extraction chooses (keeptrash.features.extract.decoding_workers).
    workers: int | None = None
    engine: str = "local"
    ray_address: str = ""
    ray_actors: int = 1
    ray_cpus_per_actor: float = 2.0


@dataclass(frozen=True)
class TrainParams:
    iterations: int
    depth: int
    learning_rate: float
    l2_leaf_reg: float
    rsm: float
    bootstrap_type: str
    subsample: float
    feature_set: str
    pca_components: int
    # A ridge regression's out-of-fold score from the whole embedding and statistics as one more input (keeptrash.model_inputs).
    ridge_score: bool
    # Keep probability never rises with the fault statistics (keeptrash.training.FAULT_STATISTICS).
    monotone_faults: bool
    early_stopping_rounds: int
    class_weights: str
    # None: the train stage picks the threshold that maximises balanced accuracy on the validation split.
    decision_threshold: float | None
    seed: int
    # Repeated stratified k-fold cross-validation on train+val (keeptrash.cross_validation); cv_folds 0 = off.
    cv_folds: int = 5
    cv_repeats: int = 3
    # classify (Logloss on keep/trash) or regress (RMSE on the score rank, then calibrated); OBJECTIVES.
    objective: str = "classify"


@dataclass(frozen=True)
class AnalyzeParams:
    degradation_photos: int
    histogram_bins: int
    calibration_bins: int
    pairs_csv: str


@dataclass(frozen=True)
class Params:
    metadata: MetadataParams
    labels: LabelsParams
    download: DownloadParams
    features: FeaturesParams
    train: TrainParams
    analyze: AnalyzeParams


class _Section:
    """Typed access to one section of params.yaml that names `section.key` in every error."""

    def __init__(self, raw: dict[str, Any], section: str, source: Path):
        value = raw.get(section)
        if not isinstance(value, dict):
            raise KeeptrashError(f"{source}: section '{section}' is missing or not a mapping; see params.yaml in the repo")
        self.values, self.section, self.source = value, section, source

    def _fail(self, key: str, expected: str) -> KeeptrashError:
        got = _SHOWN.repr(self.values.get(key, "<missing>"))
        return KeeptrashError(f"{self.source}: {self.section}.{key} must be {expected}, got {got}")

    def _get(self, key: str, expected: str) -> Any:
        if key not in self.values:
            raise self._fail(key, expected)
        return self.values[key]

    def number(self, key: str, low: float, high: float) -> float:
        value = self._get(key, f"a number from {low} to {high}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise self._fail(key, f"a number from {low} to {high}")
        return float(value)

    def integer(self, key: str, low: int, high: int | None = None) -> int:
        expected = f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"
        value = self._get(key, expected)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise self._fail(key, expected)
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key, "true or false")
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def number_or_auto(self, key: str, low: float, high: float) -> float | None:
        return self._or_auto(key, self.number, low, high, "a number")

    def integer_or_auto(self, key: str, low: int, high: int) -> int | None:
        return self._or_auto(key, self.integer, low, high, "a whole number")

    def _or_auto(self, key: str, parse: Callable[[str, Any, Any], Any], low: Any, high: Any, kind: str) -> Any:
        """parse(key, low, high), or the word auto (returned as None) for a value the stage chooses itself."""
        expected = f"auto or {kind} from {low} to {high}"
        if self._get(key, expected) == "auto":
            return None
        try:
            return parse(key, low, high)
        except KeeptrashError:
            raise self._fail(key, expected) from None

    def boolean(self, key: str) -> bool:
        value = self._get(key, "true or false")
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def text(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        expected = f"one of {', '.join(choices)}" if choices else "a string"
        value = self._get(key, expected)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise self._fail(key, expected)
        return value

    def text_list(self, key: str, may_be_empty: bool = False) -> tuple[str, ...]:
        expected = "a list of strings" if may_be_empty else "a non-empty list of paths"
        value = self._get(key, expected)
        if not isinstance(value, list) or not (value or may_be_empty) or not all(isinstance(item, str) for item in value):
            raise self._fail(key, expected)
        return tuple(value)


def _cv_folds(train: _Section) -> int:
    folds = train.integer("cv_folds", 0, 50)
    if folds == 1:
        raise train._fail("cv_folds", "0 (no cross-validation) or a whole number from 2 to 50")
    return folds


def _objective(train: _Section) -> str:
    objective = train.text("objective", OBJECTIVES)
    if objective == "regress" and train.text("class_weights", tuple(CLASS_WEIGHTS)) != "none":
        raise train._fail("objective", "classify when train.class_weights weighs classes (a regression has none); set class_weights to none")
    return objective


def parse_params(raw: Any, source: Path = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise KeeptrashError(f"{source}: expected a mapping of sections (metadata, labels, ...); see params.yaml in the repo")
    metadata = _Section(raw, "metadata", source)
    labels = _Section(raw, "labels", source)
    download = _Section(raw, "download", source)
    features = _Section(raw, "features", source)
    train = _Section(raw, "train", source)
    analyze = _Section(raw, "analyze", source)
    val_fraction = labels.number("val_fraction", 0.0, 0.9)
    test_fraction = labels.number("test_fraction", 0.0, 0.9)
    if val_fraction + test_fraction >= 1.0:
        raise KeeptrashError(
            f"{source}: labels.val_fraction + labels.test_fraction must be below 1 to leave a training split, "
            f"got {val_fraction} + {test_fraction}"
        )
    from keeptrash.features.backbones import BACKBONES, POOLINGS  # heavy imports stay out of the params module
    from keeptrash.sources import SOURCE_NAMES

    return Params(
        metadata=MetadataParams(
            votes_files=metadata.text_list("votes_files"),
            tags_file=metadata.text("tags_file"),
            challenges_file=metadata.text("challenges_file"),
            official_train_list=metadata.text("official_train_list"),
            official_test_list=metadata.text("official_test_list"),
        ),
        labels=LabelsParams(
            threshold=labels.number("threshold", 1.0, 10.0),
            margin=labels.number("margin", 0.0, 4.5),
            max_ava=labels.integer("max_ava", 0),
            ava_pool=labels.text("ava_pool"),
            seed=labels.integer("seed", 0),
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            own_dir=labels.text("own_dir"),
            rated_own_csv=labels.text("rated_own_csv"),
            rated_own_threshold=labels.number("rated_own_threshold", 0.0, 100.0),
            allow_paths_outside_csv=labels.flag("allow_paths_outside_csv"),
        ),
        download=DownloadParams(
            source=download.text("source", SOURCE_NAMES),
            folder=download.text("folder"),
            archives_dir=download.text("archives_dir"),
            archive_urls=download.text_list("archive_urls", may_be_empty=True),
            mega_url=download.text("mega_url"),
            torrent=download.text("torrent"),
            torrent_peers=download.text_list("torrent_peers", may_be_empty=True),
            torrent_stall_seconds=download.number("torrent_stall_seconds", 1.0, 86400.0),
            images_dir=download.text("images_dir"),
            url_template=download.text("url_template"),
            concurrency=download.integer("concurrency", 1, 64),
            retries=download.integer("retries", 0, 100),
            requests_per_second=download.number("requests_per_second", 0.01, 1000.0),
            max_image_pixels=download.integer("max_image_pixels", 1),
        ),
        features=FeaturesParams(
            backbone=features.text("backbone", tuple(BACKBONES)),
            pooling=features.text("pooling", POOLINGS),
            resolution=features.integer("resolution", 32, 4096),
            batch_size=features.integer("batch_size", 1, 4096),
            device=features.text("device", ("auto", "cpu", "cuda")),
            workers=features.integer_or_auto("workers", 0, 64),
            engine=features.text("engine", FEATURE_ENGINES),
            ray_address=features.text("ray_address"),
            ray_actors=features.integer("ray_actors", 1, 10_000),
            ray_cpus_per_actor=features.number("ray_cpus_per_actor", 0.1, 1024.0),
        ),
        train=TrainParams(
            iterations=train.integer("iterations", 1),
            depth=train.integer("depth", 1, CATBOOST_MAX_DEPTH),
            learning_rate=train.number("learning_rate", 1e-6, 1.0),
            l2_leaf_reg=train.number("l2_leaf_reg", 0.0, 1e6),
            rsm=train.number("rsm", 0.01, 1.0),
            bootstrap_type=train.text("bootstrap_type", BOOTSTRAP_TYPES),
            subsample=train.number("subsample", 0.01, 1.0),
            feature_set=train.text("feature_set", FEATURE_SETS),
            pca_components=train.integer("pca_components", 0, 4096),
            ridge_score=train.boolean("ridge_score"),
            monotone_faults=train.boolean("monotone_faults"),
            early_stopping_rounds=train.integer("early_stopping_rounds", 0),
            class_weights=train.text("class_weights", tuple(CLASS_WEIGHTS)),
            decision_threshold=train.number_or_auto("decision_threshold", 0.0, 1.0),
            seed=train.integer("seed", 0),
            cv_folds=_cv_folds(train),
            cv_repeats=train.integer("cv_repeats", 1, 100),
            objective=_objective(train),
        ),
        analyze=AnalyzeParams(
            degradation_photos=analyze.integer("degradation_photos", 0),
            histogram_bins=analyze.integer("histogram_bins", 2, 200),
            calibration_bins=analyze.integer("calibration_bins", 2, 100),
            pairs_csv=analyze.text("pairs_csv"),
        ),
    )


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values the node becomes once every alias is expanded; each shared node is counted once per use."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ValueError("an alias refers to the block that contains it")
    open_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    else:
        children = []
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def _safe_yaml(text: str, path: Path) -> Any:
    """yaml.safe_load, but a document whose aliases expand beyond MAX_PARAMS_VALUES is refused before it is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set())
        except ValueError as error:
            raise KeeptrashError(f"{path}: {error}; write the values out") from None
        if size > MAX_PARAMS_VALUES:
            raise KeeptrashError(
                f"{path}: its aliases expand to {size} values, more than a params file needs ({MAX_PARAMS_VALUES}); "
                "remove the aliases (&name / *name) and write the values out"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_params(path: Path = PARAMS_FILE) -> Params:
    try:
        raw = _safe_yaml(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        raise KeeptrashError(f"{path}: not found; run the stage from the repository root") from None
    except UnicodeDecodeError as error:
        raise KeeptrashError(f"{path}: not UTF-8 text (byte {error.start}); re-save it as UTF-8") from None
    except OSError as error:
        raise KeeptrashError(f"{path}: cannot be read ({error.strerror}); it must be the params file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise KeeptrashError(f"{path}:{where} is not valid YAML; fix the syntax") from None
    except RecursionError:
        raise KeeptrashError(f"{path}: nested too deeply to be a params file; fix its structure") from None
    return parse_params(raw, path)
