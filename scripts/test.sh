#!/usr/bin/env bash
# The README's test command: set up, lint, run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VIDLM_BROWSER=1 bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest "$@"
