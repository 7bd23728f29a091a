"""The evaluation loop: decode in parallel, answer in order, append, resume, report.

``predictions.jsonl`` gets one JSON row per answered item, flushed as it is written::

    {"id", "video", "gold", "categories", "prompt", "reply", "extracted", "correct",
     "failure": null | {"kind": "missing" | "unreadable" | "model_error", "reason"},
     "scoring", "loglikelihoods" (likelihood scoring), "num_frames", "frame_size", "seconds"}

A rerun with the same ``--out`` skips items that already have a successful row and
retries failed ones (a video may have been fixed). ``run.json`` records the settings
that shape the replies; resuming with different settings is refused, so one
predictions file never mixes two configurations.

Decoding (``workers`` threads; PyAV releases the GIL) runs ahead of the model by at
most ``2 * workers`` items, so memory stays bounded; the model answers in item order.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tqdm import tqdm

from vidlm.errors import ConfigError, VideoError, VidlmError
from vidlm.eval.benchmarks import Benchmark, get_benchmark
from vidlm.eval.extraction import DEFAULT_RULE, get_rule
from vidlm.eval.items import EvalItem
from vidlm.eval.metrics import compute_metrics
from vidlm.eval.prompts import PromptTemplate
from vidlm.eval.provenance import model_description, run_provenance
from vidlm.eval.report import bar_chart, format_table
from vidlm.model.config import SamplingConfig

Scoring = Literal["generate", "likelihood"]
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
RUN_FILE = "run.json"
CHART = "accuracy.png"


class Answerer(Protocol):
    """What the runner needs of a model for generation scoring (``VideoLM`` has it)."""

    def ask(self, video: Any, question: str, **gen: Any) -> str: ...


@dataclass
class EvalSettings:
    """One evaluation run. ``sampling=None`` uses the model's own sampling config.

    ``decode_size``: frames are decoded at this size (see :mod:`vidlm.video.resize`);
    None: the model's vision input size as the short side, or native without a model
    config. ``likelihood_target``: ``"letter"`` scores the option letter as the reply
    to the rendered prompt; ``"option"`` scores the option text.
    """

    benchmark: str
    annotations: Path
    videos: Path
    out: Path
    model_id: str
    checkpoint: Path | None = None
    limit: int | None = None
    sampling: SamplingConfig | None = None
    decode_size: int | str | None = None
    rule: str = DEFAULT_RULE
    scoring: Scoring = "generate"
    likelihood_target: Literal["letter", "option"] = "letter"
    template: PromptTemplate | None = None
    workers: int = 2
    max_new_tokens: int = 16
    progress: bool = True
    extra_provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    table: str
    predictions: Path
    metrics_path: Path
    chart: Path


def _failure(kind: str, reason: str) -> dict[str, str]:
    return {"kind": kind, "reason": reason}


class Decoder:
    """Turns an item into frames, or into a failure record (never raises VideoError)."""

    def __init__(self, sampling: SamplingConfig, size: int | str | None) -> None:
        from vidlm.video import policy_from_config

        self.policy = policy_from_config(sampling)
        self.size = size

    def __call__(self, item: EvalItem) -> Any:
        from vidlm.video import read

        if not item.video.exists():
            return _failure("missing", f"{item.video}: no such file")
        try:
            frames = read(item.video, self.policy, self.size)
        except VideoError as exc:
            return _failure("unreadable", str(exc))
        if len(frames) == 0:
            return _failure("unreadable", f"{item.video}: no frames could be decoded")
        return frames


def prefetch(pool: ThreadPoolExecutor, items: Sequence[EvalItem], fn: Callable[[EvalItem], Any],
             window: int) -> Iterator[tuple[EvalItem, Any]]:
    """``(item, fn(item))`` in item order, with at most ``window`` calls in flight."""
    pending: list[tuple[EvalItem, Future[Any]]] = []
    it = iter(items)
    for item in it:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= window:
            break
    while pending:
        item, fut = pending.pop(0)
        result = fut.result()  # done before the next submit: at most `window` in flight
        nxt = next(it, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(fn, nxt)))
        yield item, result


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Rows of a predictions file; a torn last line (an interrupted write) is ignored."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines) - 1:
                break
            raise ConfigError(f"{path}: line {n + 1} is not JSON ({exc}); "
                              "use a fresh --out folder") from exc
    return rows


def _check_resume(out: Path, fingerprint: dict[str, Any]) -> None:
    run_file = out / RUN_FILE
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        if previous != fingerprint:
            changed = sorted(k for k in set(previous) | set(fingerprint)
                             if previous.get(k) != fingerprint.get(k))
            raise ConfigError(f"{out}: holds predictions made with different settings "
                              f"({', '.join(changed)}); use a fresh --out folder")
    else:
        run_file.write_text(json.dumps(fingerprint, indent=2) + "\n")


class ItemScorer:
    """Answers one decoded item by generation + extraction, or by likelihood."""

    def __init__(self, model: Any, settings: EvalSettings, template: PromptTemplate) -> None:
        self.model = model
        self.settings = settings
        self.template = template
        self.rule = get_rule(settings.rule)

    def __call__(self, item: EvalItem, frames: Any) -> dict[str, Any]:
        prompt = self.template.render(item)
        row: dict[str, Any] = {"id": item.id, "video": str(item.video), "gold": item.gold,
                               "categories": item.categories, "prompt": prompt,
                               "scoring": self.settings.scoring, "reply": None,
                               "extracted": "", "correct": False, "failure": None}
        if isinstance(frames, dict):
            row["failure"] = frames
            return row
        row["num_frames"] = len(frames)
        row["frame_size"] = list(frames.frames.shape[1:3])
        start = time.perf_counter()
        try:
            if self.settings.scoring == "likelihood":
                self._by_likelihood(item, frames, prompt, row)
            else:
                reply = self.model.ask(frames, prompt, max_new_tokens=self.settings.max_new_tokens,
                                       temperature=0.0)
                row["reply"] = reply
                row["extracted"] = self.rule(reply, item.options)
        except VidlmError as exc:
            row["failure"] = _failure("model_error", str(exc))
        row["seconds"] = round(time.perf_counter() - start, 4)
        row["correct"] = row["failure"] is None and row["extracted"] == item.gold
        return row

    def _by_likelihood(self, item: EvalItem, frames: Any, prompt: str, row: dict[str, Any]) -> None:
        from vidlm.eval.likelihood import score_continuations

        conts = list(item.letters) if self.settings.likelihood_target == "letter" \
            else list(item.options)
        scores = score_continuations(self.model, [frames], prompt, conts)
        row["loglikelihoods"] = {lt: s.logprob for lt, s in zip(item.letters, scores, strict=True)}
        row["extracted"] = max(row["loglikelihoods"], key=row["loglikelihoods"].__getitem__)


def _sampling_of(model: Any, settings: EvalSettings) -> SamplingConfig:
    if settings.sampling is not None:
        return settings.sampling
    config = getattr(model, "config", None)
    return getattr(config, "sampling", None) or SamplingConfig()


def _decode_size(model: Any, settings: EvalSettings) -> int | str | None:
    if settings.decode_size is not None:
        return settings.decode_size
    vision = getattr(getattr(model, "config", None), "vision_tower", None)
    return None if vision is None else int(vision.image_size)


def _scoring_description(settings: EvalSettings) -> dict[str, Any]:
    if settings.scoring == "likelihood":
        return {"method": "likelihood", "target": settings.likelihood_target,
                "choice": "highest summed log-probability", "extraction": None}
    rule = get_rule(settings.rule)
    return {"method": "generate", "extraction": {"rule": rule.name, "version": rule.version,
                                                 "summary": rule.summary},
            "generation": {"max_new_tokens": settings.max_new_tokens, "temperature": 0.0}}


def load_items(benchmark: Benchmark, settings: EvalSettings) -> list[EvalItem]:
    items = benchmark.load(settings.annotations, settings.videos)
    if settings.limit is not None:
        items = items[: settings.limit]
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"{settings.annotations}: item id {dup!r} occurs more than once")
    return items


def run_eval(model: Any, settings: EvalSettings) -> EvalResult:
    """Evaluate ``model`` (a VideoLM, or anything with ``ask``) as ``settings`` say."""
    if settings.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {settings.workers}")
    needed = ("encode_video", "build_inputs", "forward", "tokenizer")
    if settings.scoring == "likelihood" and not all(hasattr(model, a) for a in needed):
        raise ConfigError(f"likelihood scoring needs a VideoLM ({', '.join(needed)}); "
                          f"{type(model).__name__} has only generation")
    benchmark = get_benchmark(settings.benchmark)
    template = settings.template or benchmark.template
    sampling = _sampling_of(model, settings)
    size = _decode_size(model, settings)
    items = load_items(benchmark, settings)
    settings.out.mkdir(parents=True, exist_ok=True)
    scoring = _scoring_description(settings)
    fingerprint = {"benchmark": settings.benchmark, "model": settings.model_id,
                   "sampling": dataclasses.asdict(sampling), "decode_size": size,
                   "template": template.to_dict(), "scoring": scoring}
    _check_resume(settings.out, json.loads(json.dumps(fingerprint)))
    pred_path = settings.out / PREDICTIONS
    previous = read_predictions(pred_path)
    finished = {r["id"] for r in previous if r.get("failure") is None}
    todo = [it for it in items if it.id not in finished]
    scorer = ItemScorer(model, settings, template)
    _answer_all(todo, Decoder(sampling, size), scorer, pred_path, settings)
    rows = read_predictions(pred_path)
    metrics = compute_metrics(items, rows, report_by=benchmark.report_by,
                              headline=benchmark.headline, order=benchmark.category_order)
    metrics["benchmark"] = settings.benchmark
    metrics["failures"] = _failure_list(items, rows)
    metrics["provenance"] = run_provenance(
        model=model_description(model, settings.model_id, settings.checkpoint),
        sampling=sampling, template=template, scoring=scoring,
        annotations=settings.annotations, videos=settings.videos)
    metrics["provenance"].update(decode_size=size, limit=settings.limit,
                                 resumed_rows=len(previous), **settings.extra_provenance)
    metrics_path = settings.out / METRICS
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    chart_field = benchmark.report_by[0] if benchmark.report_by else None
    chart = bar_chart(settings.benchmark, metrics, chart_field, settings.out / CHART)
    return EvalResult(metrics=metrics, table=format_table(settings.benchmark, metrics),
                      predictions=pred_path, metrics_path=metrics_path, chart=chart)


def _answer_all(todo: Sequence[EvalItem], decode: Decoder, scorer: ItemScorer, path: Path,
                settings: EvalSettings) -> None:
    bar = tqdm(total=len(todo), desc=f"eval {settings.benchmark}", unit="item",
               disable=not settings.progress)
    with ThreadPoolExecutor(settings.workers) as pool, path.open("a", encoding="utf-8") as out:
        for item, frames in prefetch(pool, todo, decode, window=2 * settings.workers):
            out.write(json.dumps(scorer(item, frames)) + "\n")
            out.flush()
            bar.update(1)
    bar.close()


def _failure_list(items: Iterable[EvalItem], rows: Sequence[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    last = {r["id"]: r for r in rows}
    return [{"id": it.id, "video": str(it.video), **last[it.id]["failure"]}
            for it in items if it.id in last and last[it.id].get("failure") is not None]
