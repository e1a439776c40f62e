"""Wall time of `keeptrash report` on the demo data, end to end in a fresh process each run.

Run from the root of a repo (or clone) where `dvc repro` has run and both revisions' outputs are in
DVC's cache, e.g. after committing the default run and `dvc exp run -n depth3 -S train.depth=3`:
    python benchmarks/report.py --base HEAD --new depth3 [--runs 3]
It prints each run's time and the median, and leaves the last report in a temporary folder.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--new", help="default: the workspace")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="keeptrash-report-"))
    command = [sys.executable, "-m", "keeptrash.cli", "report", "--base", args.base, "--out", str(out)]
    command += ["--new", args.new] if args.new else []
    seconds = []
    for run in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
        print(f"run {run + 1}: {seconds[-1]:.1f} s")
    print(f"keeptrash report {args.base} -> {args.new or 'workspace'}: median {statistics.median(seconds):.1f} s "
          f"over {args.runs} runs; report in {out}")


if __name__ == "__main__":
    main()
