"""The import structure of keeptrash: dvc.yaml lists, as deps of each stage, every keeptrash module the stage can run
(a change to any of them reruns it); no module imports itself through others; a stage loads only what it runs.

The walk is static (ast), so it also sees imports made inside functions (the ones a stage defers until it needs
them), and transitive: a module the stage imports, the modules that one imports, and so on, plus the package
__init__ files Python runs on the way. A stage is every dvc.yaml stage whose cmd is `python -m keeptrash...`, so a new
stage is checked without editing this file.
"""

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file a keeptrash module name runs from, or None when the name is not a keeptrash module (a function)."""
    base = SRC / Path(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def with_packages(name: str) -> list[str]:
    """`keeptrash.a.b` imports keeptrash, keeptrash.a, then keeptrash.a.b."""
    parts = name.split(".")
    return [".".join(parts[: end + 1]) for end in range(len(parts))]


def imported_names(path: Path) -> set[str]:
    """Every keeptrash module a file imports, at top level or inside a function; `from p import x` may name a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == "keeptrash"}


def imported_files(path: Path) -> set[Path]:
    return {file for name in imported_names(path) for file in map(module_file, with_packages(name)) if file and file != path}


def modules_run_by(entry: str) -> set[Path]:
    """The files of every keeptrash module `python -m entry` can import, transitively."""
    seen: set[Path] = set()
    pending = with_packages(entry)
    while pending:
        path = module_file(pending.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        pending.extend(str(file.relative_to(SRC).with_suffix("")).replace("/", ".").removesuffix(".__init__")
                       for file in imported_files(path))
    return seen


def only_a_docstring(path: Path) -> bool:
    """A package marker like keeptrash/stages/__init__.py: nothing in it can change what a stage computes."""
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in ast.parse(path.read_text()).body)


def keeptrash_stages() -> dict[str, str]:
    """Stage name -> the module its cmd runs."""
    return {
        stage: spec["cmd"].split("-m", 1)[1].split()[0]
        for stage, spec in STAGES.items() if spec["cmd"].startswith("python -m keeptrash")
    }


def uncovered(stage: str, entry: str) -> list[str]:
    deps = [REPO / dep for dep in STAGES[stage]["deps"] if dep.startswith("src/")]
    return sorted(
        str(path.relative_to(REPO)) for path in modules_run_by(entry)
        if not only_a_docstring(path)
        if not any(path == dep or dep in path.parents for dep in deps)
    )


def test_every_pipeline_stage_is_checked():
    """Every dvc.yaml stage runs a keeptrash module, so every one is walked below."""
    assert set(keeptrash_stages()) == set(STAGES) and len(STAGES) >= 7


@pytest.mark.parametrize("stage", sorted(keeptrash_stages()))
def test_stage_deps_cover_every_module_it_imports(stage):
    missing = uncovered(stage, keeptrash_stages()[stage])
    assert not missing, f"dvc.yaml stage {stage} lacks deps: {missing}"


@pytest.mark.parametrize("stage", sorted(keeptrash_stages()))
def test_stage_code_deps_exist(stage):
    """A dep naming a moved or deleted module would cover nothing."""
    absent = [dep for dep in STAGES[stage]["deps"] if dep.startswith("src/") and not (REPO / dep).exists()]
    assert not absent, f"dvc.yaml stage {stage} names missing deps: {absent}"


def test_the_walk_follows_imports_inside_functions_and_package_inits():
    """The walk itself: the features stage reaches ray_engine only through extract's deferred import (when
    features.engine is ray), and every module of a package runs that package's __init__."""
    run = {str(path.relative_to(SRC)) for path in modules_run_by("keeptrash.stages.features")}
    assert {"keeptrash/features/ray_engine.py", "keeptrash/features/__init__.py", "keeptrash/params.py"} <= run


def test_no_import_cycles():
    """Imports inside functions count too: a deferred import still ties the two modules together."""
    graph = {path: imported_files(path) for path in (SRC / "keeptrash").rglob("*.py")}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(str(path.relative_to(SRC)) for path in error.args[1])}")


@pytest.mark.parametrize("stage", ["metadata", "labels"])
def test_table_stages_start_without_the_heavy_libraries(stage):
    """The metadata and labels stages build tables from CSVs and photos: reading params.yaml must not load a deep
    learning, torrent, cluster or boosting library (seconds of start-up for nothing)."""
    heavy = ["torch", "libtorrent", "ray", "catboost"]
    script = (
        f"import sys, keeptrash.stages.{stage}, keeptrash.params\n"
        "keeptrash.params.load_params()\n"
        f"print(' '.join(name for name in {heavy!r} if name in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not loaded, f"keeptrash.stages.{stage} loads {loaded}"


def test_the_declared_choices_are_the_registries_keys():
    """params.py names the choices it validates; the registries behind them implement exactly those."""
    from keeptrash.features.backbones import BACKBONES
    from keeptrash.params import BACKBONE_NAMES, SOURCE_NAMES
    from keeptrash.download.sources import SOURCES

    assert tuple(SOURCES) == SOURCE_NAMES
    assert tuple(BACKBONES) == BACKBONE_NAMES
