"""Training throughput: samples/s and tokens/s, with and without the vision-feature cache.

CPU part (default): the real recipe (``vidlm.train.recipe``) on synthetic clips with a
small random-weight VideoLM (tiny CLIP-shaped tower, ``--image-size`` px with 8 px
patches, ``--frames`` frames, ``--connector``, 2-layer Llama-shaped LM), fp32.
Each mode trains two epochs; throughput is measured over the second epoch, when the
cached mode reads vision features from the cache instead of decoding videos and running
the tower, in samples and tokens per *CPU second* of the process (data loading in the
main process). The ratio cached / plain is the cache's speed-up.

GPU part (``--gpu``, needs CUDA): a 1B-class configuration with random weights in bf16
autocast: a CLIP ViT-L/14-336-shaped tower (frozen), the mlp2x_gelu connector with
SlowFast pooling, and a TinyLlama-1.1B-shaped LM (2048 wide, 22 layers), sft stage.
Reports tokens/s and MFU (model FLOPs utilisation):

    FLOPs per step = 6 * N_lm_trainable * tokens + 2 * N_lm_frozen * tokens
                     + 12 * layers * width * S * tokens          (attention scores, fwd+bwd)
                     + 2 * N_vision * patches_per_frame * frames  (frozen tower, forward only)
    MFU = FLOPs per step / step time / peak bf16 FLOP/s   (--peak-tflops, H100 SXM: 989)

``--gpu-dry-run`` runs the GPU code path on the CPU with tiny shapes (numbers meaningless).

    nice .venv/bin/python benchmarks/train_step.py [--json out.json]
    .venv/bin/python benchmarks/train_step.py --gpu [--json gpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from vidlm.train.metrics import read_log


@dataclass
class Result:
    mode: str
    steps: int
    samples_per_s: float
    tokens_per_s: float
    seconds_per_step: float
    mfu: float | None = None


def epoch_throughput(log: Path, first_step: int) -> tuple[int, float, float, float]:
    """(steps, samples/s, tokens/s, s/step) over the train records from ``first_step`` on.

    Uses the *median* step time: on a shared machine other jobs add long spikes to some
    steps, and the median ignores them where a sum would not.
    """
    rows = [r for r in read_log(log, "train") if r["step"] >= first_step]
    step_s = statistics.median(r["seconds"] for r in rows)
    samples = statistics.mean(r["samples"] for r in rows)
    tokens = statistics.mean(r["tokens"] for r in rows)
    return len(rows), samples / step_s, tokens / step_s, step_s


def cpu_bench(work: Path, *, num_clips: int, frames: int, image_size: int, connector: str,
              console: Console) -> list[Result]:
    """Epoch 2 of each mode, timed in process CPU seconds (``time.process_time``).

    Data loading runs in the main process (``num_workers=0``) so decoding is counted;
    CPU time is what this work costs whatever else the machine runs (wall time on a
    shared machine mostly measures the other jobs).
    """
    from vidlm.train.recipe import TrainRecipe
    from vidlm.train.smoke import build_smoke_setup, smoke_config

    torch.set_num_threads(1)  # idle OpenMP threads spin and would inflate the CPU time
    files = build_smoke_setup(work / "setup", num_train=num_clips, num_eval=2,
                              num_frames=frames, image_size=image_size, patch_size=8,
                              connector=connector)
    gbs = 4
    epoch = num_clips // gbs
    results = []
    for mode in ("plain", "feature cache"):
        data: dict[str, Any] = {"eval": None, "num_workers": 0}
        if mode == "feature cache":
            data["feature_cache"] = str(work / "cache")
        console.print(f"[bold]{mode}[/]: 2 epochs x {epoch} steps")
        recipe = TrainRecipe(smoke_config(
            files, output_dir=work / mode.replace(" ", "_"), max_steps=2 * epoch,
            global_batch_size=gbs, micro_batch_size=2, export=False, deterministic=False,
            data=data))
        recipe.setup()
        recipe.total_steps = epoch  # epoch 1: fills the cache in the cached mode
        recipe.train()
        before = (recipe.state.samples_seen, recipe.state.tokens_seen)
        cpu0 = time.process_time()
        recipe.total_steps = 2 * epoch  # epoch 2: measured
        recipe.train()
        cpu = time.process_time() - cpu0
        recipe.cleanup()
        samples = recipe.state.samples_seen - before[0]
        tokens = recipe.state.tokens_seen - before[1]
        results.append(Result(mode, epoch, samples / cpu, tokens / cpu, cpu / epoch))
    return results


# ---- GPU ---------------------------------------------------------------------------------

def gpu_model(*, tiny: bool, frames: int) -> Any:
    """A random-weight 1B-class VideoLM (``tiny``: the same code with toy shapes)."""
    from transformers import AutoModelForCausalLM, CLIPVisionConfig, LlamaConfig

    from vidlm.model.config import (
        LanguageModelConfig,
        SamplingConfig,
        VideoLMConfig,
        VisionTowerConfig,
    )
    from vidlm.model.connectors import connector_config_from_dict
    from vidlm.model.videolm import VideoLM
    from vidlm.testing import tiny_tokenizer

    if tiny:
        vis = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, image_size=28, patch_size=14)
        lm = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2)
    else:  # CLIP ViT-L/14-336 and TinyLlama-1.1B shapes
        vis = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                               num_attention_heads=16, image_size=336, patch_size=14)
        lm = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                  num_attention_heads=32, num_key_value_heads=4)
    tokenizer = tiny_tokenizer()
    config = VideoLMConfig(
        vision_tower=VisionTowerConfig(name_or_path="random-clip", image_size=vis.image_size,
                                       chunk_size=16),
        connector=connector_config_from_dict({"name": "slowfast"}),
        language_model=LanguageModelConfig(name_or_path="random-llama"),
        sampling=SamplingConfig(mode="uniform", num_frames=frames))
    language_model = AutoModelForCausalLM.from_config(
        LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=8192, **lm))
    return VideoLM.from_parts(config, vision_encoder_config=vis, language_model=language_model,
                              tokenizer=tokenizer)


def step_flops(model: Any, tokens_per_step: float, seq_len: float, frames_per_step: float
               ) -> float:
    lm = model.language_model
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in lm.parameters() if not p.requires_grad)
    cfg = lm.config
    attention = 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len
    tower = model.vision_tower
    vision = 2 * sum(p.numel() for p in tower.parameters()) * tower.num_patches
    return (6 * trainable + 2 * frozen + attention) * tokens_per_step + vision * frames_per_step


def gpu_bench(work: Path, *, tiny: bool, steps: int, peak_tflops: float,
              console: Console) -> list[Result]:
    from vidlm.train.recipe import TrainRecipe
    from vidlm.train.smoke import SmokeFiles, smoke_config

    frames = 2 if tiny else 32
    from vidlm.data.synth import SynthConfig, generate_dataset

    generate_dataset(work / "data", SynthConfig(num_train=64, num_val=0, num_test=0, size=64,
                                                fps=8, seconds=4.0), progress=False)
    files = SmokeFiles(Path(), work / "data/train.json", work / "data/val.json", work / "data")
    model = gpu_model(tiny=tiny, frames=frames)
    if torch.cuda.is_available():
        model.cuda()
    cfg = smoke_config(files, output_dir=work / "gpu", model={"path": "in-memory",
                                                              "gradient_checkpointing": True},
                       max_steps=steps, global_batch_size=8, micro_batch_size=8 if not tiny
                       else 2, precision="fp32" if tiny else "bf16", deterministic=False,
                       export=False, data={"eval": None, "num_workers": 0 if tiny else 8},
                       optim={"lr": 2e-5, "warmup_steps": 1})
    recipe = TrainRecipe(cfg, model=model)
    recipe.setup()
    t0 = time.perf_counter()
    recipe.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    recipe.cleanup()
    skip = 2  # warm-up steps (allocator, kernels)
    n, sps, tps, sec = epoch_throughput(work / "gpu/log.jsonl", skip + 1)
    seq = tps * sec / cfg.global_batch_size  # mean tokens per sample
    flops = step_flops(model, tps * sec, seq, frames * cfg.global_batch_size)
    mfu = flops / sec / (peak_tflops * 1e12)
    console.print(f"{steps} steps in {elapsed:.1f} s")
    return [Result("1B-class bf16" + (" (dry run)" if tiny else ""), n, sps, tps, sec, mfu)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16, help="training clips (CPU part)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (CPU part)")
    parser.add_argument("--image-size", type=int, default=64,
                        help="vision tower input side, 8 px patches (CPU part)")
    parser.add_argument("--connector", default="mlp2x_gelu", help="connector (CPU part)")
    parser.add_argument("--gpu", action="store_true", help="the 1B-class bf16 GPU part")
    parser.add_argument("--gpu-dry-run", action="store_true",
                        help="run the GPU code path on the CPU with tiny shapes")
    parser.add_argument("--steps", type=int, default=20, help="GPU steps")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the GPU's dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    console = Console()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix="vidlm-train-bench-"))
    try:
        if args.gpu or args.gpu_dry_run:
            if args.gpu and not torch.cuda.is_available():
                console.print("--gpu needs CUDA; use --gpu-dry-run to check the code path")
                return 2
            results = gpu_bench(work, tiny=args.gpu_dry_run, steps=args.steps,
                                peak_tflops=args.peak_tflops, console=console)
        else:
            results = cpu_bench(work, num_clips=args.clips, frames=args.frames,
                                image_size=args.image_size, connector=args.connector,
                                console=console)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title="vidlm train step throughput")
    unit = "s" if (args.gpu or args.gpu_dry_run) else "CPU-s"
    for col in ("mode", "steps", f"samples/{unit}", f"tokens/{unit}", f"{unit}/step", "ratio",
                "MFU"):
        table.add_column(col, justify="right")
    base = results[0].samples_per_s
    for r in results:
        table.add_row(r.mode, str(r.steps), f"{r.samples_per_s:.2f}", f"{r.tokens_per_s:.0f}",
                      f"{r.seconds_per_step:.3f}", f"{r.samples_per_s / base:.2f}x",
                      "-" if r.mfu is None else f"{100 * r.mfu:.1f}%")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
