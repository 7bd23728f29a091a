"""Is the answer in the visual tokens at all? Linear probes on a model's pooled features.

    python experiments/demo_model/probe.py --model runs/demo/slowfast/base --train 2000

For each question kind, an L2-regularised logistic regression reads a clip's connector
input — the SlowFast-pooled tower features, before the projector, ``(L, D)`` — and
gives the answer. Its input is the tokens flattened (what changes over time), plus their
mean crossed with a one-hot of the question (so a linear map can look up the object the
question names). Held-out accuracy per kind says how much of each answer the tokens
carry linearly, apart from whether the language model learns to read them. Train clips
come from ``train.json``; the scores are on ``val.json`` + ``test.json``.
(A shared MLP over all kinds, tried first, memorised its training clips and scored
chance on held-out ones even where these probes read the answer perfectly.)
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
    """``(R, L, D)``: each clip's pooled features (what the projector would read)."""
    from vidlm.model.connectors.base import split_features

    out = []
    for rec in tqdm(records, desc="features", unit="clip"):
        feats = model.features_of_frames(model.read_video(media_root / rec["video"]).frames)
        patches, _ = split_features(feats[None], model.vision_tower.grid)
        out.append(torch.cat(model.connector.pool_pathways(patches), dim=1)[0])  # (L, D)
    return torch.stack(out).float()  # (R, L, D)


def probe_inputs(x: torch.Tensor, questions: list[int], num_questions: int) -> torch.Tensor:
    """``(R, L, D)`` tokens -> ``(R, L*D + D*Q)``: flattened, and the mean x question."""
    q = F.one_hot(torch.tensor(questions), num_questions).float()  # (R, Q)
    crossed = x.mean(1)[:, :, None] * q[:, None, :]  # (R, D, Q)
    return torch.cat([x.flatten(1), crossed.flatten(1)], dim=1)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, *,
                 l2: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch L-BFGS on cross-entropy + ``l2 * |W|^2``; returns ``(W, b)``."""
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=300)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def probe_kind(xt: torch.Tensor, train: list[dict[str, Any]], xh: torch.Tensor,
               held: list[dict[str, Any]]) -> tuple[float, list[bool]]:
    """One kind's probe: ``(train accuracy, per held-out clip correct)``."""
    questions = sorted({r["question"] for r in train + held})
    answers = sorted({r["answer"] for r in train + held})

    def encode(x: torch.Tensor, recs: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = probe_inputs(x, [questions.index(r["question"]) for r in recs], len(questions))
        return inputs, torch.tensor([answers.index(r["answer"]) for r in recs])

    (at, yt), (ah, yh) = encode(xt, train), encode(xh, held)
    mean, std = at.mean(0), at.std(0).clamp_min(1e-4)
    at, ah = (at - mean) / std, (ah - mean) / std  # standardised by the train clips
    weight, bias = fit_logistic(at, yt, len(answers))
    fit = (at @ weight + bias).argmax(-1) == yt
    pred = (ah @ weight + bias).argmax(-1) == yh
    return float(fit.float().mean()), pred.tolist()


def main() -> None:
    import vidlm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--train", type=int, default=2000)
    args = parser.parse_args()
    model = vidlm.load(args.model)
    train = json.loads((args.data / "train.json").read_text())[:args.train]
    held = json.loads((args.data / "val.json").read_text()) + \
        json.loads((args.data / "test.json").read_text())
    xt, xh = pooled_features(model, train, args.data), pooled_features(model, held, args.data)
    by: dict[str, list[bool]] = defaultdict(list)
    fits = {}
    for kind in sorted({r["kind"] for r in held}):
        ti = [i for i, r in enumerate(train) if r["kind"] == kind]
        hi = [i for i, r in enumerate(held) if r["kind"] == kind]
        fits[kind], correct = probe_kind(xt[ti], [train[i] for i in ti], xh[hi],
                                         [held[i] for i in hi])
        for i, ok in zip(hi, correct, strict=True):
            by[held[i]["family"]].append(ok)
            by[kind].append(ok)
    table = {k: round(sum(v) / len(v), 3) for k, v in sorted(by.items())}
    print(json.dumps({"model": str(args.model), "train_clips": len(train),
                      "train_accuracy": {k: round(v, 3) for k, v in fits.items()},
                      "held_out_clips": len(held), "accuracy": table}, indent=1))


if __name__ == "__main__":
    main()
