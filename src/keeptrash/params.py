"""Read params.yaml into typed, validated settings.

Every stage loads and checks the whole file before it does any work, so a bad value fails the
first stage that runs, with one line naming the param, instead of part-way through a pipeline.
"""

import difflib
import re
import reprlib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from keeptrash.errors import KeeptrashError

PARAMS_FILE = Path("params.yaml")
# CatBoost's symmetric trees support depths 1..16.
CATBOOST_MAX_DEPTH = 16
CLASS_WEIGHTS = {"none": None, "balanced": "Balanced", "sqrt_balanced": "SqrtBalanced"}
BOOTSTRAP_TYPES = ("MVS", "Bernoulli", "Bayesian", "No")
# Which features the classifier sees (keeptrash.model.model_inputs): the CNN embedding and/or the image statistics.
FEATURE_SETS = ("all", "cnn", "stats")
# What CatBoost learns (keeptrash.model.training): keep/trash labels, or the within-source score (train.target_scale) with the
# keep probability from a logistic calibration fitted out-of-fold on the training split.
OBJECTIVES = ("classify", "regress")
# The score scale the ridge score and the regress objective learn (keeptrash.model.model_inputs.score_target).
TARGET_SCALES = ("rank", "zscore")
FEATURE_ENGINES = ("local", "ray")
# The choices of download.source, features.backbone and features.pooling are named here, where they are validated,
# so that reading params.yaml never imports the code behind them (libtorrent, torch); the registries that implement
# them (keeptrash.download.sources, keeptrash.features.backbones) are keyed by exactly these names (tests/test_stage_deps.py).
SOURCE_NAMES = ("sample", "folder", "archives", "http", "mega", "torrent")
BACKBONE_NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2", "resnet50", "efficientnet_lite0_1_2")
# How a backbone's feature maps become one vector per photo (keeptrash.features.backbones.PooledFeatures).
POOLINGS = ("last", "multilevel", "multilevel_std")
# What runs the backbone on a CPU (keeptrash.features.runtimes); all give the same features within a float16 step.
RUNTIME_NAMES = ("torch", "onnxruntime", "openvino")
# The runtime params.yaml ships, and what `keeptrash cull` runs outside a repository, with no params.yaml to read
# (tests/test_params.py checks the two agree).
SHIPPED_RUNTIME = "onnxruntime"
# params.yaml holds about a hundred values; YAML aliases may repeat a block, but a document that expands
# to more than this (an alias bomb: aliases of aliases, multiplying at each level) is refused before it is built.
MAX_PARAMS_VALUES = 100_000
# A bad value is quoted in the error this short: enough to recognise it, never the whole of a huge one.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 2, 4, 4, 60, 60, 40


# Each key is declared once, as a field of its section's dataclass: its type, and how params.yaml's value is checked
# (range or choices) by _Section, whose error names the key. A default is for code that builds the settings itself
# (tests, keeptrash cull); params.yaml must give every key. What each key does: the comment beside it in params.yaml.
def _declared(parse: Callable[["_Section", str], Any], **default: Any) -> Any:
    return field(metadata={"parse": parse}, **default)


def number(low: float, high: float, **default: Any) -> Any:
    return _declared(lambda section, key: section.number(key, low, high), **default)


def whole(low: int, high: int | None = None, **default: Any) -> Any:
    return _declared(lambda section, key: section.integer(key, low, high), **default)


def number_or_auto(low: float, high: float, **default: Any) -> Any:
    return _declared(lambda section, key: section.number_or_auto(key, low, high), **default)


def whole_or_auto(low: int, high: int, **default: Any) -> Any:
    return _declared(lambda section, key: section.integer_or_auto(key, low, high), **default)


def text(choices: tuple[str, ...] | None = None, **default: Any) -> Any:
    return _declared(lambda section, key: section.text(key, choices), **default)


def text_list(may_be_empty: bool = False, **default: Any) -> Any:
    return _declared(lambda section, key: section.text_list(key, may_be_empty), **default)


def flag(**default: Any) -> Any:
    return _declared(lambda section, key: section.flag(key), **default)


