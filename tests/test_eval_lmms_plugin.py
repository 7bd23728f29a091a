"""The lmms-eval plugin against the installed lmms-eval interface, with a tiny model and a
small local task (documents in ``task_dict`` and ``Instance`` requests built the way
lmms-eval's ``Task.construct_requests`` builds them)."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

# lmms-eval is installed by the set-up (see docs/evaluation.md); a missing one fails here.
import lmms_eval.api.model as lmms_model
import pytest
from lmms_eval.api.instance import Instance
from lmms_eval.models.registry_v2 import ModelRegistryV2

from vidlm.errors import ConfigError
from vidlm.eval.likelihood import score_continuations
from vidlm.eval.lmms_plugin import VidLM, lmms_eval_manifest
from vidlm.model.config import SamplingConfig
from vidlm.testing import tiny_videolm

TASK, SPLIT = "local_mc", "test"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    tiny_videolm(num_frames=2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def plugin(checkpoint: Path) -> VidLM:
    # lmms-eval: cls.create_from_arg_string(model_args, {"batch_size": ..., "device": ...})
    return VidLM.create_from_arg_string(f"pretrained={checkpoint},num_frames=2",
                                        {"batch_size": 1, "device": "cpu"})


@pytest.fixture
def docs(tmp_path: Path, small_mp4: Path) -> list[dict[str, Any]]:
    shutil.copyfile(small_mp4, tmp_path / "a.mp4")
    return [{"video": str(tmp_path / "a.mp4"), "question": "What moves?"},
            {"video": str(small_mp4), "question": "How many bikes?"}]


def doc_to_visual(doc: dict[str, Any]) -> list[str]:
    return [doc["video"]]


def instance(kind: str, args: tuple, doc_id: int) -> Instance:
    return Instance(request_type=kind, arguments=args, idx=0,
                    metadata={"task": TASK, "doc_id": doc_id, "repeats": 1})


def test_manifest_resolves_to_a_valid_simple_model() -> None:
    registry = ModelRegistryV2()
    registry.register_manifest(lmms_eval_manifest())
    assert registry.get_model_class("vidlm") is VidLM
    assert issubclass(VidLM, lmms_model.lmms) and VidLM.is_simple


def test_model_args_become_constructor_kwargs(plugin: VidLM) -> None:
    assert plugin.sampling == SamplingConfig(mode="uniform", num_frames=2)
    assert plugin.model.config.sampling.num_frames == 2
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['frames'\]"):
        VidLM.create_from_arg_string("pretrained=x,frames=3")


def test_generate_until_matches_direct_model_calls(plugin: VidLM,
                                                   docs: list[dict[str, Any]]) -> None:
    plugin.task_dict = {TASK: {SPLIT: docs}}
    gen = {"until": ["\n\n"], "max_new_tokens": 5, "temperature": 0, "do_sample": False}
    reqs = [instance("generate_until", (d["question"], dict(gen), doc_to_visual, i, TASK, SPLIT), i)
            for i, d in enumerate(docs)]
    replies = plugin.generate_until(reqs)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    for doc, reply in zip(docs, replies, strict=True):
        direct = plugin.model.ask(doc["video"], doc["question"], max_new_tokens=5,
                                  temperature=0.0, stop=["\n\n"])
        assert reply == direct


def test_loglikelihood_multiple_choice_requests(plugin: VidLM,
                                                docs: list[dict[str, Any]]) -> None:
    plugin.task_dict = {TASK: {SPLIT: docs}}
    choices = [" moving", " static"]
    reqs = [instance("loglikelihood", (docs[0]["question"], c, doc_to_visual, 0, TASK, SPLIT), 0)
            for c in choices]
    results = plugin.loglikelihood(reqs)
    visual = plugin.model.encode_video(docs[0]["video"])
    direct = score_continuations(plugin.model, [visual], docs[0]["question"], choices)
    assert [r[0] for r in results] == pytest.approx([d.logprob for d in direct], abs=1e-4)
    assert [r[1] for r in results] == [d.is_greedy for d in direct]
    plugin.loglikelihood_returns = "mean_nll"
    try:
        nll = plugin.loglikelihood(reqs)
    finally:
        plugin.loglikelihood_returns = "logprob"
    assert [v for v, _ in nll] == pytest.approx(
        [-d.logprob / d.num_tokens for d in direct], abs=1e-4)


def test_installed_entry_point_registers_vidlm() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="lmms_eval.models")
             if e.name == "vidlm"]
    registry = ModelRegistryV2()
    registry.load_entrypoint_manifests()
    assert ep.value == "vidlm.eval.lmms_plugin:lmms_eval_manifest"
    assert registry.get_model_class("vidlm") is VidLM
