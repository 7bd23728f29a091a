"""The demo model's recipe parts that are not ``vidlm train``: stage 0's patch labels and
the variants' connectors (experiments/demo_model)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from vidlm.data.synth import SynthConfig, generate_dataset
from vidlm.data.synth_scene import COLOR_NAMES, COLORS

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "demo_model"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"demo_{name}", EXPERIMENT / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, SynthConfig(num_train=14, num_val=0, num_test=0, seed=3), progress=False)
    return out


def test_patch_labels_match_the_decoded_pixels(clips: Path) -> None:
    """Stage 0's labels, rasterised from the records' scene truth, name the colour the
    decoded video shows: every labelled pixel has its class's palette colour, every
    background pixel is grey."""
    pretrain = load("pretrain_tower")
    palette = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.int64)
    kinds = set()
    for rec in json.loads((clips / "train.json").read_text()):
        kinds.add(rec["kind"])
        decoded = pretrain.decode_all(clips / rec["video"], rec["scene"]["num_frames"])
        video = decoded.frames.astype(np.int64)
        assert list(decoded.indices) == list(range(rec["scene"]["num_frames"]))
        for t in (0, len(video) // 2, len(video) - 1):
            labels = pretrain.label_map(rec["scene"], t)
            fg = labels > 0
            colour = (labels[fg] - 1) % len(COLOR_NAMES)
            pixels = video[t][fg]  # (P, 3)
            nearest = np.abs(pixels[:, None] - palette[None]).sum(-1).argmin(-1)
            assert (nearest == colour).mean() >= 0.99, rec["id"]  # H.264 edges aside
            assert np.median(np.abs(pixels - palette[colour])) <= 8, rec["id"]
            bg = video[t][~fg]
            assert np.percentile(bg.max(-1) - bg.min(-1), 99) <= 16, rec["id"]  # grey
            if rec["kind"] == "count":
                shapes = {(c - 1) // len(COLOR_NAMES) for c in np.unique(labels[fg])}
                assert shapes  # something to count is labelled
    assert len(kinds) == 7  # every question kind was checked


def test_patch_targets_are_pixel_fractions() -> None:
    pretrain = load("pretrain_tower")
    labels = np.zeros((16, 16), dtype=np.int64)
    labels[:4, :8] = 5  # half of the top-left 8x8 patch
    targets = pretrain.patch_targets(labels, 8)  # (4 patches, C)
    assert targets.shape == (4, pretrain.NUM_CLASSES)
    torch.testing.assert_close(targets.sum(-1), torch.ones(4))
    assert targets[0, 5] == 0.5 and targets[0, 0] == 0.5 and targets[1:, 0].eq(1).all()


def test_variants_share_initial_weights_and_spend_the_stated_tokens() -> None:
    from vidlm.model.connectors import build_connector, connector_config_from_dict

    base = load("build_base")
    tokens = {}
    states = {}
    for name, spec in base.VARIANTS.items():
        cfg = connector_config_from_dict(dict(spec))
        tokens[name] = cfg.num_tokens(base.NUM_FRAMES, (8, 8))
        torch.manual_seed(0)
        states[name] = build_connector(cfg, vision_dim=96, lm_dim=576).state_dict()
    assert tokens == {"slowfast": 32, "uniform": 32, "slow_only": 16, "fast_only": 16}
    ref = states["slowfast"]
    for state in states.values():
        assert state.keys() == ref.keys()
        assert all(torch.equal(state[k], ref[k]) for k in ref)
