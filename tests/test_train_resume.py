"""Fault tolerance: a run killed with SIGKILL and resumed gives bit-identical losses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vidlm.train.config import TrainConfig
from vidlm.train.metrics import read_log
from vidlm.train.smoke import build_smoke_setup, smoke_config

STEPS, EVERY, KILL_AFTER = 16, 4, 8


def write_config(cfg: TrainConfig, path: Path) -> Path:
    from vidlm.config import to_dict

    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


def train_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidlm.cli", "train", str(config), *extra]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def losses_by_step(output_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(output_dir / "log.jsonl", "train")}


def wait_for_checkpoint(proc: subprocess.Popen, log: Path, step: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        if log.exists() and any(r["step"] == step for r in read_log(log, "checkpoint")):
            return
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at step {step} within {timeout} s")


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    files = build_smoke_setup(tmp_path / "smoke", num_train=8, num_eval=2)
    common = {"max_steps": STEPS, "save_every": EVERY, "keep_last": 2, "export": False,
              "data": {"eval": None, "num_workers": 1}}
    ref_cfg = write_config(smoke_config(files, output_dir=tmp_path / "ref", **common),
                           tmp_path / "ref.yaml")
    subprocess.run(train_cmd(ref_cfg), check=True, env=env(), timeout=900,
                   capture_output=True)
    reference = losses_by_step(tmp_path / "ref")
    assert sorted(reference) == list(range(1, STEPS + 1))

    out = tmp_path / "killed"
    cfg = write_config(smoke_config(files, output_dir=out, **common), tmp_path / "run.yaml")
    proc = subprocess.Popen(train_cmd(cfg), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoint(proc, out / "log.jsonl", KILL_AFTER, timeout=600)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = losses_by_step(out)
    assert max(before) < STEPS and not read_log(out / "log.jsonl", "summary")

    subprocess.run(train_cmd(cfg, "--resume"), check=True, env=env(), timeout=900,
                   capture_output=True)
    starts = read_log(out / "log.jsonl", "start")
    assert len(starts) == 2 and starts[1]["resumed_from"].endswith(f"step_{starts[1]['step']:08d}")
    assert starts[1]["step"] >= KILL_AFTER
    resumed = losses_by_step(out)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert resumed == reference  # bit-identical in fp32 deterministic mode
    assert read_log(out / "log.jsonl", "summary")[0]["steps"] == STEPS
