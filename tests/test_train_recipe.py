"""The training recipe end to end on a tiny real VideoLM and synthetic clips (CPU, fp32)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vidlm
from vidlm.train.metrics import read_log
from vidlm.train.recipe import run_training
from vidlm.train.smoke import SmokeFiles, build_smoke_setup, smoke_config


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SmokeFiles:
    return build_smoke_setup(tmp_path_factory.mktemp("smoke"), num_train=8, num_eval=2)


def losses(output_dir: Path) -> list[float]:
    return [r["loss"] for r in read_log(output_dir / "log.jsonl", "train")]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.rglob("*.safetensors")):
        out.update({f"{f.relative_to(folder)}:{k}": v for k, v in load_file(str(f)).items()})
    return out


def test_loss_goes_down_and_export_loads(files: SmokeFiles, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = smoke_config(files, output_dir=out, max_steps=24, global_batch_size=2,
                       micro_batch_size=2, eval_every=12, save_every=12)
    summary = run_training(cfg)
    seq = losses(out)
    assert len(seq) == 24 and summary["steps"] == 24 and summary["samples"] == 48
    assert sum(seq[-4:]) / 4 < 0.6 * sum(seq[:4]) / 4, seq
    evals = read_log(out / "log.jsonl", "eval")
    assert [e["step"] for e in evals] == [12, 24] and evals[1]["eval_loss"] < evals[0]["eval_loss"]
    first = read_log(out / "log.jsonl", "train")[0]
    assert first["lr"] == pytest.approx(3e-3 / 3)  # warmup 2 steps: lr x 1/3 at step 1
    assert first["grad_norm"] > 0 and first["tokens_per_s"] > 0 and first["samples_per_s"] > 0
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step_00000012",
                                                                          "step_00000024"]
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["max_steps"] == 24 and saved["optim"]["lr"] == 3e-3
    model = vidlm.load(str(out / "final"))
    reply = model.ask(str(files.media_root / "videos/train/train-000000.mp4"), "What?",
                      max_new_tokens=4)
    assert isinstance(reply, str)
    trained = weights(out / "final")
    base = weights(files.base_model)
    assert trained.keys() == base.keys()
    assert any(not torch.equal(trained[k], base[k]) for k in base if "language_model" in k)


def test_align_trains_connector_only(files: SmokeFiles, tmp_path: Path) -> None:
    out = tmp_path / "align"
    run_training(smoke_config(files, output_dir=out, stage="align", max_steps=3,
                              data={"eval": None}))
    trained, base = weights(out / "final"), weights(files.base_model)
    changed = {k.split(":")[1].split(".")[0] for k in base if not torch.equal(trained[k], base[k])}
    assert changed == {"connector"}
    saved = load_file(str(out / "checkpoints/step_00000003/trainable.safetensors"))
    assert saved and all(k.startswith("model.connector.") for k in saved)


def test_bad_records_are_skipped_and_counted(files: SmokeFiles, tmp_path: Path) -> None:
    rows = json.loads(files.train.read_text())[:4]
    rows[1] = {**rows[1], "id": "missing", "video": "videos/train/nope.mp4"}
    rows.append({"id": "broken", "conversations": [{"from": "human", "value": "<video>"}]})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    out = tmp_path / "bad"
    summary = run_training(smoke_config(files, output_dir=out, max_steps=1, export=False,
                                        data={"train": str(bad), "eval": None, "shuffle": False}))
    assert summary["skipped"] == {"invalid record": 1, "bad record": 1}
    skips = read_log(out / "log.jsonl", "skip")
    assert [s["id"] for s in skips] == ["missing"] and "nope.mp4" in skips[0]["reason"]
    assert read_log(out / "log.jsonl", "summary")[0]["skipped_total"] == 2


def test_feature_cache_skips_the_tower_with_identical_losses(files: SmokeFiles,
                                                             tmp_path: Path) -> None:
    from vidlm.feature_cache import FeatureCache

    common = {"max_steps": 4, "export": False, "data": {"eval": None}}
    run_training(smoke_config(files, output_dir=tmp_path / "plain", **common))
    cache_dir = tmp_path / "cache"
    run_training(smoke_config(files, output_dir=tmp_path / "cached",
                              **{**common, "data": {"eval": None,
                                                    "feature_cache": str(cache_dir)}}))
    assert losses(tmp_path / "cached") == losses(tmp_path / "plain")  # 2 epochs of 8 clips
    assert len(FeatureCache(cache_dir)) == 8  # one entry per clip, filled in epoch 1


@pytest.mark.slow
def test_lora_export_merged_and_separate(files: SmokeFiles, tmp_path: Path) -> None:
    from vidlm.train.lora import apply_adapter

    out = tmp_path / "lora"
    run_training(smoke_config(files, output_dir=out, stage="lora", max_steps=3,
                              optim={"lr": 1e-2}, lora={"merge": False}, data={"eval": None}))
    assert (out / "final_adapter" / "adapter_config.json").is_file()
    plain = vidlm.load(str(out / "final"))
    base = weights(files.base_model)
    final = weights(out / "final")
    assert all(torch.equal(final[k], base[k]) for k in base if "language_model" in k)
    adapted = apply_adapter(plain, out / "final_adapter")
    merged_dir = tmp_path / "lora_merged"
    run_training(smoke_config(files, output_dir=merged_dir, stage="lora", max_steps=3,
                              optim={"lr": 1e-2}, data={"eval": None}))
    merged = vidlm.load(str(merged_dir / "final"))
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        a = adapted(ids).logits
        b = merged(ids).logits
    assert torch.allclose(a, b, atol=1e-4)  # same training: separate adapter == merged
    assert not torch.allclose(a, vidlm.load(str(files.base_model))(ids).logits, atol=1e-4)


@pytest.mark.slow
def test_gradient_checkpointing_and_bf16(files: SmokeFiles, tmp_path: Path) -> None:
    common = {"max_steps": 3, "export": False, "data": {"eval": None}}
    run_training(smoke_config(files, output_dir=tmp_path / "fp32", **common))
    run_training(smoke_config(files, output_dir=tmp_path / "gc", **common,
                              model={"path": str(files.base_model),
                                     "gradient_checkpointing": True}))
    run_training(smoke_config(files, output_dir=tmp_path / "bf16", precision="bf16",
                              deterministic=False, **common))
    ref = losses(tmp_path / "fp32")
    assert losses(tmp_path / "gc") == pytest.approx(ref, rel=1e-6)  # recomputation, same math
    assert losses(tmp_path / "bf16") == pytest.approx(ref, rel=5e-2)
    assert losses(tmp_path / "bf16") != ref  # autocast really ran in bf16


@pytest.mark.slow
def test_sft_with_vision_tower_at_its_own_lr(files: SmokeFiles, tmp_path: Path) -> None:
    out = tmp_path / "tower"
    run_training(smoke_config(files, output_dir=out, max_steps=2, train_vision_tower=True,
                              optim={"vision_lr": 1e-3}, data={"eval": None}))
    trained, base = weights(out / "final"), weights(files.base_model)
    changed = [k for k in base if not torch.equal(trained[k], base[k])]
    assert any("vision_tower" in k for k in changed), changed
    assert any("connector" in k for k in changed) and any("language_model" in k for k in changed)


def test_sft_with_a_frozen_language_model_trains_tower_and_connector_only(
        files: SmokeFiles, tmp_path: Path) -> None:
    out = tmp_path / "frozen_lm"
    run_training(smoke_config(files, output_dir=out, max_steps=2, train_vision_tower=True,
                              train_language_model=False, optim={"vision_lr": 1e-3},
                              data={"eval": None}))
    trained, base = weights(out / "final"), weights(files.base_model)
    changed = [k for k in base if not torch.equal(trained[k], base[k])]
    assert any("vision_tower" in k for k in changed) and any("connector" in k for k in changed)
    lm = [k for k in base if "language_model" in k]
    assert lm and not any("language_model" in k for k in changed)  # bit-identical


def test_resume_when_some_trainable_weights_never_get_a_gradient(files: SmokeFiles,
                                                                 tmp_path: Path) -> None:
    """feature_layer=-2: the tower's last layer and post-layernorm are trainable but get no
    gradient, so AdamW keeps no state for them; resuming must still work, and match."""
    import shutil

    out = tmp_path / "tower"
    cfg = smoke_config(files, output_dir=out, max_steps=4, save_every=2, keep_last=2,
                       train_vision_tower=True, optim={"vision_lr": 1e-3},
                       data={"eval": None}, export=False)
    run_training(cfg)
    reference = losses(out)
    shutil.rmtree(out / "checkpoints" / "step_00000004")
    log = out / "log.jsonl"
    log.write_text("".join(line for line in log.read_text().splitlines(keepends=True)
                           if json.loads(line).get("step", 0) <= 2))
    run_training(cfg, resume=True)
    assert losses(out) == reference
