#!/usr/bin/env bash
# Train one demo-model variant with the repo's recipe: build its base checkpoint from the
# pretrained tower (pretrain_tower.py, shared by all variants), then `vidlm train` the
# align (on captions) and stage-2 configs with only the paths changed. Every variant
# shares the data, seeds, steps and learning rates; only the connector's pooling differs
# (experiments/demo_model/build_base.py VARIANTS). Resumes a stopped stage.
#   [STAGE2=configs/demo/sft.yaml] bash experiments/demo_model/train_variant.sh slowfast [runs/demo]
set -euo pipefail
variant=${1:?usage: train_variant.sh VARIANT [RUNS_DIR]}
runs=${2:-runs/demo}
dir="$runs/$variant"
tower="$runs/tower.safetensors"
[ -f "$tower" ] || { echo "no $tower: run experiments/demo_model/pretrain_tower.py, or for the shipped tower: cp experiments/demo_model/stage0/tower.* $runs/" >&2; exit 1; }
[ -f data/demo/train_captions.json ] && [ -f data/demo/train_qa_captions.json ] ||
  python experiments/demo_model/make_captions.py --data data/demo  # align and lora data
[ -f "$dir/base/vidlm_config.json" ] ||
  python experiments/demo_model/build_base.py --variant "$variant" --tower "$tower" --out "$dir/base"
stage() {  # stage NAME CONFIG MODEL_PATH
  local out="$dir/$1"
  [ -f "$out/final/vidlm_config.json" ] && return 0
  local resume=()
  compgen -G "$out/checkpoints/step_*" > /dev/null && resume=(--resume)
  vidlm train "$2" "${resume[@]}" model.path="$3" output_dir="$out" progress=false
}
stage align configs/demo/align.yaml "$dir/base"
stage2=${STAGE2:-configs/demo/lora.yaml}  # or configs/demo/sft.yaml (the LM frozen)
stage "$(basename "$stage2" .yaml)" "$stage2" "$dir/align/final"
