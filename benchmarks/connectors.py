"""Connector benchmark: visual tokens, and the time and memory of connector + LM prefill.

CPU part (default), for 32, 64, 128 and 256 frames on a 24x24 patch grid (CLIP-L/336):

1. the token count of each connector against plain per-frame tokens (pure budget function);
2. the wall time and peak memory of connector + language-model prefill (up to the first
   token) with random features into a small random-weight Qwen2-shaped LM. Each case runs
   in a fresh subprocess so its peak RSS is its own; prompts longer than the LM's context
   are reported as not run, as a real model could not run them either.

GPU part (``--gpu``, needs CUDA): the real sizes with random weights in bf16, a CLIP
ViT-L/14-336 vision tower and a Qwen2.5-7B-shaped LM. It compares SlowFast at 128 frames
with plain per-frame tokens at 32 frames: time to first token (vision tower + connector +
prefill) and peak GPU memory. ``--check-real-path`` runs that same code on the CPU with
tiny shapes, to check the code where no GPU is available (its numbers mean nothing).

    nice .venv/bin/python benchmarks/connectors.py [--json out.json]
    .venv/bin/python benchmarks/connectors.py --gpu [--json gpu.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from vidlm.model.connectors import (
    ConnectorConfig,
    MLP2xGeluConfig,
    PerceiverConfig,
    TemporalPoolConfig,
    build_connector,
    connector_preset,
)

Cells = list[list[str]]

FRAME_COUNTS = (32, 64, 128, 256)
GRID = (24, 24)  # CLIP ViT-L/14 at 336 px
TEXT_TOKENS = 64  # prompt text appended after the visual tokens
BASELINE = "per-frame"

CONNECTORS: dict[str, ConnectorConfig] = {
    BASELINE: MLP2xGeluConfig(),  # LLaVA-1.5: every patch of every frame
    "temporal_pool w=4": TemporalPoolConfig(window=4),
    "slowfast 2024": connector_preset("slowfast_llava_2024"),
    "slowfast 1.5": connector_preset("slowfast_llava_1_5"),
    "perceiver 64": PerceiverConfig(num_latents=64, depth=2, heads=4, head_dim=32,
                                    max_frames=256),
}


@dataclass(frozen=True)
class LMShape:
    """A Qwen2-shaped causal LM (random weights)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    context: int


