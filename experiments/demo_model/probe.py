"""Is the answer in the visual tokens at all? A probe on a model's pooled features.

    python experiments/demo_model/probe.py --model runs/demo/slowfast/base --train 1500

A small MLP reads a clip's connector input — the SlowFast-pooled tower features, before
the projector: ``(32, D)`` flattened — plus a one-hot of the question text, and is
trained to give the answer (one softmax over every answer word). Held-out accuracy per
question kind says how much of each answer the tokens carry, apart from whether the
language model learns to read them. Train clips come from ``train.json``; the scores
are on ``val.json`` + ``test.json``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm


@torch.no_grad()
def pooled_features(model: Any, records: list[dict[str, Any]], media_root: Path) -> torch.Tensor:
    """``(R, L * D)``: each clip's pooled features (what the projector would read)."""
    from vidlm.model.connectors.base import split_features

    out = []
    for rec in tqdm(records, desc="features", unit="clip"):
        feats = model.features_of_frames(model.read_video(media_root / rec["video"]).frames)
        patches, _ = split_features(feats[None], model.vision_tower.grid)
        out.append(torch.cat(model.connector.pool_pathways(patches), dim=1).flatten())
    return torch.stack(out).float()


def train_probe(x: torch.Tensor, q: torch.Tensor, y: torch.Tensor, classes: int, *,
                steps: int = 1500, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    probe = torch.nn.Sequential(torch.nn.Linear(x.shape[1] + q.shape[1], 256), torch.nn.GELU(),
                                torch.nn.Linear(256, classes))
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=1e-2)
    inputs = torch.cat([x, q], dim=1)
    for _ in range(steps):
        idx = torch.randint(len(inputs), (128,))
        loss = F.cross_entropy(probe(inputs[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe.eval()


def main() -> None:
    import vidlm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--train", type=int, default=1500)
    args = parser.parse_args()
    model = vidlm.load(args.model)
    train = json.loads((args.data / "train.json").read_text())[:args.train]
    held = json.loads((args.data / "val.json").read_text()) + \
        json.loads((args.data / "test.json").read_text())
    answers = sorted({r["answer"] for r in train + held})
    questions = sorted({r["question"] for r in train + held})

    def encode(records: list[dict[str, Any]]) -> tuple[torch.Tensor, ...]:
        x = pooled_features(model, records, args.data)
        q = F.one_hot(torch.tensor([questions.index(r["question"]) for r in records]),
                      len(questions)).float()
        y = torch.tensor([answers.index(r["answer"]) for r in records])
        return x, q, y

    xt, qt, yt = encode(train)
    xh, qh, yh = encode(held)
    mean, std = xt.mean(0), xt.std(0)
    std = std.clamp_min(0.1 * float(std.mean()))  # near-constant dims must not explode
    probe = train_probe((xt - mean) / std, qt, yt, len(answers))
    with torch.no_grad():
        fit = probe(torch.cat([(xt - mean) / std, qt], dim=1)).argmax(-1)
        pred = probe(torch.cat([(xh - mean) / std, qh], dim=1)).argmax(-1)
    by: dict[str, list[bool]] = defaultdict(list)
    for rec, p, t in zip(held, pred.tolist(), yh.tolist(), strict=True):
        for key in (rec["family"], rec["kind"]):
            by[key].append(p == t)
    table = {k: round(sum(v) / len(v), 3) for k, v in sorted(by.items())}
    print(json.dumps({"model": str(args.model), "train_clips": len(train),
                      "train_accuracy": round(float((fit == yt).float().mean()), 3),
                      "held_out_clips": len(held), "accuracy": table}, indent=1))


if __name__ == "__main__":
    main()
