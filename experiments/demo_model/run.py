"""Held-out accuracy of demo models by question family, against chance.

    python experiments/demo_model/run.py --data data/demo --split test \
        --model slowfast=runs/demo/slowfast/sft/final --model uniform=runs/demo/uniform/sft/final \
        [--reallocate slowfast] [--json outputs/demo_model_eval.json]

Each ``--model NAME=PATH`` is a separately trained model, evaluated with its own
connector (``--model PATH`` alone names it by its folder; the default is the shipped
model). Each clip is decoded and encoded by the vision tower once per model, and the LM
answers with greedy decoding. Accuracy is exact match of the normalised reply against
the record's one-word answer; ``chance`` is the exact expectation of a uniform guess
among each question's allowed answers.

``--reallocate NAME`` also scores that SlowFast model's *same* weights with its tokens
re-allocated at inference: its connector rebuilt with the trained ablations' configs
(``build_base.VARIANTS``; 16 frames sampled uniformly, an 8x8 grid per frame):

* ``NAME:uniform``   — 8 uniform frames at 2x2 each: per-frame tokens at SlowFast's budget.
* ``NAME:slow_only`` — SlowFast's slow pathway alone.
* ``NAME:fast_only`` — SlowFast's fast pathway alone.

These rows are not trained models; they show what the trained weights use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

Tokens = Callable[[Any, torch.Tensor], torch.Tensor]  # (model, features (T, N, D)) -> (L, D_lm)
FAMILIES = ("spatial", "temporal")
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "src" / "vidlm" / "assets" / "demo_model"


def reallocated(model: Any, **changes: Any) -> Tokens:
    """The model's trained connector, its config changed by ``changes`` (same weights).

    The copy runs the connector's own pooling, projection and output scaling, so a
    re-allocated row is exactly what a connector built with that config would emit.
    """
    from vidlm.model.connectors import build_connector

    config = dataclasses.replace(model.config.connector, **changes)
    connector = build_connector(config, vision_dim=model.vision_tower.hidden_size,
                                lm_dim=model.language_model.config.hidden_size)
    connector.load_state_dict(model.connector.state_dict())
    connector.to(next(model.connector.parameters()).dtype).eval()

    def tokens(model: Any, feats: torch.Tensor) -> torch.Tensor:
        param = next(connector.parameters())
        return connector(feats[None].to(param.dtype), grid=model.vision_tower.grid)[0]

    return tokens


def slowfast_tokens(model: Any, feats: torch.Tensor) -> torch.Tensor:
    """The model's own connector (whatever it is)."""
    return model.visual_tokens_from_features(feats)


