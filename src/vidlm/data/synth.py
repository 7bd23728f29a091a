"""``vidlm data synth``: generate a video QA dataset of coloured shapes with exact ground truth.

Each clip gets one question; the split is balanced: half spatial, half temporal,
kinds equally often within a family and answers equally often within a kind
(see :mod:`vidlm.data.synth_questions`). Records are LLaVA JSON plus ground truth::

    {"id": "test-000003", "video": "videos/test/test-000003.mp4",
     "conversations": [{"from": "human", "value": "<video>\\nWhich direction does the red circle
                        move? Answer with one of: left, right, up, down."},
                       {"from": "gpt", "value": "left"}],
     "family": "temporal", "kind": "direction", "question": "...", "answer": "left",
     "choices": ["left", "right", "up", "down"], "chance": 0.25, "scene": {...}}

``train.json``, ``val.json`` and ``test.json`` are written to the output folder with
video paths relative to it, plus ``synth_info.json`` (the settings and chance levels).
Everything derives from ``seed``: the same settings give byte-identical JSON and
identical frames.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidlm.data.synth_questions import QUESTION_KINDS, Geometry, Question, build_question, kinds_of
from vidlm.data.synth_render import PIX_FMTS, render_frames, write_mp4
from vidlm.data.synth_scene import Scene
from vidlm.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_FRAMES = 12  # the "bounce" kind needs room for 3 bounces at least 4 frames apart
FAMILIES: tuple[str, ...] = ("spatial", "temporal")


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one generated dataset. Sizes must be even (H.264 4:2:0)."""

    num_train: int = 1000
    num_val: int = 100
    num_test: int = 200
    seed: int = 0
    size: int = 64
    fps: int = 8
    seconds: float = 4.0
    crf: int = 18
    pix_fmt: str = "yuv444p"

    @property
    def num_frames(self) -> int:
        return round(self.seconds * self.fps)

    def count(self, split: str) -> int:
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]

    def validate(self) -> None:
        problems = []
        if min(self.num_train, self.num_val, self.num_test) < 0:
            problems.append("split sizes must be >= 0")
        if self.size % 2 or not 32 <= self.size <= 512:
            problems.append(f"--size must be even and in [32, 512], got {self.size}")
        if not 1 <= self.fps <= 60:
            problems.append(f"--fps must be in [1, 60], got {self.fps}")
        if not 1.0 <= self.seconds <= 60.0:
            problems.append(f"--seconds must be in [1, 60], got {self.seconds}")
        if self.num_frames < MIN_FRAMES:
            problems.append(f"clips need at least {MIN_FRAMES} frames (three bounces 4 frames "
                            f"apart must fit), got {self.num_frames} (fps x seconds)")
        if not 0 <= self.crf <= 51:
            problems.append(f"--crf must be in [0, 51], got {self.crf}")
        if self.pix_fmt not in PIX_FMTS:
            problems.append(f"--pix-fmt must be one of {', '.join(PIX_FMTS)}, got {self.pix_fmt!r}")
        if problems:
            raise DataError("invalid synth settings: " + "; ".join(problems))


def chance_levels() -> dict[str, Any]:
    """Chance accuracy per kind (uniform guess among the choices) and per family (mean of kinds)."""
    per_kind = {k.name: k.chance for k in QUESTION_KINDS.values()}
    per_family = {f: float(np.mean([per_kind[k.name] for k in kinds_of(f)])) for f in FAMILIES}
    return {"kind": per_kind, "family": per_family}