def _cv_folds(section: "_Section", key: str) -> int:
    folds = section.integer(key, 0, 50)
    if folds == 1:
        raise section._fail(key, "0 (no cross-validation) or a whole number from 2 to 50")
    return folds


@dataclass(frozen=True)
class MetadataParams:
    votes_files: tuple[str, ...] = text_list()
    tags_file: str = text()
    challenges_file: str = text()
    official_train_list: str = text()
    official_test_list: str = text()


@dataclass(frozen=True)
class LabelsParams:
    threshold: float = number(1.0, 10.0)
    margin: float = number(0.0, 4.5)
    max_ava: int = whole(0)
    ava_pool: str = text()
    seed: int = whole(0)
    val_fraction: float = number(0.0, 0.9)
    test_fraction: float = number(0.0, 0.9)
    own_dir: str = text()
    rated_own_csv: str = text()
    rated_own_threshold: float = number(0.0, 100.0)
    # Ratings-CSV paths that leave the CSV's folder (.., absolute) are refused unless this is set.
    allow_paths_outside_csv: bool = flag(default=False)
    # CSVs exported from the contact sheet (keeptrash.labels.own_decisions), inside own_dir; the latest decision per photo counts.
    own_decisions: tuple[str, ...] = text_list(may_be_empty=True, default=())
    # Past culls read from the XMP (sidecar or embedded) of photos under own_dir (keeptrash.labels.xmp_flags).
    own_xmp: bool = flag(default=False)
    own_xmp_keep_stars: int = whole(1, 5, default=2)


@dataclass(frozen=True)
class DownloadParams:
    source: str = text(SOURCE_NAMES)
    folder: str = text()
    archives_dir: str = text()
    archive_urls: tuple[str, ...] = text_list(may_be_empty=True)
    mega_url: str = text()
    torrent: str = text()
    torrent_peers: tuple[str, ...] = text_list(may_be_empty=True)
    torrent_stall_seconds: float = number(1.0, 86400.0)
    images_dir: str = text()
    url_template: str = text()
    concurrency: int = whole(1, 64)
    retries: int = whole(0, 100)
    requests_per_second: float = number(0.01, 1000.0)
    max_image_pixels: int = whole(1)


@dataclass(frozen=True)
class FeaturesParams:
    backbone: str = text(BACKBONE_NAMES)
    pooling: str = text(POOLINGS)
    resolution: int = whole(32, 4096)  # the whole photo's long side, in pixels, as the backbone sees it
    batch_size: int = whole(1, 4096)
    device: str = text(("auto", "cpu", "cuda"))
    # None: the extraction chooses (keeptrash.features.extract.decoding_workers).
    workers: int | None = whole_or_auto(0, 64, default=None)
    engine: str = text(FEATURE_ENGINES, default="local")
    ray_address: str = text(default="")
    ray_actors: int = whole(1, 10_000, default=1)
    ray_cpus_per_actor: float = number(0.1, 1024.0, default=2.0)
    runtime: str = text(RUNTIME_NAMES, default="torch")  # the one keeptrash.features.runtimes implements
    # Photos whose noisy copies are extracted too (keeptrash.features.noise_copies), for train.noise_penalty.
    noise_copies: int = whole(0, 100_000, default=0)
    # A RAW file's embedded preview is used when its long side reaches this, else its half-size decode (keeptrash.raw);
    # None: what resolution and the image statistics need.
    raw_preview_side: int | None = whole_or_auto(16, 16384, default=None)


