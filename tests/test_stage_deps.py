"""dvc.yaml lists, as deps of a stage, every keeptrash module the stage imports: a change to any of them reruns it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Stages checked so far; add one here once its deps list is complete.
CHECKED_STAGES = ["benchmark"]


def imported_modules(stage: str) -> set[str]:
    """Repo-relative paths of the keeptrash modules `python -m keeptrash.stages.<stage>` imports."""
    script = (
        f"import sys, keeptrash.stages.{stage}\n"
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.startswith('keeptrash') and getattr(m, '__file__', None)))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {str(Path(path).resolve().relative_to(REPO / "src").as_posix()) for path in output.split()}


def only_a_docstring(module: str) -> bool:
    """A package marker like keeptrash/stages/__init__.py: nothing in it can change what a stage computes."""
    body = ast.parse((REPO / "src" / module).read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


@pytest.mark.parametrize("stage", CHECKED_STAGES)
def test_stage_deps_cover_every_module_it_imports(stage):
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["deps"]
    covered = [dep.removeprefix("src/") for dep in deps if dep.startswith("src/keeptrash")]
    missing = {
        module for module in imported_modules(stage)
        if not only_a_docstring(module)
        if not any(module == dep or module.startswith(dep.rstrip("/") + "/") for dep in covered)
    }
    assert not missing, f"dvc.yaml stage {stage} lacks deps: {sorted(missing)}"
