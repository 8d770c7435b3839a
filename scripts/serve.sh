#!/usr/bin/env bash
# Set up a virtualenv with logpond and run the server on the embedded store (data in ./.logpond).
# Extra arguments go to `logpond serve` (e.g. --port 8001).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q -e . 
exec .venv/bin/logpond serve "$@"
