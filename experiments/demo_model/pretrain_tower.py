"""Stage 0 of the demo model: pretrain the from-scratch vision tower on what each patch shows.

    python experiments/demo_model/pretrain_tower.py --out runs/demo/tower.safetensors

The demo's stand-in for a pretrained CLIP: no vision weights can be downloaded here, and a
random tower trained only through a frozen 135M LM's answer tokens does not learn to see
in a CPU budget (docs/demo_model.md). So the tower first learns, with a linear head
that is thrown away, to label every 8x8 patch of a decoded training frame with what
covers it: background or one of the 12 (shape, colour) pairs, as the fractions of its
pixels (soft cross-entropy). The labels come from the records' ``scene`` ground truth,
rasterised with the renderer that drew the clips; only the ``train`` split is used.

The tower keeps its architecture and ``feature_layer`` (the head reads the features
the connector will read); ``build_base.py --tower`` starts every variant from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from vidlm.data.synth_render import shape_mask
from vidlm.data.synth_scene import COLOR_NAMES
from vidlm.video import Frames, read, uniform

SHAPES = ("square", "circle", "triangle")
NUM_CLASSES = 1 + len(SHAPES) * len(COLOR_NAMES)  # background + (shape, colour)


def decode_all(path: Path, num_frames: int) -> Frames:
    """All ``num_frames`` frames of a clip, with their stream indices (vidlm's reader)."""
    return read(path, uniform(num_frames))


def color_at(obj: dict[str, Any], t: int) -> int:
    color = obj["color"]
    for change in obj["color_changes"]:
        if change["frame"] <= t:
            color = change["to"]
    return COLOR_NAMES.index(color)


def label_map(scene: dict[str, Any], t: int) -> np.ndarray:
    """``(H, W)`` class ids of frame ``t``; later objects on top, as rendered."""
    size = scene["size"]
    labels = np.zeros((size, size), dtype=np.int64)
    for obj in scene["objects"]:
        first_last = obj["visible_frames"]
        if not first_last or not first_last[0] <= t <= first_last[1]:
            continue
        cx, cy = obj["centers"][t]
        mask = shape_mask(obj["shape"], cx, cy, obj["radius"], size)
        labels[mask] = 1 + SHAPES.index(obj["shape"]) * len(COLOR_NAMES) + color_at(obj, t)
    return labels


def patch_targets(labels: np.ndarray, patch: int) -> torch.Tensor:
    """``(H, W)`` ids -> ``(h*w, C)``: the fraction of each patch's pixels per class."""
    onehot = F.one_hot(torch.from_numpy(labels), NUM_CLASSES).float()  # (H, W, C)
    pooled = F.avg_pool2d(onehot.permute(2, 0, 1)[None], patch)  # (1, C, h, w)
    return pooled[0].flatten(1).T


def load_frames(data: Path, *, clips: int, per_clip: int, patch: int, seed: int,
                split: str = "train") -> tuple[np.ndarray, torch.Tensor]:
    """``per_clip`` random frames of the first ``clips`` clips, with patch targets."""
    records = json.loads((data / f"{split}.json").read_text())[:clips]
    rng = np.random.default_rng(seed)
    frames, targets = [], []
    for rec in tqdm(records, desc="decode", unit="clip"):
        video = decode_all(data / rec["video"], rec["scene"]["num_frames"])
        for t in rng.choice(len(video.frames), size=min(per_clip, len(video.frames)),
                            replace=False):
            frames.append(video.frames[t])
            labels = label_map(rec["scene"], int(video.indices[t]))
            targets.append(patch_targets(labels, patch))
    return np.stack(frames), torch.stack(targets)


def train(model: Any, frames: np.ndarray, targets: torch.Tensor, *, steps: int, batch: int,
          lr: float, seed: int) -> tuple[torch.nn.Module, list[float]]:
    """AdamW on the tower + a linear patch head, one-cycle schedule; returns the head and
    the losses."""
    tower = model.vision_tower
    tower.config.frozen = False
    tower.encoder.train()
    for p in tower.encoder.parameters():
        p.requires_grad_(True)
    head = torch.nn.Linear(tower.encoder.config.hidden_size, NUM_CLASSES)
    params = [*tower.encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in (bar := tqdm(range(steps), desc="pretrain tower", unit="step")):
        idx = torch.randint(len(frames), (batch,), generator=gen)
        feats = tower(tower.preprocess(frames[idx.numpy()]))  # (B, h*w, D)
        logits = head(feats)  # (B, h*w, C)
        loss = -(targets[idx] * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    tower.eval()
    return head, losses


@torch.no_grad()
def object_patch_accuracy(model: Any, head: torch.nn.Module, frames: np.ndarray,
                          targets: torch.Tensor) -> float:
    """Argmax accuracy on patches mostly covered by one object (held-out frames)."""
    logits = head(model.vision_tower(model.vision_tower.preprocess(frames)))
    share, label = targets.max(-1)
    keep = (label > 0) & (share > 0.5)
    return float((logits.argmax(-1)[keep] == label[keep]).float().mean())


def random_base(seed: int) -> Any:
    """``build_base.py``'s slowfast model with its random tower (the file beside this one)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_base", Path(__file__).with_name(
        "build_base.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build("slowfast", seed=seed)


def main() -> None:
    import vidlm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--base", type=Path, default=None,
                        help="a checkpoint whose tower is trained (default: the random tower "
                             "build_base.py builds with --seed)")
    parser.add_argument("--out", type=Path, required=True, help="tower weights (.safetensors)")
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--frames-per-clip", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = vidlm.load(args.base) if args.base else random_base(args.seed)
    torch.manual_seed(args.seed)
    patch = model.vision_tower.encoder.config.patch_size
    frames, targets = load_frames(args.data, clips=args.clips, per_clip=args.frames_per_clip,
                                  patch=patch, seed=args.seed)
    head, losses = train(model, frames, targets, steps=args.steps, batch=args.batch, lr=args.lr,
                         seed=args.seed)
    val_frames, val_targets = load_frames(args.data, clips=48, per_clip=4, patch=patch,
                                          seed=args.seed, split="val")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.vision_tower.encoder.state_dict().items()}
    save_file(state, str(args.out))
    log = {"frames": len(frames), "steps": args.steps, "batch": args.batch, "lr": args.lr,
           "loss_first_50": float(np.mean(losses[:50])),
           "loss_last_50": float(np.mean(losses[-50:])),
           "val_object_patch_accuracy": object_patch_accuracy(model, head, val_frames, val_targets)}
    args.out.with_suffix(".json").write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps(log))


if __name__ == "__main__":
    main()
