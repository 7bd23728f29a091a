#!/usr/bin/env bash
# Export a running (or stopped) stage's latest checkpoint as a loadable model, to score
# it mid-run: the checkpoint is copied aside and `vidlm train --resume` with max_steps at
# its step trains nothing and exports it (final/, and final_adapter/ for LoRA); ship.py
# then makes it a folder `vidlm.load` and run.py read. A training process given as PID
# is paused (SIGSTOP) meanwhile, so the two do not share the 2 cores, and resumed after.
#   bash experiments/demo_model/export_checkpoint.sh RUN_DIR CONFIG MODEL_PATH OUT [PID]
#   e.g. RUN_DIR=runs/demo/slowfast/lora CONFIG=configs/demo/lora.yaml
#        MODEL_PATH=runs/demo/slowfast/align/final OUT=runs/demo/slowfast/lora_step1000
set -euo pipefail
run=${1:?RUN_DIR}; config=${2:?CONFIG}; model=${3:?MODEL_PATH}; out=${4:?OUT}; pid=${5:-}
[ -n "$pid" ] && { kill -STOP "$pid"; trap 'kill -CONT "$pid"' EXIT; }
latest=$(ls -d "$run"/checkpoints/step_* | sort -V | tail -1)
step=${latest##*_}
step=$((10#$step))
work="$out.export"
rm -rf "$work" && mkdir -p "$work/checkpoints" && cp -r "$latest" "$work/checkpoints/"
vidlm train "$config" --resume model.path="$model" output_dir="$work" max_steps="$step" \
  progress=false
rm -rf "$out"
python experiments/demo_model/ship.py --run "$work/final" --out "$out"
echo "exported step $step of $run to $out"
