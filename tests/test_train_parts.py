"""Training building blocks: schedule, sampler, stage presets, checkpoints, config."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from vidlm.errors import ConfigError
from vidlm.train import checkpoint as ckpt
from vidlm.train.config import TrainConfig, load_train_config
from vidlm.train.sampler import ResumableSampler
from vidlm.train.schedule import cosine_factor, cosine_with_warmup, warmup_steps_for
from vidlm.train.stages import param_groups


def test_warmup_then_cosine() -> None:
    f = [cosine_factor(s, total_steps=10, warmup=2, min_ratio=0.1) for s in range(10)]
    assert f[0] == pytest.approx(1 / 3) and f[1] == pytest.approx(2 / 3)
    assert f[2] == pytest.approx(1.0)
    assert f[6] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a > b for a, b in itertools.pairwise(f[2:]))
    assert cosine_factor(10, total_steps=10, warmup=2, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_steps_for(1000, warmup_steps=0, warmup_ratio=0.03) == 30
    assert warmup_steps_for(1000, warmup_steps=5, warmup_ratio=0.03) == 5
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = cosine_with_warmup(opt, total_steps=10, warmup=2)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3])


def test_sampler_global_order_is_world_size_independent() -> None:
    one = ResumableSampler(10, seed=3)
    two = [ResumableSampler(10, rank=r, world_size=2, seed=3) for r in range(2)]
    order = list(one)
    assert sorted(order) == list(range(10)) and order != list(range(10))
    per_rank = [list(s) for s in two]
    interleaved = [per_rank[i % 2][i // 2] for i in range(10)]
    assert interleaved == order
    one.set_position(epoch=0, start_item=4)
    assert list(one) == order[4:]
    one.set_position(epoch=1)
    assert list(one) != order  # a new permutation per epoch
    odd = [list(ResumableSampler(5, rank=r, world_size=2, shuffle=False)) for r in range(2)]
    assert odd == [[0, 2, 4], [1, 3, 0]]  # padded by wrapping, equal length per rank


@pytest.fixture(scope="module")
def model():
    from vidlm.testing import tiny_videolm

    return tiny_videolm(num_frames=2)


def _trainable(model) -> set[str]:
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_stage_presets_choose_parts_and_lrs(model) -> None:
    cfg = TrainConfig(stage="align")
    groups = param_groups(model, cfg)
    assert _trainable(model) == {"connector"} and {g["lr"] for g in groups} == {1e-3}
    cfg = TrainConfig(stage="sft")
    cfg.optim.weight_decay = 0.1
    groups = param_groups(model, cfg)
    assert _trainable(model) == {"connector", "language_model"}
    assert {g["lr"] for g in groups} == {2e-5}
    assert all(p.ndim < 2 for g in groups if g["weight_decay"] == 0 for p in g["params"])
    cfg = TrainConfig(stage="sft", train_vision_tower=True)
    cfg.optim.vision_lr = 1e-6
    groups = param_groups(model, cfg)
    assert _trainable(model) == {"connector", "language_model", "vision_tower"}
    assert {g["lr"] for g in groups if g["name"].startswith("vision")} == {1e-6}
    cfg = TrainConfig(stage="sft", train_vision_tower=True, train_language_model=False)
    groups = param_groups(model, cfg)
    assert _trainable(model) == {"connector", "vision_tower"}
    assert not any(g["name"].startswith("language_model") for g in groups)
    model.vision_tower.freeze()
    model.vision_tower.config.frozen = True


@pytest.mark.parametrize("stage", ["align", "lora"])
def test_train_language_model_false_is_an_sft_switch(stage: str) -> None:
    cfg = TrainConfig(stage=stage, train_language_model=False)
    cfg.model.path, cfg.data.train = "m", "d"
    with pytest.raises(ConfigError, match="train_language_model=false is an sft switch"):
        cfg.validate()


def test_lora_stage_trains_adapters_and_connector_only() -> None:
    from vidlm.testing import tiny_videolm

    m = tiny_videolm(num_frames=2)
    groups = param_groups(m, TrainConfig(stage="lora"))
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("connector.") or "lora_" in n for n in names)
    assert any("lora_" in n for n in names)
    assert {g["lr"] for g in groups} == {2e-4}
    m = tiny_videolm(num_frames=2)
    cfg = TrainConfig(stage="lora", train_vision_tower=True)  # honoured, not ignored
    cfg.optim.vision_lr = 1e-5
    groups = param_groups(m, cfg)
    tower = {n for n, p in m.named_parameters() if p.requires_grad and n.startswith("vision")}
    assert tower and {g["lr"] for g in groups if g["name"].startswith("vision")} == {1e-5}
    cfg = TrainConfig(stage="lora")
    cfg.lora.target_modules = ["nope_proj"]
    with pytest.raises(ConfigError, match="nope_proj"):
        param_groups(tiny_videolm(num_frames=2), cfg)


def test_checkpoint_atomic_commit_keep_last_and_roundtrip(tmp_path: Path) -> None:
    cfg = TrainConfig()
    cfg.model.path, cfg.data.train = "m", "d"
    for step in (1, 2, 3):
        tmp = ckpt.begin(tmp_path, step)
        state = ckpt.TrainerState(step=step, epoch=1, batch_in_epoch=step * 2,
                                  scheduler={"last_epoch": step})
        ckpt.write_main(tmp, trainable={"w": torch.full((2,), float(step))},
                        optimizer={"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": []},
                        state=state, config=cfg)
        ckpt.write_rng(tmp, 0)
        previous = tmp_path / "checkpoints" / f"step_{step - 1:08d}"
        assert ckpt.latest_checkpoint(tmp_path) == (None if step == 1 else previous)
        ckpt.commit(tmp_path, step, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    ckpt.begin(tmp_path, 4)  # a crash while writing step 4 leaves only a .tmp folder
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step_00000003"
    loaded = ckpt.load(latest)
    assert loaded.state.batch_in_epoch == 6 and torch.equal(loaded.trainable["w"],
                                                            torch.full((2,), 3.0))
    assert (latest / "train_config.json").is_file()
    torch.manual_seed(5)
    ckpt.write_rng(latest, 1)
    expected = torch.rand(3)
    torch.manual_seed(99)
    ckpt.load_rng(latest, 1)
    assert torch.equal(torch.rand(3), expected)


def test_config_yaml_overrides_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("stage: align\nmodel: {path: m}\ndata: {train: t.json}\n")
    cfg = load_train_config(path, ["optim.lr=5e-4", "data.num_workers=2", "optim.betas=[0.9,0.95]"])
    assert (cfg.stage, cfg.optim.lr, cfg.data.num_workers) == ("align", 5e-4, 2)
    assert cfg.optim.betas == (0.9, 0.95)
    with pytest.raises(ConfigError, match="unknown field"):
        load_train_config(path, ["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="frozen vision tower"):
        load_train_config(path, ["stage=sft", "train_vision_tower=true", "data.feature_cache=x"])


def test_shipped_configs_load() -> None:
    root = Path(__file__).parent.parent / "configs" / "train"
    files = sorted(root.glob("*.yaml"))
    assert {f.stem for f in files} >= {"align", "sft", "lora"}
    for f in files:
        cfg = load_train_config(f)
        assert cfg.stage in {"align", "sft", "lora"}


def test_train_command_errors_are_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from vidlm.cli import main

    assert main(["train", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read YAML" in err and "Traceback" not in err
    path = tmp_path / "c.yaml"
    path.write_text("stage: sft\nmodel: {path: m}\ndata: {train: t.json}\n")
    assert main(["train", str(path), "optim.lr=fast"]) == 1
    assert "lr must be a number, got 'fast'" in capsys.readouterr().err
    assert main(["train", str(path), "stage=dpo"]) == 1
    assert "stage" in capsys.readouterr().err


def test_accelerate_configs_match_accelerates_schema() -> None:
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    known = {a.dest for a in launch_command_parser()._actions}
    root = Path(__file__).parent.parent / "configs" / "distributed"
    kinds = {}
    for name in ("fsdp", "zero2", "zero3"):
        path = root / f"{name}.yaml"
        kinds[name] = str(load_config_from_file(str(path)).distributed_type).rsplit(".")[-1]
        raw = yaml.safe_load(path.read_text())
        inner = raw.get("fsdp_config") or raw.get("deepspeed_config")
        assert inner and set(inner) <= known, sorted(set(inner) - known)
    assert kinds == {"fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
    zero = [yaml.safe_load((root / f"zero{n}.yaml").read_text())["deepspeed_config"]
            for n in (2, 3)]
    assert [z["zero_stage"] for z in zero] == [2, 3]


@pytest.mark.parametrize("lm", ["llama", "qwen2"])
def test_objective_loss_on_label_positions_equals_full_logits_loss(lm: str) -> None:
    """The objective runs the LM head only where a label is; loss and grads must not change."""
    import torch.nn.functional as F

    from vidlm.testing import tiny_videolm
    from vidlm.train.objective import CausalLMObjective, _accepts_logits_to_keep

    model = tiny_videolm(num_frames=2, lm=lm)
    assert _accepts_logits_to_keep(model.language_model)  # the path under test
    ph = model.placeholder_id
    n_vis = model.num_visual_tokens(2)
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (2, n_vis + 12))
    ids[:, 2:2 + n_vis] = ph
    labels = torch.full_like(ids, -100)
    labels[0, -4:] = ids[0, -4:]  # rows label different spans
    labels[1, -7:-2] = ids[1, -7:-2]
    feats = [torch.randn(2, model.vision_tower.num_patches, model.vision_tower.hidden_size)
             for _ in range(2)]
    objective = CausalLMObjective(model, train_vision_tower=False)
    out = objective(ids, torch.ones_like(ids), labels, feats)
    connector = [p for p in model.connector.parameters()]
    grads = torch.autograd.grad(out.loss_sum, connector)

    tokens = [model.connect(f[None])[0] for f in feats]
    full = model(ids, torch.ones_like(ids), visual_tokens=tokens).logits[:, :-1].float()
    reference = F.cross_entropy(full.reshape(-1, full.shape[-1]), labels[:, 1:].reshape(-1),
                                ignore_index=-100, reduction="sum")
    ref_grads = torch.autograd.grad(reference, connector)
    assert int(out.num_tokens) == 9
    torch.testing.assert_close(out.loss_sum, reference, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)

    no_labels = objective(ids, torch.ones_like(ids), torch.full_like(ids, -100), feats)
    assert no_labels.loss_sum.item() == 0.0 and no_labels.loss_sum.requires_grad
