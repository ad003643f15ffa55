#!/bin/sh
# The device check for a GPU or TPU host; see check.py. Run from anywhere: tests/device/run.sh [--help]
set -eu
exec python3 "$(dirname "$0")/check.py" "$@"
