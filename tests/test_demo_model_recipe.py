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
from vidlm.testing import tiny_videolm

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


def test_scene_targets_measure_area_position_and_count(clips: Path) -> None:
    """Stage 0's targets: per class, the pixel area, the area-weighted x and y and the
    number of centres; summed over a frame's patches they give each object's pixel
    count, centroid and instance count, and pooling them is the mean of the patches'."""
    pretrain = load("pretrain_tower")
    k = pretrain.NUM_OBJECT_CLASSES
    rec = next(r for r in json.loads((clips / "train.json").read_text()) if r["kind"] == "count")
    scene, t, patch = rec["scene"], 5, 8
    targets = pretrain.scene_targets(scene, t, patch)  # (64, 4 * K)
    assert targets.shape == (64, pretrain.NUM_TARGETS)
    area, area_x, area_y, centres = targets.sum(0).unflatten(0, (4, k))
    labels = pretrain.label_map(scene, t)
    size = labels.shape[0]
    for cls in range(1, k + 1):
        ys, xs = np.nonzero(labels == cls)
        assert area[cls - 1] * patch**2 == pytest.approx(len(xs), abs=1e-3)
        if len(xs):
            assert area_x[cls - 1] / area[cls - 1] == pytest.approx((xs.mean() + 0.5) / size)
            assert area_y[cls - 1] / area[cls - 1] == pytest.approx((ys.mean() + 0.5) / size)
    objects = pretrain.visible_objects(scene, t)
    assert centres.sum() == len(objects) >= 1
    for _, cls in objects:
        assert centres[cls - 1] >= 1
    levels = pretrain.pool_levels(targets[None], 4, (1, 1))
    assert [x.shape[1] for x in levels] == [64, 4, 1]
    torch.testing.assert_close(levels[2][0, 0], targets.mean(0))
    torch.testing.assert_close(levels[1][0, 0], targets.unflatten(0, (8, 8))[:4, :4].mean((0, 1)))


def test_stage0_is_reproducible_from_its_seed(clips: Path) -> None:
    """Stage 0 run twice with one seed (as ``main`` seeds it) gives bit-identical tower
    weights and losses; another seed gives others."""
    base, pretrain = load("build_base"), load("pretrain_tower")
    fields = {k: v for k, v in base.VARIANTS["slowfast"].items() if k != "name"}
    frames, targets = pretrain.load_frames(clips, clips=4, per_clip=2, patch=8, seed=0)

    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
        model = tiny_videolm("slowfast", image_size=64, patch_size=8, seed=0, feature_layer=-1,
                             **fields)
        torch.manual_seed(seed)
        _, losses = pretrain.train(model, frames, targets, steps=4, batch=4, lr=2e-3, seed=seed)
        return model.vision_tower.encoder.state_dict(), losses

    untrained = tiny_videolm("slowfast", image_size=64, patch_size=8, seed=0, feature_layer=-1,
                             **fields)
    (first, losses), (again, losses_again), (other, _) = run(0), run(0), run(1)
    assert losses == losses_again
    assert not all(torch.equal(v, first[k])  # it trained
                   for k, v in untrained.vision_tower.encoder.state_dict().items())
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


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


def test_reallocated_rows_run_the_ablation_connectors_on_the_trained_weights() -> None:
    """run.py's ``--reallocate`` rows are the trained SlowFast weights in each ablation's
    connector config (pooling, projection and output RMS alike)."""
    from vidlm.model.connectors import build_connector, connector_config_from_dict

    base, run = load("build_base"), load("run")
    fields = {k: v for k, v in base.VARIANTS["slowfast"].items() if k != "name"}
    model = tiny_videolm("slowfast", image_size=64, patch_size=8, num_frames=base.NUM_FRAMES,
                         **fields)
    torch.manual_seed(1)
    feats = torch.randn(base.NUM_FRAMES, model.vision_tower.num_patches,
                        model.vision_tower.hidden_size)
    rows = run.reallocations(model)
    assert sorted(rows) == ["fast_only", "slow_only", "uniform"]
    for name, tokens_of in rows.items():
        cfg = connector_config_from_dict(dict(base.VARIANTS[name]))
        reference = build_connector(cfg, vision_dim=model.vision_tower.hidden_size,
                                    lm_dim=model.language_model.config.hidden_size)
        reference.load_state_dict(model.connector.state_dict())
        expected = reference(feats[None], grid=model.vision_tower.grid)[0]
        got = tokens_of(model, feats)
        assert got.shape == (cfg.num_tokens(base.NUM_FRAMES, (8, 8)), expected.shape[1])
        torch.testing.assert_close(got, expected)
        rms = got.pow(2).mean(-1).sqrt()
        torch.testing.assert_close(rms, torch.full_like(rms, fields["output_rms"]), rtol=1e-3,
                                   atol=0)


