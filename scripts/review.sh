#!/usr/bin/env bash
# What CI runs on a pull request (.github/workflows/review.yml), and what you can run before opening one:
# reproduce BASE and the checked-out commit on this machine, then write OUT/report.md with `keeptrash report`.
#   bash scripts/review.sh BASE [OUT]      (the venv active: source scripts/setup.sh)
# BASE's outputs as reproduced here are committed locally (a commit no branch points at, never pushed),
# so the report reads both revisions the same way even when BASE's outputs were never pushed to a remote.
set -euo pipefail
base=${1:?usage: bash scripts/review.sh BASE [OUT]}
out=${2:-report}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "review: commit or stash your changes first (git status)" >&2
    exit 1
fi
head=$(git symbolic-ref -q --short HEAD || git rev-parse HEAD)  # back to the branch, if on one
git -c advice.detachedHead=false checkout -q "$base"
dvc checkout -q --allow-missing
dvc repro
git add -A dvc.lock metrics
git -c user.name="keeptrash review" -c user.email=review@keeptrash.invalid commit -q --allow-empty --no-verify \
    -m "review: $base as reproduced on this machine"
reproduced_base=$(git rev-parse HEAD)
git -c advice.detachedHead=false checkout -q "$head"
dvc checkout -q --allow-missing
dvc repro
git tag -f review-base "$reproduced_base" >/dev/null
trap 'git tag -d review-base >/dev/null' EXIT
python -m keeptrash.cli report --base review-base --out "$out"