def reallocations(model: Any) -> dict[str, Tokens]:
    """A SlowFast model's weights with its tokens re-allocated (the trained variants' configs):
    uniform per-frame tokens at the same budget, and each pathway alone."""
    cfg = model.config.connector
    per_frame = cfg.slow_tokens_per_frame(model.vision_tower.grid)
    budget_frames = max(1, model.num_visual_tokens(model.config.sampling.num_frames) // per_frame)
    return {"uniform": reallocated(model, pathways="slow", slow_frames=budget_frames),
            "slow_only": reallocated(model, pathways="slow"),
            "fast_only": reallocated(model, pathways="fast")}


def normalise(text: str) -> str:
    return text.strip().lower().rstrip(".!").strip()


def balanced_subset(records: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The first ``limit`` records taking families in turn (records are already shuffled)."""
    if limit is None or limit >= len(records):
        return records
    by_family = {f: [r for r in records if r["family"] == f] for f in FAMILIES}
    out: list[dict[str, Any]] = []
    for i in range(limit):
        fam = by_family[FAMILIES[i % 2]]
        if i // 2 < len(fam):
            out.append(fam[i // 2])
    return out


@torch.no_grad()
def evaluate(model: Any, records: list[dict[str, Any]], media_root: Path, *,
             variants: dict[str, Tokens], max_new_tokens: int = 3, progress: bool = True
             ) -> list[dict[str, Any]]:
    """One row per (record, variant) with the reply and whether it matched."""
    from vidlm.model.videolm import VisualTokens

    rows = []
    for rec in tqdm(records, desc="eval", unit="clip", disable=not progress):
        frames = model.read_video(media_root / rec["video"])
        feats = model.features_of_frames(frames.frames)  # (T, N, D)
        question = rec["conversations"][0]["value"].replace("<video>\n", "")
        for name, to_tokens in variants.items():
            tokens = to_tokens(model, feats)
            visual = VisualTokens(tokens=tokens, num_frames=len(frames.frames))
            reply = model.ask(visual, question, max_new_tokens=max_new_tokens)
            rows.append({"id": rec["id"], "variant": name, "family": rec["family"],
                         "kind": rec["kind"], "answer": rec["answer"], "reply": reply,
                         "tokens": int(tokens.shape[0]),
                         "correct": normalise(reply) == rec["answer"]})
    return rows


def summarise(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per variant x family (and kind), plus the exact chance expectation."""
    acc: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    tokens: dict[str, int] = {}
    for r in rows:
        acc[r["variant"]][r["family"]].append(r["correct"])
        acc[r["variant"]][r["kind"]].append(r["correct"])
        acc[r["variant"]]["all"].append(r["correct"])
        tokens[r["variant"]] = r["tokens"]
    table: dict[str, Any] = {v: {k: {"accuracy": sum(c) / len(c), "n": len(c)}
                                 for k, c in groups.items()} for v, groups in acc.items()}
    chance: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        for key in (rec["family"], rec["kind"], "all"):
            chance[key].append(rec["chance"])
    table["chance"] = {k: {"accuracy": sum(c) / len(c), "n": len(c)} for k, c in chance.items()}
    return {"accuracy": table, "tokens": tokens}


def markdown(summary: dict[str, Any], variants: list[str]) -> str:
    table = summary["accuracy"]
    kinds = sorted({k for v in table.values() for k in v} - {*FAMILIES, "all"})
    cols = ["all", *FAMILIES, *kinds]
    lines = ["| variant | visual tokens | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for name in [*variants, "chance"]:
        row = table[name]
        cells = [f"{row[c]['accuracy']:.3f}" if c in row else "-" for c in cols]
        lines.append(f"| {name} | {summary['tokens'].get(name, '-')} | " + " | ".join(cells) + " |")
    counts = table["chance"]
    lines.append("| n (clips) | | " + " | ".join(str(counts[c]["n"]) if c in counts else "-"
                                                 for c in cols) + " |")
    return "\n".join(lines)


def named_model(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named by its folder, or its parent's for ``.../sft/final``)."""
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name, Path(path)
    path = Path(spec)
    return (path.parents[1].name if path.name == "final" else path.name), path


def main() -> None:
    import vidlm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=named_model, default=None,
                        help="NAME=PATH (repeatable); default: the shipped model")
    parser.add_argument("--reallocate", action="append", default=[],
                        help="also score this model's weights with re-allocated tokens")
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="balanced subset size")
    parser.add_argument("--max-new-tokens", type=int, default=3,
                        help="3 suffices for exact match: answers are at most 2 tokens + EOS")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    models = dict(args.model or [("shipped", DEFAULT_MODEL)])
    unknown = sorted(set(args.reallocate) - set(models))
    if unknown:
        parser.error(f"--reallocate {unknown}: not among the models {sorted(models)}")
    records = balanced_subset(json.loads((args.data / f"{args.split}.json").read_text()),
                              args.limit)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name, path in models.items():
        torch.manual_seed(0)
        model = vidlm.load(path)
        variants: dict[str, Tokens] = {name: slowfast_tokens}
        if name in args.reallocate:
            variants.update({f"{name}:{k}": fn for k, fn in reallocations(model).items()})
        rows += evaluate(model, records, args.data, variants=variants,
                         max_new_tokens=args.max_new_tokens)
        del model
    names = list(dict.fromkeys(r["variant"] for r in rows))
    summary = summarise(rows, records)
    summary.update(models={k: str(v) for k, v in models.items()}, data=str(args.data),
                   split=args.split, clips=len(records),
                   seconds=round(time.perf_counter() - start, 1))
    print(markdown(summary, names))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
