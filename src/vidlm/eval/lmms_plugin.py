"""An lmms-eval model plugin: ``lmms-eval --model vidlm --model_args pretrained=...``.

Only lmms-eval imports this module (nothing else in vidlm does), so vidlm works
without lmms-eval installed. lmms-eval (0.7) finds models through the entry-point
group ``lmms_eval.models``, whose payload must be a ``ModelManifest`` or a callable
returning one: :func:`lmms_eval_manifest` is that callable.

``--model_args pretrained=PATH,connector=slowfast,num_frames=32`` become the keyword
arguments of :class:`VidLM`. Requests follow lmms-eval's conventions: each
``Instance.args`` is ``(context, gen_kwargs | continuation, doc_to_visual, doc_id,
task, split)``; the plugin looks the document up in ``self.task_dict`` (filled by
lmms-eval's evaluator), calls ``doc_to_visual(doc)`` for the video paths and samples
frames itself with the model's sampling config (or the one given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from vidlm.errors import ConfigError

# lmms-eval passes these to every model; they need no handling beyond acceptance.
_IGNORED_ARGS = frozenset({"batch_size", "max_batch_size"})


def lmms_eval_manifest() -> Any:
    """The entry-point payload lmms-eval 0.7 expects: model id -> this module's class."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="vidlm", simple_class_path="vidlm.eval.lmms_plugin.VidLM")


def _sampling(num_frames: int | None, fps: float | None, max_frames: int | None) -> Any:
    from vidlm.model.config import SamplingConfig

    if num_frames is not None and fps is not None:
        raise ConfigError("vidlm model_args: give num_frames or fps, not both")
    if num_frames is not None:
        return SamplingConfig(mode="uniform", num_frames=int(num_frames))
    if fps is not None:
        return SamplingConfig(mode="fps", fps=float(fps), max_frames=int(max_frames or 64))
    return None


def _as_visual(visual: Any) -> Any:
    """A path stays a path; a PIL image becomes a one-frame ``Frames``."""
    if hasattr(visual, "convert") and hasattr(visual, "size"):
        from vidlm.video.frames import Frames

        pixels = np.asarray(visual.convert("RGB"), dtype=np.uint8)[None]
        return Frames(pixels, np.zeros(1), np.zeros(1, np.int64))
    return visual


class VidLM(lmms):
    """vidlm models under lmms-eval: ``generate_until`` and ``loglikelihood``.

    ``loglikelihood`` returns ``(summed log-probability, is_greedy)`` as lmms-eval's
    interface documents (higher is better). Some lmms-eval tasks (``*_mcppl``) pick the
    *lowest* value because their reference models return a mean loss; for those, pass
    ``loglikelihood_returns=mean_nll``.
    """

    is_simple = True

    def __init__(self, pretrained: str, connector: str | None = None,
                 num_frames: int | None = None, fps: float | None = None,
                 max_frames: int | None = None, device: str | None = None,
                 dtype: str | None = None, max_new_tokens: int = 16,
                 loglikelihood_returns: str = "logprob", **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - _IGNORED_ARGS)
        if unknown:
            raise ConfigError(f"vidlm model_args: unknown argument(s) {unknown}")
        if loglikelihood_returns not in ("logprob", "mean_nll"):
            raise ConfigError("vidlm model_args: loglikelihood_returns must be logprob or "
                              f"mean_nll, got {loglikelihood_returns!r}")
        import vidlm

        self.sampling = _sampling(num_frames, fps, max_frames)
        self.model = vidlm.load(str(pretrained), connector=connector, sampling=self.sampling,
                                dtype=dtype, device=device)
        self.max_new_tokens = int(max_new_tokens)
        self.loglikelihood_returns = loglikelihood_returns

    def _visuals(self, doc_to_visual: Any, doc_id: Any, task: str, split: str) -> list[Any]:
        if doc_to_visual is None:
            return []
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if visuals is None:
            return []
        if not isinstance(visuals, (list, tuple)):
            visuals = [visuals]
        return [_as_visual(v) for v in visuals if v is not None]

    def _gen_kwargs(self, gen_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        gen = dict(gen_kwargs or {})
        until = gen.get("until") or []
        stop = [until] if isinstance(until, str) else list(until)
        temperature = float(gen.get("temperature", 0.0) or 0.0)
        if not gen.get("do_sample", temperature > 0):
            temperature = 0.0
        return {"max_new_tokens": int(gen.get("max_new_tokens", self.max_new_tokens)),
                "temperature": temperature, "top_p": float(gen.get("top_p", 1.0) or 1.0),
                "stop": stop}

    def generate_until(self, requests: Sequence[Instance]) -> list[str]:
        replies = []
        for req in tqdm(requests, desc="vidlm generate", disable=self.rank != 0):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            videos = self._visuals(doc_to_visual, doc_id, task, split)
            reply = self.model.chat([{"role": "user", "content": context}], videos=videos,
                                    sampling=self.sampling, **self._gen_kwargs(gen_kwargs))
            replies.append(str(reply))
        return replies

    def loglikelihood(self, requests: Sequence[Instance]) -> list[tuple[float, bool]]:
        from vidlm.eval.likelihood import score_continuations

        results: list[tuple[float, bool]] = []
        cached_key: tuple[Any, ...] | None = None
        encoded: list[Any] = []
        for req in tqdm(requests, desc="vidlm loglikelihood", disable=self.rank != 0):
            context, continuation, doc_to_visual, doc_id, task, split = req.args
            if not isinstance(continuation, str):
                continuation = continuation(self.task_dict[task][split][doc_id])
            key = (task, split, doc_id)
            if key != cached_key:  # options of one document arrive together: encode once
                encoded = [self.model.encode_video(v, self.sampling)
                           for v in self._visuals(doc_to_visual, doc_id, task, split)]
                cached_key = key
            (score,) = score_continuations(self.model, encoded, context, [continuation])
            value = score.logprob if self.loglikelihood_returns == "logprob" \
                else -score.logprob / score.num_tokens
            results.append((value, score.is_greedy))
        return results

    def generate_until_multi_round(self, requests: Sequence[Instance]) -> list[str]:
        raise NotImplementedError("vidlm's lmms-eval plugin does not implement multi-round "
                                  "generation; use single-round tasks")