@dataclass(frozen=True)
class TrainParams:
    iterations: int = whole(1)
    depth: int = whole(1, CATBOOST_MAX_DEPTH)
    learning_rate: float = number(1e-6, 1.0)
    l2_leaf_reg: float = number(0.0, 1e6)
    rsm: float = number(0.01, 1.0)
    bootstrap_type: str = text(BOOTSTRAP_TYPES)
    subsample: float = number(0.01, 1.0)
    feature_set: str = text(FEATURE_SETS)
    pca_components: int = whole(0, 4096)
    # A ridge regression's out-of-fold score from the whole embedding and statistics as one more input (keeptrash.model.model_inputs).
    ridge_score: bool = flag()
    # Keep probability never rises with the fault statistics (keeptrash.model.training.FAULT_STATISTICS).
    monotone_faults: bool = flag()
    early_stopping_rounds: int = whole(0)
    class_weights: str = text(tuple(CLASS_WEIGHTS))
    # None: the train stage picks the threshold that maximises balanced accuracy on the validation split.
    decision_threshold: float | None = number_or_auto(0.0, 1.0)
    seed: int = whole(0)
    # Repeated stratified k-fold cross-validation on train+val (keeptrash.model.cross_validation); cv_folds 0 = off.
    cv_folds: int = _declared(_cv_folds, default=5)
    cv_repeats: int = whole(1, 100, default=3)
    # Cross-validation on at most this many train+val rows, a stratified sample seeded by seed (0 = all): every fold
    # refits the ridge and CatBoost, so at AVA scale the folds, not the final model, would dominate the train stage.
    cv_max_rows: int = whole(0, default=20_000)
    # classify (Logloss on keep/trash) or regress (RMSE on the score on target_scale, then calibrated); OBJECTIVES.
    objective: str = text(OBJECTIVES, default="classify")
    # rank (percentile within the source) or zscore (standardised within the source); TARGET_SCALES.
    target_scale: str = text(TARGET_SCALES, default="rank")
    # How far below its photo's score target (in standard deviations of the source's scores) the strongest noisy copy
    # of a training photo (features.noise_copies) is put when CatBoost learns from the copies too; 0 = copies unused.
    noise_penalty: float = number(0.0, 10.0, default=0.0)
    # With multilevel pooling, the weight of the final feature map's columns against the blocks' in the ridge score;
    # None: chosen with the ridge strength by leave-one-out (keeptrash.model.model_inputs.FINAL_MAP_WEIGHTS).
    final_map_weight: float | None = number_or_auto(0.01, 1.0, default=None)


@dataclass(frozen=True)
class AnalyzeParams:
    degradation_photos: int = whole(0)
    histogram_bins: int = whole(2, 200)
    calibration_bins: int = whole(2, 100)
    pairs_csv: str = text()
    series_photos: int = whole(0, 10_000, default=24)


@dataclass(frozen=True)
class GroupingParams:
    """Series of near-identical shots (keeptrash.grouping). `keeptrash cull` uses these defaults, measured on series
    of real takes (docs/bursts.md); params.yaml's grouping section, which the labels stage reads, repeats them."""

    max_gap_seconds: float = number(0.0, 86400.0, default=10.0)  # a photo joins the series of the one shot before it at most this much later
    max_hash_distance: int = whole(0, 64, default=12)  # ... and when their 64-bit perceptual hashes differ in at most this many bits


@dataclass(frozen=True)
class XmpParams:
    """What `keeptrash cull --xmp` writes (keeptrash.cull.sidecars); params.yaml's xmp section, read when cull runs
    inside a repository, repeats these defaults."""

    two_stars_from: float = number(0.0, 1.0, default=0.6)  # a keep gets 2 stars from this keep probability, else 1
    three_stars_from: float = number(0.0, 1.0, default=0.75)
    four_stars_from: float = number(0.0, 1.0, default=0.85)
    five_stars_from: float = number(0.0, 1.0, default=0.95)
    uncertain_label: str = text(default="Yellow")  # xmp:Label of a photo whose keep probability is near the threshold
    uncertain_margin: float = number(0.0, 0.5, default=0.1)  # ... within this much of it (0: no label)

    @property
    def star_cutoffs(self) -> tuple[float, ...]:
        return (self.two_stars_from, self.three_stars_from, self.four_stars_from, self.five_stars_from)


@dataclass(frozen=True)
class Params:
    metadata: MetadataParams
    labels: LabelsParams
    download: DownloadParams
    features: FeaturesParams
    train: TrainParams
    analyze: AnalyzeParams
    grouping: GroupingParams = GroupingParams()
    xmp: XmpParams = XmpParams()


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


def _leaves_a_training_split(params: Params, source: Path) -> None:
    labels = params.labels
    if labels.val_fraction + labels.test_fraction >= 1.0:
        raise KeeptrashError(
            f"{source}: labels.val_fraction + labels.test_fraction must be below 1 to leave a training split, "
            f"got {labels.val_fraction} + {labels.test_fraction}"
        )


