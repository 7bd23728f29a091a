"""Stage 0 of the demo model: pretrain the from-scratch vision tower on what each patch shows.

    python experiments/demo_model/pretrain_tower.py --out runs/demo/tower.safetensors

The demo's stand-in for a pretrained CLIP: no vision weights can be downloaded here, and a
random tower trained only through a frozen 135M LM's answer tokens does not learn to see
in a CPU budget (docs/demo_model.md). So the tower first learns, with a linear head
that is thrown away, what each part of a decoded training frame shows: for each of the
12 (shape, colour) pairs, the fraction of pixels it covers, that fraction weighted by
the pixels' x and y, and how many object centres lie there (``scene_targets``). The
head reads the patches *and* the regions the connector pools (the slow pathway's
``slow_kernel`` blocks, the fast pathway's ``fast_grid``), each level's error scaled
to its targets' spread: a pooled token must still say which objects it averages over
and where they are. The targets come from the records' ``scene`` ground truth,
rasterised with the renderer that drew the clips; only the ``train`` split is used.

The tower keeps its architecture and ``feature_layer`` (the head reads the features
the connector will read); ``build_base.py --tower`` starts every variant from it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from vidlm.data.synth_render import shape_mask
from vidlm.data.synth_scene import COLOR_NAMES, SHAPES
from vidlm.video import Frames, read, uniform

NUM_OBJECT_CLASSES = len(SHAPES) * len(COLOR_NAMES)  # (shape, colour) pairs
NUM_CLASSES = 1 + NUM_OBJECT_CLASSES  # background + (shape, colour)
# per-patch scene targets, one block of NUM_OBJECT_CLASSES each: the class's pixel
# fraction, that fraction times the pixels' x and y (in [0, 1] of the frame), and the
# number of object centres in the patch. All are means over pixels or sums over
# patches, so average pooling commutes with them: a pooled region's target is the mean
# of its patches' targets, and one linear head reads patches and pooled tokens alike.
TARGET_BLOCKS = ("area", "area_x", "area_y", "centres")
NUM_TARGETS = len(TARGET_BLOCKS) * NUM_OBJECT_CLASSES


def decode_all(path: Path, num_frames: int) -> Frames:
    """All ``num_frames`` frames of a clip, with their stream indices (vidlm's reader)."""
    return read(path, uniform(num_frames))


def color_at(obj: dict[str, Any], t: int) -> int:
    color = obj["color"]
    for change in obj["color_changes"]:
        if change["frame"] <= t:
            color = change["to"]
    return COLOR_NAMES.index(color)


def visible_objects(scene: dict[str, Any], t: int) -> list[tuple[dict[str, Any], int]]:
    """``(object, class id)`` of every object visible in frame ``t``, in drawing order."""
    out = []
    for obj in scene["objects"]:
        first_last = obj["visible_frames"]
        if first_last and first_last[0] <= t <= first_last[1]:
            out.append((obj, 1 + SHAPES.index(obj["shape"]) * len(COLOR_NAMES) + color_at(obj, t)))
    return out


def label_map(scene: dict[str, Any], t: int) -> np.ndarray:
    """``(H, W)`` class ids of frame ``t``; later objects on top, as rendered."""
    size = scene["size"]
    labels = np.zeros((size, size), dtype=np.int64)
    for obj, cls in visible_objects(scene, t):
        cx, cy = obj["centers"][t]
        labels[shape_mask(obj["shape"], cx, cy, obj["radius"], size)] = cls
    return labels


def scene_targets(scene: dict[str, Any], t: int, patch: int) -> torch.Tensor:
    """``(h*w, NUM_TARGETS)``: frame ``t``'s per-patch targets (see ``TARGET_BLOCKS``)."""
    labels = label_map(scene, t)
    size = labels.shape[0]
    area = F.one_hot(torch.from_numpy(labels), NUM_CLASSES)[..., 1:].float()  # (H, W, K)
    coord = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    maps = torch.stack([area, area * coord[None, :, None], area * coord[:, None, None]])
    pooled = F.avg_pool2d(maps.permute(0, 3, 1, 2), patch)  # (3, K, h, w)
    grid = size // patch
    centres = torch.zeros(NUM_OBJECT_CLASSES, grid, grid)
    for obj, cls in visible_objects(scene, t):
        cx, cy = obj["centers"][t]
        col, row = min(int(cx // patch), grid - 1), min(int(cy // patch), grid - 1)
        centres[cls - 1, row, col] += 1
    blocks = torch.cat([pooled, centres[None]])  # (4, K, h, w)
    return blocks.flatten(2).permute(2, 0, 1).flatten(1)  # (h*w, 4 * K)


def load_frames(data: Path, *, clips: int, per_clip: int, patch: int, seed: int,
                split: str = "train") -> tuple[np.ndarray, torch.Tensor]:
    """``per_clip`` random frames of the first ``clips`` clips, with their scene targets
    ``(F, h*w, NUM_TARGETS)``."""
    records = json.loads((data / f"{split}.json").read_text())[:clips]
    rng = np.random.default_rng(seed)
    frames, targets = [], []
    for rec in tqdm(records, desc=f"decode {split}", unit="clip"):
        video = decode_all(data / rec["video"], rec["scene"]["num_frames"])
        for t in rng.choice(len(video.frames), size=min(per_clip, len(video.frames)),
                            replace=False):
            frames.append(video.frames[t])
            targets.append(scene_targets(rec["scene"], int(video.indices[t]), patch))
    return np.stack(frames), torch.stack(targets)


def pool_levels(x: torch.Tensor, kernel: int, fast_grid: tuple[int, int]) -> list[torch.Tensor]:
    """``(B, h*w, C)`` per patch -> ``[(B, h*w, C), (B, slow, C), (B, fast, C)]``: the
    patches, then the regions the connector's slow and fast pathways average over."""
    side = math.isqrt(x.shape[1])
    maps = x.transpose(1, 2).unflatten(2, (side, side))  # (B, C, h, w)
    slow = F.avg_pool2d(maps, kernel).flatten(2).transpose(1, 2)
    fast = F.adaptive_avg_pool2d(maps, fast_grid).flatten(2).transpose(1, 2)
    return [x, slow, fast]


class SceneHead(torch.nn.Module):
    """A linear map from tower features to scene targets, applied at every pooling level;
    each level's error is scaled by its targets' standard deviation (fixed from the
    training targets), so the small pooled targets count as much as the patches'."""

    def __init__(self, dim: int, targets: torch.Tensor, kernel: int,
                 fast_grid: tuple[int, int]) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(dim, NUM_TARGETS)
        self.kernel, self.fast_grid = kernel, fast_grid
        stds = [t.flatten(0, 1).std(0).clamp_min(1e-3)
                for t in pool_levels(targets, kernel, fast_grid)]
        self.register_buffer("stds", torch.stack(stds))  # (3 levels, NUM_TARGETS)

    def level_errors(self, feats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``(3,)``: mean squared standardised error per level (patch, slow, fast)."""
        levels = zip(pool_levels(feats, self.kernel, self.fast_grid),
                     pool_levels(targets, self.kernel, self.fast_grid), self.stds, strict=True)
        return torch.stack([(((self.linear(f) - t) / s) ** 2).mean() for f, t, s in levels])


def train(model: Any, frames: np.ndarray, targets: torch.Tensor, *, steps: int, batch: int,
          lr: float, seed: int) -> tuple[SceneHead, list[float]]:
    """AdamW on the tower + a linear scene head, one-cycle schedule; returns the head and
    the losses."""
    tower = model.vision_tower
    tower.config.frozen = False
    tower.encoder.train()
    for p in tower.encoder.parameters():
        p.requires_grad_(True)
    connector = model.connector.config
    head = SceneHead(tower.encoder.config.hidden_size, targets, connector.slow_kernel,
                     tuple(connector.fast_grid))
    params = [*tower.encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in (bar := tqdm(range(steps), desc="pretrain tower", unit="step")):
        idx = torch.randint(len(frames), (batch,), generator=gen)
        feats = tower(tower.preprocess(frames[idx.numpy()]))  # (B, h*w, D)
        loss = head.level_errors(feats, targets[idx]).mean()
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
def evaluate_head(model: Any, head: SceneHead, frames: np.ndarray,
                  targets: torch.Tensor) -> dict[str, float]:
    """On held-out frames: R^2 of the scene targets per level (1 - error / variance) and
    the argmax accuracy of the area block on patches mostly covered by one object."""
    feats = model.vision_tower(model.vision_tower.preprocess(frames))
    errors = head.level_errors(feats, targets)
    out = {f"r2_{name}": round(1 - float(e), 4)
           for name, e in zip(("patch", "slow", "fast"), errors, strict=True)}
    area = targets[..., :NUM_OBJECT_CLASSES]
    share, label = area.max(-1)
    keep = share > 0.5
    pred = head.linear(feats)[..., :NUM_OBJECT_CLASSES].argmax(-1)
    out["object_patch_accuracy"] = round(float((pred[keep] == label[keep]).float().mean()), 4)
    return out


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
           "val": evaluate_head(model, head, val_frames, val_targets)}
    args.out.with_suffix(".json").write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps(log))


if __name__ == "__main__":
    main()