@dataclass(frozen=True)
class VisionShape:
    """A CLIP vision tower (random weights)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    image_size: int
    patch_size: int


CPU_LM = LMShape(hidden=128, intermediate=344, layers=2, heads=4, kv_heads=2, vocab=512,
                 context=32768)
CPU_VISION_DIM = 64  # width of the random vision features fed to the connector on the CPU

QWEN25_7B = LMShape(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4,
                    vocab=152064, context=32768)
CLIP_L_336 = VisionShape(hidden=1024, intermediate=4096, layers=24, heads=16, image_size=336,
                         patch_size=14)
TINY_LM = LMShape(hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, vocab=256,
                  context=32768)
TINY_VISION = VisionShape(hidden=32, intermediate=64, layers=2, heads=2, image_size=56,
                          patch_size=14)


def build_lm(shape: LMShape) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads, max_position_embeddings=shape.context,
        rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    return Qwen2ForCausalLM(config).eval()


def build_vision(shape: VisionShape) -> torch.nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
        image_size=shape.image_size, patch_size=shape.patch_size, hidden_act="quick_gelu",
        attn_implementation="sdpa",
    )
    return CLIPVisionModel(config).eval()


def prefill_first_token(lm: torch.nn.Module, embeds: torch.Tensor) -> torch.Tensor:
    """Prefill ``(1, S, D_lm)`` embeddings with a KV cache and return the greedy first token."""
    out = lm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1].argmax(dim=-1)


# ---- the token table (pure) ------------------------------------------------------------------


def token_rows() -> list[dict[str, Any]]:
    rows = []
    for frames in FRAME_COUNTS:
        plain = frames * GRID[0] * GRID[1]
        for label, cfg in CONNECTORS.items():
            tokens = cfg.num_tokens(frames, GRID)
            rows.append({"frames": frames, "connector": label, "tokens": tokens,
                         "per_frame_tokens": plain, "ratio_to_per_frame": tokens / plain})
    return rows


def show(console: Console, title: str, headers: list[str], cells: Cells, *,
         markdown: bool) -> None:
    """Print a table as a rich table, or as a Markdown table (for docs/)."""
    if markdown:
        lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        print("\n".join(lines) + "\n")
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 1 and header == "connector" else "right")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def token_cells(rows: list[dict[str, Any]]) -> tuple[list[str], Cells]:
    headers = ["frames", *CONNECTORS]
    cells = [[str(frames), *(f"{r['tokens']:,} ({1 / r['ratio_to_per_frame']:,.1f})"
                             for r in rows if r["frames"] == frames)]
             for frames in FRAME_COUNTS]
    return headers, cells


# ---- the CPU timing cases (one subprocess each) -----------------------------------------------


def _status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` field in kB (Linux), or None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_case(label: str, frames: int, repeats: int) -> dict[str, Any]:
    """Time connector + prefill for one connector and frame count, in this process."""
    torch.manual_seed(0)
    cfg = CONNECTORS[label]
    lm = build_lm(CPU_LM)
    conn = build_connector(cfg, vision_dim=CPU_VISION_DIM, lm_dim=CPU_LM.hidden).eval()
    # (B, T, h*w, D): patch tokens, CLS dropped as LLaVA does
    features = torch.randn(1, frames, GRID[0] * GRID[1], CPU_VISION_DIM)
    text = torch.randn(1, TEXT_TOKENS, CPU_LM.hidden)
    with torch.inference_mode():  # warm-up at a small size: kernels, thread pools
        prefill_first_token(lm, torch.cat([conn(features[:, :4]), text], dim=1))
    times, conn_times = [], []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rss_before = _status_kb("VmRSS")
    exact_peak = _reset_peak_rss()
    for _ in range(repeats):
        with torch.inference_mode():
            t0 = time.perf_counter()
            tokens = conn(features)  # (1, L, D_lm)
            t1 = time.perf_counter()
            prefill_first_token(lm, torch.cat([tokens, text], dim=1))
            t2 = time.perf_counter()
        conn_times.append(t1 - t0)
        times.append(t2 - t0)
    peak = _status_kb("VmHWM")
    return {
        "frames": frames, "connector": label, "tokens": int(tokens.shape[1]),
        "seconds": statistics.median(times), "connector_seconds": statistics.median(conn_times),
        "peak_rss_mb": peak / 1024 if peak else None,
        "peak_over_start_mb": (peak - rss_before) / 1024 if exact_peak and peak and rss_before
        else None,
        "repeats": repeats, "threads": torch.get_num_threads(), "load_average_1min": load,
    }


def run_cpu_cases(repeats: int, console: Console) -> list[dict[str, Any]]:
    cases = [(label, frames) for frames in FRAME_COUNTS for label in CONNECTORS]
    results = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("connector + prefill on the CPU", total=len(cases))
        for label, frames in cases:
            total = CONNECTORS[label].num_tokens(frames, GRID) + TEXT_TOKENS
            if total > CPU_LM.context:
                results.append({"frames": frames, "connector": label, "tokens": total - TEXT_TOKENS,
                                "skipped": f"{total:,} tokens exceed the {CPU_LM.context:,} "
                                           "context"})
            else:
                results.append(_in_subprocess(label, frames, repeats))
            progress.advance(task)
    return results


def _in_subprocess(label: str, frames: int, repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", json.dumps([label, frames, repeats])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {label} @ {frames} frames failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timing_cells(results: list[dict[str, Any]]) -> tuple[list[str], Cells]:
    base = {r["frames"]: r for r in results if r["connector"] == BASELINE and "seconds" in r}
    ref = base[min(base)] if base else None
    headers = ["frames", "connector", "tokens", "seconds", "of which connector", "peak RSS MB",
               "peak over start MB", f"time vs {BASELINE} @{min(base, default=0)}",
               "machine load"]
    cells = []
    for r in results:
        if "skipped" in r:
            cells.append([str(r["frames"]), r["connector"], f"{r['tokens']:,}", "not run",
                          r["skipped"], "", "", "", ""])
            continue
        ratio = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else ""
        cells.append([str(r["frames"]), r["connector"], f"{r['tokens']:,}", f"{r['seconds']:.3f}",
                      f"{r['connector_seconds']:.3f}", _mb(r["peak_rss_mb"]),
                      _mb(r["peak_over_start_mb"]), ratio,
                      f"{r['load_average_1min']:.1f}" if r["load_average_1min"] else "n/a"])
    return headers, cells


def _mb(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "n/a"


# ---- the real-size path (GPU) ------------------------------------------------------------------

REAL_CASES = (  # (connector, frames): the comparison plus the 2024 design
    (BASELINE, 32),
    ("slowfast 1.5", 128),
    ("slowfast 2024", 128),
)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encode_frames(vision: torch.nn.Module, pixels: torch.Tensor, chunk: int) -> torch.Tensor:
    """``(T, 3, S, S)`` -> LLaVA's features ``(1, T, h*w, D)``: the second-to-last layer, CLS
    dropped, computed ``chunk`` frames at a time."""
    parts = [vision(pixel_values=c, output_hidden_states=True).hidden_states[-2][:, 1:]
             for c in pixels.split(chunk)]
    return torch.cat(parts).unsqueeze(0)


def real_size_run(*, device: torch.device, dtype: torch.dtype, vision_shape: VisionShape,
                  lm_shape: LMShape, repeats: int, chunk: int,
                  console: Console) -> list[dict[str, Any]]:
    """Time to first token and peak memory for REAL_CASES on ``device``."""
    grid = (vision_shape.image_size // vision_shape.patch_size,) * 2
    torch.manual_seed(0)
    with device, default_dtype(dtype):
        vision = build_vision(vision_shape)
        lm = build_lm(lm_shape)
        connectors = {label: build_connector(CONNECTORS[label], vision_dim=vision_shape.hidden,
                                             lm_dim=lm_shape.hidden).eval()
                      for label, _ in REAL_CASES}
    weights_bytes = _allocated(device)
    text = torch.randn(1, TEXT_TOKENS, lm_shape.hidden, device=device, dtype=dtype)
    results = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"time to first token on {device}", total=len(REAL_CASES))
        for label, frames in REAL_CASES:
            conn = connectors[label]
            pixels = torch.randn(frames, 3, vision_shape.image_size, vision_shape.image_size,
                                 device=device, dtype=dtype)

            def first_token(pixels: torch.Tensor = pixels, conn: torch.nn.Module = conn) -> int:
                feats = encode_frames(vision, pixels, chunk)  # (1, T, h*w, D)
                tokens = conn(feats, grid=grid)  # (1, L, D_lm)
                prefill_first_token(lm, torch.cat([tokens, text], dim=1))
                return int(tokens.shape[1])

            with torch.inference_mode():
                first_token(pixels[:2])  # warm-up: kernels, cuBLAS handles
                _reset_peak(device)
                times = []
                for _ in range(repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    n_tokens = first_token()
                    _sync(device)
                    times.append(time.perf_counter() - t0)
            peak = _peak(device)
            results.append({
                "connector": label, "frames": frames, "tokens": n_tokens,
                "ttft_seconds": statistics.median(times), "repeats": repeats,
                "peak_gb": peak / 2**30 if peak is not None else None,
                "peak_over_weights_gb": (peak - weights_bytes) / 2**30
                if peak is not None and weights_bytes is not None else None,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "dtype": str(dtype).removeprefix("torch."),
            })
            del pixels
            progress.advance(task)
    return results


def _allocated(device: torch.device) -> int | None:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def real_size_cells(results: list[dict[str, Any]]) -> tuple[list[str], Cells]:
    ref = results[0]
    headers = ["frames", "connector", "visual tokens", "TTFT s", f"TTFT vs {BASELINE} @32",
               "peak GB", "peak over weights GB"]
    cells = [[str(r["frames"]), r["connector"], f"{r['tokens']:,}", f"{r['ttft_seconds']:.3f}",
              f"{r['ttft_seconds'] / ref['ttft_seconds']:.2f}x", _gb(r["peak_gb"]),
              _gb(r["peak_over_weights_gb"])] for r in results]
    return headers, cells


def _gb(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per case (median)")
    parser.add_argument("--tokens-only", action="store_true", help="only the token table")
    parser.add_argument("--gpu", action="store_true",
                        help="also the real-size run on CUDA (CLIP-L/336 + 7B LM, bf16)")
    parser.add_argument("--check-real-path", action="store_true",
                        help="run the real-size code on the CPU with tiny shapes (no numbers)")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--chunk", type=int, default=16, help="frames per vision-tower pass")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one CPU case
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        label, frames, repeats = json.loads(args.worker)
        print(json.dumps(cpu_case(label, frames, repeats)))
        return 0
    console = Console()
    out: dict[str, Any] = {"grid": GRID, "text_tokens": TEXT_TOKENS,
                           "connectors": {k: v.to_dict() for k, v in CONNECTORS.items()}}
    rows = token_rows()
    out["tokens"] = rows
    md = args.markdown
    show(console, f"Visual tokens on a {GRID[0]}x{GRID[1]} grid (in brackets: how many times "
                  "fewer than per-frame tokens)",
         *token_cells(rows), markdown=md)
    if not args.tokens_only:
        cpu = run_cpu_cases(args.repeats, console)
        out["cpu"] = {"lm": asdict(CPU_LM), "vision_dim": CPU_VISION_DIM, "results": cpu}
        show(console, f"Connector + prefill to the first token, CPU, {torch.get_num_threads()} "
                      f"threads, random Qwen2-shaped LM (hidden {CPU_LM.hidden}, "
                      f"{CPU_LM.layers} layers), +{TEXT_TOKENS} text tokens",
             *timing_cells(cpu), markdown=md)
    if args.check_real_path:
        check = real_size_run(device=torch.device("cpu"), dtype=torch.float32,
                              vision_shape=TINY_VISION, lm_shape=TINY_LM, repeats=1,
                              chunk=args.chunk, console=console)
        out["real_path_check"] = check
        show(console, "Real-size code path on tiny shapes, CPU (a code check, not a measurement)",
             *real_size_cells(check), markdown=md)
    if args.gpu:
        if not torch.cuda.is_available():
            console.print("[red]--gpu: CUDA is not available on this machine[/red]")
            return 1
        gpu = real_size_run(device=torch.device("cuda"), dtype=torch.bfloat16,
                            vision_shape=CLIP_L_336, lm_shape=QWEN25_7B,
                            repeats=max(args.repeats, 3), chunk=args.chunk, console=console)
        out["gpu"] = {"vision": asdict(CLIP_L_336), "lm": asdict(QWEN25_7B), "results": gpu}
        show(console, "Time to first token, CLIP ViT-L/14-336 + Qwen2.5-7B-shaped LM, random "
                      f"weights, bf16, {torch.cuda.get_device_name()}",
             *real_size_cells(gpu), markdown=md)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
