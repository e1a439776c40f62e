#!/usr/bin/env bash
# Set up (first run only) and run the test suite.
source "$(dirname "$0")/setup.sh"
python -m pytest "$@"