def test_captions_state_what_the_questions_ask(clips: Path) -> None:
    """The align stage's captions (make_captions.py), written from the scene truth, agree
    with every record's answer: the asked colour, shape, count, direction, bounces,
    colour change and order of appearance."""
    captions = load("make_captions")
    records = json.loads((clips / "train.json").read_text())
    seen = set()
    for rec in records:
        text = captions.caption(rec["scene"])
        sentences = text.split(". ")
        kind, answer, question = rec["kind"], rec["answer"], rec["question"]
        seen.add(kind)
        target = next(o for o in rec["scene"]["objects"] if o["role"] == "target")
        if kind == "color":
            assert f"{answer} {target['shape']}," in text, (question, text)
        elif kind == "shape":
            assert f"{target['color']} {answer}," in text, (question, text)
        elif kind == "count":
            shape = target["shape"]
            assert sum(s.split(",")[0].endswith(f" {shape}") for s in sentences) == int(answer)
        elif kind == "direction":
            assert f"{target['color']} {target['shape']}, " in text
            assert f"moves {answer}" in text, (answer, text)
        elif kind == "bounce":
            assert f"bounces {answer} time" in text, (answer, text)
        elif kind == "color_change":
            assert ("turns" in text) == (answer != "no"), (answer, text)
            if answer != "no":
                assert f" {answer}." in text or f" {answer}," in text, (answer, text)
        elif kind == "after":
            order = [s.split(",")[0].split()[-1] for s in sentences]
            named = question.split("the ")[1].split()[0]
            assert order[order.index(named) + 1] == answer, (question, text)
    assert len(seen) == 7
    record = captions.caption_record(records[0])
    assert record["video"] == records[0]["video"]
    assert record["conversations"][0]["value"] == f"<video>\n{captions.PROMPT}"
    both = captions.qa_caption_record(records[0])["conversations"]
    assert both[:2] == records[0]["conversations"]  # the answer before the caption
    assert [t["from"] for t in both] == ["human", "gpt", "human", "gpt"]
    assert both[2]["value"] == captions.PROMPT and "<video>" not in both[2]["value"]
    assert both[3]["value"] == captions.caption(records[0]["scene"])


def test_paired_comparison_counts_discordant_clips_and_sign_tests_them(tmp_path: Path) -> None:
    compare = load("compare")
    # Exact binomial values: 0:5 is 2/32; 10:18 from the committed shipped-model result.
    assert compare.sign_test(0, 5) == pytest.approx(2 / 32)
    assert compare.sign_test(3, 3) == 1.0 and compare.sign_test(0, 0) == 1.0
    assert compare.sign_test(10, 18) == pytest.approx(0.184933, abs=1e-6)

    def rows(variant: str, correct: list[bool]) -> list[dict[str, object]]:
        fams = ["spatial", "spatial", "temporal", "temporal"]
        return [{"id": f"c{i}", "variant": variant, "family": f, "correct": c}
                for i, (f, c) in enumerate(zip(fams, correct, strict=True))]

    for name, correct in {"a": [True, True, False, True], "b": [True, False, True, True]}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"rows": rows(name, correct)}))
    replies = compare.replies_by_variant([tmp_path / "a.json", tmp_path / "b.json"])
    table = compare.paired(replies["a"], replies["b"])
    assert table["spatial"] == {"n": 2, "baseline": 1.0, "other": 0.5, "only_baseline": 1,
                                "only_other": 0, "p": 1.0}
    assert (table["temporal"]["only_baseline"], table["temporal"]["only_other"]) == (0, 1)
    assert table["all"]["n"] == 4 and table["all"]["baseline"] == 0.75
    with pytest.raises(ValueError, match="share no clip ids"):
        compare.paired(replies["a"], {})


RESULTS = EXPERIMENT / "results"
# docs/demo_model.md's table row -> (per-clip result file, variant inside it)
DOC_ROWS = {
    "**slowfast (shipped)**": ("test_slowfast_2026-12-02.json", "slowfast"),
    "uniform, trained separately": ("test_uniform_2026-12-03.json", "uniform"),
    "slow_only, trained separately": ("test_slow_only_2026-12-03.json", "slow_only"),
    "fast_only, trained separately": ("test_fast_only_2026-12-03.json", "fast_only"),
}


def table_cells(row: str) -> list[str]:
    """A markdown table row's cells after its label, bold marks dropped."""
    return [cell.strip().strip("*") for cell in row.strip().strip("|").split("|")][1:]


@pytest.mark.parametrize("label", sorted(DOC_ROWS))
def test_the_docs_results_table_matches_the_committed_per_clip_results(label: str) -> None:
    """Every trained row of the results table is run.py's own row for its committed file."""
    file, variant = DOC_ROWS[label]
    summary = json.loads((RESULTS / file).read_text())["summary"]
    rendered = load("run").markdown(summary, [variant]).splitlines()[2]
    doc = (EXPERIMENT.parents[1] / "docs" / "demo_model.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"docs/demo_model.md has {len(rows)} rows labelled {label!r}"
    assert table_cells(rows[0]) == table_cells(rendered)
