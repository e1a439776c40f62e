#!/usr/bin/env bash
# Set up (first run only) and run the whole pipeline on the demo data shipped in the repo, offline.
source "$(dirname "$0")/setup.sh"
dvc repro "$@"
