"""Prefill and KV-cached decoding speed of the real LM (SmolLM2-135M) by torch thread count.

On a CPU shared by many processes, OpenMP threads spend their time waiting on each
other; this measures how much a single thread gains, in one run (ratios to the
default thread count)::

    python benchmarks/generation_threads.py [--prompt-tokens 70] [--steps 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def measure(lm: torch.nn.Module, threads: int, prompt_tokens: int, steps: int) -> dict:
    torch.set_num_threads(threads)
    ids = torch.randint(0, 1000, (1, prompt_tokens), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lm(ids[:, :8])  # warm-up
        start = time.perf_counter()
        out = lm(ids, use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - start
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(steps):
            out = lm(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        step = (time.perf_counter() - start) / steps
    return {"threads": threads, "prefill_s": prefill, "step_s": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-tokens", type=int, default=70)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from vidlm.model.language_model import load_language_model
    from vidlm.testing import smollm2_lm_config

    lm, _ = load_language_model(smollm2_lm_config())
    default = torch.get_num_threads()
    rows = [measure(lm, t, args.prompt_tokens, args.steps) for t in sorted({default, 1})]
    base = next(r for r in rows if r["threads"] == default)
    print(f"SmolLM2-135M fp32, prompt {args.prompt_tokens} tokens, {args.steps} decode steps")
    print(f"{'threads':>7} | {'prefill s':>9} | {'step s':>7} | {'prefill x':>9} | {'step x':>6}")
    for r in rows:
        r["prefill_speedup"] = base["prefill_s"] / r["prefill_s"]
        r["step_speedup"] = base["step_s"] / r["step_s"]
        print(f"{r['threads']:>7} | {r['prefill_s']:>9.3f} | {r['step_s']:>7.3f} | "
              f"{r['prefill_speedup']:>9.2f} | {r['step_speedup']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
