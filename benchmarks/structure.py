"""How easy the code is to change: stage start-up, the longest functions, and the README's length.

Run from the repo root:
    python benchmarks/structure.py [--repeats 3]

Stage start-up is the wall time of a fresh `python -c` that imports the stage module and reads
params.yaml (what every stage does before its own work), the fastest of --repeats runs, and which
heavy libraries (torch, libtorrent, ray, catboost) that loaded.
"""

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ["metadata", "labels", "download", "features", "train", "benchmark", "analyze"]
HEAVY = ["torch", "libtorrent", "ray", "catboost"]


def stage_startup(stage: str, repeats: int) -> tuple[float, list[str]]:
    script = (
        f"import sys, keeptrash.stages.{stage}, keeptrash.params\n"
        "keeptrash.params.load_params()\n"
        f"print(' '.join(name for name in {HEAVY!r} if name in sys.modules))"
    )
    times, loaded = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout
        times.append(time.perf_counter() - start)
    return min(times), loaded.split()


def longest_functions(count: int) -> list[tuple[int, str]]:
    lengths = []
    for path in sorted((REPO / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{path.relative_to(REPO / 'src')}:{node.name}"
                lengths.append((node.end_lineno - node.lineno + 1, name))
    return sorted(lengths, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("stage start-up (import the stage and read params.yaml; fastest run):")
    for stage in STAGES:
        seconds, loaded = stage_startup(stage, args.repeats)
        print(f"  {stage:10s} {seconds:5.2f} s  heavy libraries loaded: {', '.join(loaded) or 'none'}")
    print("longest functions (lines):")
    for lines, name in longest_functions(5):
        print(f"  {lines:4d}  {name}")
    readme = (REPO / "README.md").read_text()
    print(f"README.md: {len(readme.encode())} bytes, {len(readme.split())} words, {len(readme.splitlines())} lines")


if __name__ == "__main__":
    main()