def split_plan(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``n`` (kind, answer) pairs: families alternate, kinds and answers cycle; then shuffled."""
    counters: dict[str, int] = {}
    plan = []
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        kinds = kinds_of(family)
        kind = kinds[(i // len(FAMILIES)) % len(kinds)]
        j = counters.get(kind.name, 0)
        counters[kind.name] = j + 1
        plan.append((kind.name, kind.answers[j % len(kind.answers)]))
    order = rng.permutation(n)
    return [plan[i] for i in order]


def _record(split: str, index: int, scene: Scene, q: Question) -> dict[str, Any]:
    rid = f"{split}-{index:06d}"
    return {
        "id": rid,
        "video": f"videos/{split}/{rid}.mp4",
        "conversations": [
            {"from": "human", "value": f"<video>\n{q.prompt()}"},
            {"from": "gpt", "value": q.answer},
        ],
        "family": q.family,
        "kind": q.kind,
        "question": q.text,
        "answer": q.answer,
        "choices": list(q.choices),
        "chance": q.chance,
        "scene": scene.to_dict(),
    }


def scene_fingerprint(scene: dict[str, Any]) -> str:
    """A hash of a record's scene metadata; equal scenes have equal fingerprints."""
    return hashlib.sha256(json.dumps(scene, sort_keys=True).encode()).hexdigest()


def generate_split(
    cfg: SynthConfig, split: str, out: Path, *, seen: set[str], progress: bool = True
) -> list[dict[str, Any]]:
    """Render, encode and describe one split; ``seen`` (fingerprints) keeps splits disjoint."""
    split_id = SPLITS.index(split)
    plan = split_plan(cfg.count(split), np.random.default_rng([cfg.seed, split_id]))
    g = Geometry(size=cfg.size, fps=cfg.fps, num_frames=cfg.num_frames)
    (out / "videos" / split).mkdir(parents=True, exist_ok=True)
    records = []
    for i, (kind, answer) in enumerate(
        tqdm(plan, desc=f"synth {split}", unit="clip", disable=not progress)
    ):
        for attempt in range(100):
            rng = np.random.default_rng([cfg.seed, split_id, i, attempt])
            scene, q = build_question(kind, rng, answer, g)
            rec = _record(split, i, scene, q)
            fp = scene_fingerprint(rec["scene"])
            if fp not in seen:
                break
        else:
            raise DataError(f"{out}: could not make a new {kind} scene for {split} #{i}")
        seen.add(fp)
        write_mp4(
            render_frames(scene), out / rec["video"], fps=cfg.fps, crf=cfg.crf, pix_fmt=cfg.pix_fmt
        )
        records.append(rec)
    return records


def _records_json(records: list[dict[str, Any]]) -> str:
    """A JSON list with one record per line (compact, stable, diff-friendly)."""
    return "[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in records) + "\n]\n"


def generate_dataset(out: str | Path, cfg: SynthConfig, *, progress: bool = True) -> dict[str, int]:
    """Write the three splits and ``synth_info.json`` under ``out``; returns records per split."""
    cfg.validate()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create output folder: {exc}") from exc
    seen: set[str] = set()
    counts = {}
    for split in SPLITS:
        records = generate_split(cfg, split, out, seen=seen, progress=progress)
        (out / f"{split}.json").write_text(_records_json(records))
        counts[split] = len(records)
    info = {
        "config": asdict(cfg),
        "num_frames": cfg.num_frames,
        "counts": counts,
        "chance": chance_levels(),
        "kinds": {
            k.name: {"family": k.family, "answers": list(k.answers)}
            for k in QUESTION_KINDS.values()
        },
    }
    (out / "synth_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return counts


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vidlm data synth``."""
    d = SynthConfig()
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=d.num_train, help="training clips")
    parser.add_argument("--num-val", type=int, default=d.num_val, help="validation clips")
    parser.add_argument("--num-test", type=int, default=d.num_test, help="test clips")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of everything generated")
    parser.add_argument(
        "--size", type=int, default=d.size, help="frame width and height in pixels (even)"
    )
    parser.add_argument("--fps", type=int, default=d.fps, help="frames per second")
    parser.add_argument("--seconds", type=float, default=d.seconds, help="clip duration")
    parser.add_argument("--crf", type=int, default=d.crf, help="x264 quality (lower is better)")
    parser.add_argument(
        "--pix-fmt",
        choices=PIX_FMTS,
        default=d.pix_fmt,
        help="yuv444p keeps colours exact; yuv420p plays in browsers",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    cfg = SynthConfig(
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        seed=args.seed,
        size=args.size,
        fps=args.fps,
        seconds=args.seconds,
        crf=args.crf,
        pix_fmt=args.pix_fmt,
    )
    counts = generate_dataset(args.out, cfg, progress=not args.no_progress)
    chance = chance_levels()["family"]
    print(
        f"wrote {counts['train']} train, {counts['val']} val and {counts['test']} test clips to "
        f"{args.out} (chance: spatial {chance['spatial']:.3f}, temporal {chance['temporal']:.3f})"
    )
    return 0
