#!/usr/bin/env bash
# The README's main job: set up, then run the offline demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/vidlm demo-offline --out outputs/demo "$@"
