"""2 processes (gloo, DDP via torchrun) match 1 process over the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from vidlm.config import to_dict
from vidlm.train.metrics import read_log
from vidlm.train.smoke import build_smoke_setup, smoke_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def text_first_dataset(files, path: Path) -> Path:
    """Records ordered so that rank 0's first micro-batch is text-only (no visual input):
    without the dummy visual forward DDP would wait for connector gradients forever."""
    rows = json.loads(files.train.read_text())
    text = [{"id": f"text-{i}", "conversations": [
        {"from": "human", "value": "Say a colour."}, {"from": "gpt", "value": c}]}
        for i, c in enumerate(["red", "blue"])]
    # world 2, micro 2: rank 0 takes positions 0, 2, ... rank 1 takes 1, 3, ...
    order = [text[0], rows[0], text[1], rows[1], *rows[2:]]
    path.write_text(json.dumps(order))
    return path


@pytest.mark.slow
def test_two_processes_match_single_process(tmp_path: Path) -> None:
    strategy = "ddp"  # accelerate runs FSDP on GPUs only; see test_fsdp_on_cpu_is_refused
    files = build_smoke_setup(tmp_path / "smoke", num_train=6, num_eval=2)
    train = text_first_dataset(files, tmp_path / "train.json")
    runs = {}
    for name in ("single", "ddp"):
        cfg = smoke_config(files, output_dir=tmp_path / name, max_steps=4, global_batch_size=4,
                           micro_batch_size=2, save_every=4, export=True,
                           data={"train": str(train), "shuffle": False, "eval": str(files.eval)},
                           eval_every=2, distributed={"strategy": strategy})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(cfg)))
        runs[name] = path
    cli = ["-m", "vidlm.cli", "train"]
    subprocess.run([sys.executable, *cli, str(runs["single"])], check=True, env=env(),
                   timeout=900, capture_output=True)
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port",
                           str(free_port()), *cli, str(runs["ddp"])], env=env(), timeout=900,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = read_log(tmp_path / "single/log.jsonl")
    ddp = read_log(tmp_path / "ddp/log.jsonl")
    assert [(r["world_size"], r["engine"]) for r in ddp if r["event"] == "start"] == [
        (2, "MULTI_CPU")]  # accelerate's name for multi-process CPU DDP
    assert [r["accumulation"] for r in single if r["event"] == "start"] == [2]
    for kind, key in (("train", "loss"), ("eval", "eval_loss")):
        a = [r[key] for r in single if r["event"] == kind]
        b = [r[key] for r in ddp if r["event"] == kind]
        assert len(a) == len(b) > 0
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), (kind, a, b)
    samples = [r["samples"] for r in (single + ddp) if r["event"] == "summary"]
    assert samples == [16, 16]
    w1 = load_file(str(tmp_path / "single/checkpoints/step_00000004/trainable.safetensors"))
    w2 = load_file(str(tmp_path / "ddp/checkpoints/step_00000004/trainable.safetensors"))
    assert w1.keys() == w2.keys() and any(k.startswith("model.connector.") for k in w1)
    # Adam divides by sqrt(v): a gradient element near zero turns summation-order noise
    # into updates of ~1e-5 after 4 steps at lr 3e-3; losses above agree to 1e-5 relative
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=5e-5, rtol=1e-4), k
    e1 = load_file(str(tmp_path / "single/final/model.safetensors"))
    e2 = load_file(str(tmp_path / "ddp/final/model.safetensors"))
    assert e1.keys() == e2.keys()
    for k in e1:
        assert torch.allclose(e1[k], e2[k], atol=5e-5, rtol=1e-4), k


def test_fsdp_on_cpu_is_refused_not_ignored(tmp_path: Path) -> None:
    from vidlm.errors import ConfigError
    from vidlm.train.recipe import TrainRecipe

    files = build_smoke_setup(tmp_path / "smoke", num_train=2, num_eval=1)
    cfg = smoke_config(files, output_dir=tmp_path / "out", distributed={"strategy": "fsdp"})
    with pytest.raises(ConfigError, match="FSDP on GPUs only"):
        TrainRecipe(cfg).setup()