def _regression_has_no_class_weights(params: Params, source: Path) -> None:
    train = params.train
    if train.objective == "regress" and train.class_weights != "none":
        raise KeeptrashError(
            f"{source}: train.objective must be classify when train.class_weights weighs classes (a regression has none); "
            f"set class_weights to none, got {train.objective!r}"
        )


def _noise_penalty_is_a_regression_target(params: Params, source: Path) -> None:
    train = params.train
    if train.noise_penalty and train.objective != "regress":
        raise KeeptrashError(
            f"{source}: train.noise_penalty lowers the noisy copies' score target, which only objective regress learns; "
            f"set train.objective to regress or train.noise_penalty to 0, got objective {train.objective!r}"
        )


# An archive volume's file name as AVA publishes them: AVA_dataset.7z, or AVA_dataset.7z.001, .002, ...
ARCHIVE_VOLUME_NAME = re.compile(r"[\w.+-]+\.7z(\.\d+)?")


def url_file_name(url: str) -> str:
    """The name a downloaded URL is saved under: the last segment of its path."""
    return PurePosixPath(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name


def host_and_port(peer: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) as libtorrent's connect_peer takes it; ValueError if it is not one."""
    host, _, port = peer.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(peer)
    return host.strip("[]"), int(port)


# What each download.source needs of the other download keys, checked here so that a bad value fails the first stage
# that runs, not the download stage part-way through a pipeline. Each rule returns what is wrong (or None). Checks that
# need the network, the filesystem or libtorrent (a magnet link's syntax, a .torrent file) stay in keeptrash.download.
def _archives_dir_set(purpose: str) -> Callable[[DownloadParams], str | None]:
    return lambda download: None if download.archives_dir else f"download.archives_dir is empty; set it to {purpose}"


def _mega_url_set(download: DownloadParams) -> str | None:
    return None if download.mega_url else "download.mega_url is empty; set it to the public MEGA folder link of the AVA volumes"


def _url_template_has_id(download: DownloadParams) -> str | None:
    if "{id}" in download.url_template:
        return None
    return "download.url_template must contain {id}, e.g. https://mirror.example/ava/{id}.jpg"


def _archive_urls_name_volumes(download: DownloadParams) -> str | None:
    for url in download.archive_urls:
        if not ARCHIVE_VOLUME_NAME.fullmatch(url_file_name(url)):
            return f"download.archive_urls: {url} does not end in a 7z volume name like AVA_dataset.7z.001"
    return None


def _torrent_peers_are_addresses(download: DownloadParams) -> str | None:
    for peer in download.torrent_peers:
        try:
            host_and_port(peer)
        except ValueError:
            return f"download.torrent_peers: {peer!r} is not host:port"
    return None


SOURCE_RULES: dict[str, tuple[Callable[[DownloadParams], str | None], ...]] = {
    "archives": (_archives_dir_set("the folder holding the AVA 7z archive or its volumes"), _archive_urls_name_volumes),
    "http": (_url_template_has_id,),
    "mega": (_archives_dir_set("the folder the MEGA volumes are downloaded into"), _mega_url_set),
    "torrent": (
        _archives_dir_set("the folder the torrent is downloaded into (about 32 GB for all of AVA)"),
        _torrent_peers_are_addresses,
    ),
}


def _stars_rise_with_probability(params: Params, source: Path) -> None:
    cutoffs = params.xmp.star_cutoffs
    if any(low > high for low, high in zip(cutoffs, cutoffs[1:])):
        raise KeeptrashError(
            f"{source}: xmp.two_stars_from, three_stars_from, four_stars_from and five_stars_from must not decrease, got {list(cutoffs)}"
        )


def _source_has_what_it_needs(params: Params, source: Path) -> None:
    for rule in SOURCE_RULES.get(params.download.source, ()):
        problem = rule(params.download)
        if problem:
            raise KeeptrashError(f"{source}: {problem}")


# Rules across keys, checked once every key is valid on its own.
CROSS_FIELD_RULES = (
    _leaves_a_training_split, _regression_has_no_class_weights, _noise_penalty_is_a_regression_target, _stars_rise_with_probability,
    _source_has_what_it_needs,
)
_SECTION_NAMES = {section.type: section.name for section in fields(Params)}


def _parsed_values(settings: type, section: _Section, keys: Any = None) -> dict[str, Any]:
    """Each key of settings (or only those in keys) parsed from the section by its declaration."""
    return {key.name: key.metadata["parse"](section, key.name) for key in fields(settings) if keys is None or key.name in keys}


def _parsed_section(settings: type, section: _Section) -> Any:
    return settings(**_parsed_values(settings, section))


def section_settings(settings: type, values: dict[str, Any], source: Path | str) -> Any:
    """One section's settings (e.g. FeaturesParams) built from values that do not come from params.yaml (a model's
    metadata, command-line flags), each checked by its declaration as params.yaml's are: a bad value fails in the same
    one line, `source: section.key must be ..., got ...`. Keys not in values take their defaults."""
    name = _SECTION_NAMES[settings]
    return settings(**_parsed_values(settings, _Section({name: values}, name, source), values))


def replaced_settings(settings: Any, changes: dict[str, Any], source: Path | str) -> Any:
    """dataclasses.replace, with each changed value checked by its declaration (see section_settings)."""
    name = _SECTION_NAMES[type(settings)]
    return replace(settings, **_parsed_values(type(settings), _Section({name: changes}, name, source), changes))


def _unknown_name(name: Any, known: list[str], prefix: str, kind: str, source: Path) -> KeeptrashError:
    """`unknown key train.dept; did you mean train.depth?`: a misspelt name would otherwise be ignored and its default
    used, while DVC still counts the section as changed."""
    shown = name if isinstance(name, str) else _SHOWN.repr(name)
    closest = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {prefix}{closest[0]}?" if closest else f"known {kind}s: {', '.join(known)}"
    return KeeptrashError(f"{source}: unknown {kind} {prefix}{shown}; {hint}")


def _refuse_unknown_names(raw: dict[Any, Any], source: Path) -> None:
    sections = {section.name: [key.name for key in fields(section.type)] for section in fields(Params)}
    for name, values in raw.items():
        if name not in sections:
            raise _unknown_name(name, list(sections), "", "section", source)
        for key in values if isinstance(values, dict) else ():
            if key not in sections[name]:
                raise _unknown_name(key, sections[name], f"{name}.", "key", source)


def parse_params(raw: Any, source: Path = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise KeeptrashError(f"{source}: expected a mapping of sections (metadata, labels, ...); see params.yaml in the repo")
    _refuse_unknown_names(raw, source)
    sections = {section.name: _Section(raw, section.name, source) for section in fields(Params)}
    params = Params(**{section.name: _parsed_section(section.type, sections[section.name]) for section in fields(Params)})
    for rule in CROSS_FIELD_RULES:
        rule(params, source)
    return params


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping holding one key twice. YAML forbids it and DVC refuses such a file, but
    PyYAML keeps the last value: the stage would run with one value while the file seems to say another."""

    def __init__(self, text: str, path: Path):
        super().__init__(text)
        self.path = path
        self._keys_above: list[Any] = []  # the keys (or list positions) from the document's root to the node being read

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # index: the key node of a mapping's value, the position of a list's item, None for a key or the root.
        self._keys_above.append(index.value if isinstance(index, yaml.ScalarNode) else index if isinstance(index, int) else None)
        try:
            return super().compose_node(parent, index)
        finally:
            self._keys_above.pop()

    def compose_mapping_node(self, anchor: str | None) -> yaml.Node:
        node = super().compose_mapping_node(anchor)
        first_lines: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":  # <<: *defaults may be overridden
                continue
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first_lines:
                name = ".".join(str(above) for above in [*self._keys_above, key.value] if above is not None)
                raise KeeptrashError(f"{self.path}: {name} is written twice (lines {first_lines[key.tag, key.value]} and {line}); keep one")
            first_lines[key.tag, key.value] = line
        return node


def _safe_yaml(text: str, path: Path) -> Any:
    """yaml.safe_load, but a document whose aliases expand beyond MAX_PARAMS_VALUES is refused before it is built,
    and so is one that writes a key twice in a mapping."""
    loader = _UniqueKeyLoader(text, path)
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
