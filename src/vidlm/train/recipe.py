"""The training recipe: setup, train loop, save, cleanup — one readable class.

::

    recipe = TrainRecipe(load_train_config("configs/train/sft.yaml"))
    recipe.setup(resume=False)   # model, stage, data, optimizer, schedule, (resume)
    recipe.train()               # the loop: micro-batches, accumulation, clip, step, log
    recipe.export()              # a plain vidlm checkpoint in OUTPUT/final
    recipe.cleanup()

Distribution comes from ``accelerate`` (DDP, FSDP or DeepSpeed as the launcher says;
``torchrun`` gives DDP), which also does mixed precision. The loop itself — batching,
loss normalisation, accumulation, checkpoints — is here and nowhere else.

Loss: summed token cross-entropy divided by the label tokens of the whole global
batch (all ranks, all accumulation steps), so one process and ``W`` processes over the
same global batch compute the same loss and gradient.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidlm.data.collator import Batch, Collator
from vidlm.data.dataset import ConversationDataset, Visual
from vidlm.data.schema import load_records
from vidlm.errors import ConfigError, DataError
from vidlm.train import checkpoint as ckpt
from vidlm.train.config import TrainConfig
from vidlm.train.metrics import MetricsLogger
from vidlm.train.objective import CausalLMObjective
from vidlm.train.sampler import ResumableSampler
from vidlm.train.schedule import cosine_with_warmup, warmup_steps_for
from vidlm.train.stages import param_groups

log = logging.getLogger("vidlm.train")

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic() -> None:
    """Deterministic kernels everywhere (errors on ops that have none)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


class TrainRecipe:
    """One run of :class:`TrainConfig`. ``model``: an already built VideoLM (else loaded)."""

    def __init__(self, cfg: TrainConfig, *, model: Any | None = None) -> None:
        self.cfg = cfg
        self.model = model
        self.output_dir = Path(cfg.output_dir)
        self.state = ckpt.TrainerState()
        self.skipped: Counter[str] = Counter()
        self.metrics: MetricsLogger | None = None
        self.last_loss: float | None = None
        self.last_eval_loss: float | None = None

    # ---- setup ----------------------------------------------------------------------------

    def setup(self, *, resume: bool = False) -> None:
        cfg = self.cfg
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        if cfg.deterministic:
            set_deterministic()
        set_seed(cfg.seed)
        self.accelerator = self._accelerator()
        if cfg.distributed.strategy == "fsdp" and self._sharded != "fsdp":
            raise ConfigError("distributed.strategy=fsdp, but accelerate runs FSDP on GPUs "
                              "only (this run has none); use strategy ddp or auto on CPU")
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.accum = self._accumulation_steps()

        model = self.model if self.model is not None else _load_model(cfg.model.path)
        groups = param_groups(model, cfg)
        if not groups:
            raise ConfigError(f"stage {cfg.stage!r} left nothing to train")
        if cfg.model.gradient_checkpointing:
            model.language_model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = model
        self._setup_data(model)

        objective = CausalLMObjective(model, train_vision_tower=cfg.train_vision_tower)
        optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
        self.objective, self.optimizer = self.accelerator.prepare(objective, optimizer)
        self.total_steps = self._total_steps()
        warmup = warmup_steps_for(self.total_steps, warmup_steps=cfg.optim.warmup_steps,
                                  warmup_ratio=cfg.optim.warmup_ratio)
        self.scheduler = cosine_with_warmup(self.optimizer, total_steps=self.total_steps,
                                            warmup=warmup, min_ratio=cfg.optim.min_lr_ratio)
        start = ckpt.latest_checkpoint(self.output_dir) if resume else None
        if resume and start is None and self.is_main:
            log.warning("--resume: no checkpoint in %s; starting from step 0", self.output_dir)
        if start is not None:
            self._resume_from(start)  # also restores this rank's RNG states
        else:
            set_seed(cfg.seed + 7919 * (self.rank + 1))  # per-rank stream for the loop
        self.metrics = MetricsLogger(self.output_dir, enabled=self.is_main,
                                     total_steps=self.total_steps, start_step=self.state.step,
                                     progress=cfg.progress)
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.output_dir)
            self.metrics.write("start", step=self.state.step, world_size=self.world,
                               engine=str(self.accelerator.distributed_type).rsplit(".", 1)[-1],
                               accumulation=self.accum, total_steps=self.total_steps,
                               trainable_params=sum(p.numel() for g in groups
                                                    for p in g["params"]),
                               resumed_from=str(start) if start else None)

    def _accelerator(self) -> Any:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        kwargs: dict[str, Any] = {"mixed_precision": MIXED_PRECISION[self.cfg.precision],
                                  "cpu": not torch.cuda.is_available(),
                                  "kwargs_handlers": [DistributedDataParallelKwargs(
                                      find_unused_parameters=False)]}
        strategy = self.cfg.distributed.strategy
        if strategy == "fsdp" and os.environ.get("ACCELERATE_USE_FSDP") is None:
            from accelerate.utils import FullyShardedDataParallelPlugin

            kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(use_orig_params=True)
        if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
            # DeepSpeed runs the accumulation itself: it must know the number of micro-steps
            kwargs["gradient_accumulation_steps"] = self._accumulation_steps(
                world=int(os.environ.get("WORLD_SIZE", "1")))
        return Accelerator(**kwargs)

    @property
    def _sharded(self) -> str | None:
        """``"fsdp"``/``"deepspeed"`` when the weights are sharded across ranks."""
        kind = str(self.accelerator.distributed_type).rsplit(".", 1)[-1]
        return {"FSDP": "fsdp", "DEEPSPEED": "deepspeed"}.get(kind)

    def _accumulation_steps(self, world: int | None = None) -> int:
        world = world or self.world
        per_step = self.cfg.micro_batch_size * world
        if self.cfg.global_batch_size % per_step:
            raise ConfigError(
                f"global_batch_size {self.cfg.global_batch_size} is not a multiple of "
                f"micro_batch_size {self.cfg.micro_batch_size} x {world} process(es)")
        return self.cfg.global_batch_size // per_step

    def _setup_data(self, model: Any) -> None:
        cfg = self.cfg.data
        cache, tower_id = None, None
        if cfg.feature_cache:
            from vidlm.feature_cache import FeatureCache

            cache = FeatureCache(cfg.feature_cache, max_bytes=int(cfg.feature_cache_max_gb * 2**30))
            tower_id = tower_identity(model)
        self.feature_cache = cache
        self.collator = Collator.for_model(model, max_length=cfg.max_length,
                                           on_overflow=cfg.on_overflow)
        self.train_set = self._dataset(cfg.train, model, cache, tower_id)
        self.sampler = ResumableSampler(len(self.train_set), rank=self.rank,
                                        world_size=self.world, seed=self.cfg.seed,
                                        shuffle=cfg.shuffle)
        self.eval_set = self._dataset(cfg.eval, model, cache, tower_id) if cfg.eval else None

    def _dataset(self, path: str, model: Any, cache: Any, tower_id: str | None
                 ) -> ConversationDataset:
        records, errors = load_records(path)
        for err in errors:
            log.warning("skipping invalid record: %s", err)
        if errors:
            self.skipped["invalid record"] += len(errors)
        if not records:
            raise DataError(f"{path}: no valid records (run `vidlm data validate {path}`)")
        return ConversationDataset(records, media_root=self.cfg.data.media_root,
                                   sampling=model.config.sampling,
                                   decode_size=model.config.vision_tower.image_size,
                                   feature_cache=cache, tower_id=tower_id)

    def _loader(self, dataset: ConversationDataset, sampler: Any) -> DataLoader:
        return DataLoader(dataset, batch_size=self.cfg.micro_batch_size, sampler=sampler,
                          collate_fn=self.collator, num_workers=self.cfg.data.num_workers,
                          drop_last=False)

    def _total_steps(self) -> int:
        if self.cfg.max_steps:
            return int(self.cfg.max_steps)
        micro = math.ceil(len(self.sampler) / self.cfg.micro_batch_size)
        return max(1, self.cfg.epochs * micro // self.accum)

    def _resume_from(self, folder: Path) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        loaded = ckpt.load(folder)
        if self._sharded == "deepspeed":
            self.objective.load_checkpoint(str(folder / "engine"), tag="state")
        else:
            opts = StateDictOptions(full_state_dict=True, strict=False)
            set_model_state_dict(self.objective, loaded.trainable, options=opts)
            # strict=False: a trainable weight that never got a gradient (e.g. layers past
            # the feature layer) has no AdamW state, in the saved run and in this one alike.
            set_optimizer_state_dict(self.objective, self.optimizer, loaded.optimizer,
                                     options=StateDictOptions(full_state_dict=True, strict=False))
        self.scheduler.load_state_dict(loaded.state.scheduler)
        self.state = loaded.state
        self.skipped = Counter(loaded.state.skipped)
        ckpt.load_rng(folder, self.rank)
        if self.is_main:
            log.info("resumed from %s (step %d)", folder, self.state.step)

    # ---- train loop -----------------------------------------------------------------------

    def train(self) -> None:
        cfg = self.cfg
        self.objective.train()
        batches = self._micro_batches()
        while self.state.step < self.total_steps:
            t0 = time.perf_counter()
            group = [next(batches) for _ in range(self.accum)]
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
            loss, grad_norm, counts = self._optimizer_step(group)
            self.state.step += 1
            self.last_loss = loss
            seconds = time.perf_counter() - t0
            if self.state.step % cfg.log_every == 0 or self.state.step == self.total_steps:
                self.metrics.train_step(
                    self.state.step, loss=loss, lr=lr,
                    grad_norm=grad_norm, tokens_per_s=counts["tokens"] / seconds,
                    samples_per_s=counts["samples"] / seconds, seconds=seconds,
                    samples=counts["samples"], tokens=counts["tokens"], epoch=self.state.epoch)
            if self.eval_set is not None and cfg.eval_every and \
                    self.state.step % cfg.eval_every == 0:
                self.evaluate()
            if cfg.save_every and self.state.step % cfg.save_every == 0:
                self.save()
        if self.eval_set is not None and not (cfg.eval_every and
                                              self.state.step % cfg.eval_every == 0):
            self.evaluate()

    def _micro_batches(self):
        """Micro-batches forever, advancing epochs; tracks the data position for resume."""
        while True:
            self.sampler.set_position(self.state.epoch,
                                      self.state.batch_in_epoch * self.cfg.micro_batch_size)
            for batch in self._loader(self.train_set, self.sampler):
                self.state.batch_in_epoch += 1
                yield batch
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    def _optimizer_step(self, group: list[Batch]) -> tuple[float, float, dict[str, int]]:
        acc = self.accelerator
        self._record_skips(group)
        local = torch.tensor([sum(b.num_label_tokens for b in group),
                              sum(b.num_tokens for b in group), sum(len(b) for b in group)],
                             dtype=torch.long, device=acc.device)
        total = acc.reduce(local, reduction="sum") if self.world > 1 else local
        label_tokens = max(1, int(total[0]))
        # DDP/FSDP average gradients over ranks (x world); DeepSpeed also divides by
        # the accumulation steps (x accum): both undone so the sum is over the global batch
        scale = self.world / label_tokens * (self.accum if self._sharded == "deepspeed" else 1)
        loss_sum = torch.zeros((), device=acc.device)
        for i, batch in enumerate(group):
            sync = i == len(group) - 1
            ctx = acc.no_sync(self.objective) if not sync else contextlib.nullcontext()
            with ctx, acc.autocast():
                visuals = self._visual_inputs(batch.visuals)
                out = self.objective(batch.input_ids, batch.attention_mask, batch.labels, visuals)
                acc.backward(out.loss_sum * scale)
            loss_sum += out.loss_sum.detach()
        max_norm = self.cfg.optim.max_grad_norm if self.cfg.optim.max_grad_norm > 0 else math.inf
        grad_norm = acc.clip_grad_norm_(self.objective.parameters(), max_norm)
        grad_norm = float("nan") if grad_norm is None else grad_norm
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:
            loss_sum = acc.reduce(loss_sum, reduction="sum")
        self.state.samples_seen += int(total[2])
        self.state.tokens_seen += int(total[1])
        return (float(loss_sum) / label_tokens, float(grad_norm),
                {"tokens": int(total[1]), "samples": int(total[2])})

    def _visual_inputs(self, visuals: list[Visual]) -> list[torch.Tensor]:
        """Per visual input: features ``(T, N, D)``, or pixels ``(T, 3, S, S)`` when the
        tower trains; decoded frames are preprocessed here, on the model's device.

        With a frozen tower the features are computed here, outside the wrapped
        forward (no parameter of the tower needs a gradient), and cache misses are
        written to the feature cache.
        """
        device = self.model.device
        if self.cfg.train_vision_tower:
            return [self.model.preprocess(v.frames.to(device)) for v in visuals]
        out = []
        for v in visuals:
            if v.features is not None:
                out.append(v.features)
                continue
            with torch.no_grad():
                feats = self.model.encode_frames(self.model.preprocess(v.frames.to(device)))
            if self.feature_cache is not None and v.cache_key is not None:
                self.feature_cache.put(v.cache_key, {"features": feats},
                                       {"num_frames": v.num_frames})
            out.append(feats)
        return out

    def _record_skips(self, group: list[Batch]) -> None:
        from accelerate.utils import gather_object

        mine = [s for b in group for s in b.skipped]
        found = gather_object(mine) if self.world > 1 else mine
        for rid, reason in found:
            self.skipped["overflow" if reason.startswith("overflow") else "bad record"] += 1
            if self.is_main:
                log.warning("skipping record %s: %s", rid, reason)
                self.metrics.write("skip", step=self.state.step + 1, id=rid, reason=reason)
        self.state.skipped = dict(self.skipped)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Token-mean cross-entropy over the held-out set (all ranks), logged as ``eval``."""
        acc = self.accelerator
        self.objective.eval()
        sampler = ResumableSampler(len(self.eval_set), rank=self.rank, world_size=self.world,
                                   shuffle=False)
        sums = torch.zeros(2, dtype=torch.float64, device=acc.device)
        for batch in self._loader(self.eval_set, sampler):
            with acc.autocast():
                out = self.objective(batch.input_ids, batch.attention_mask, batch.labels,
                                     self._visual_inputs(batch.visuals))
            sums += torch.stack([out.loss_sum.double(), out.num_tokens.double()])
        if self.world > 1:
            sums = acc.reduce(sums, reduction="sum")
        self.objective.train()
        self.last_eval_loss = float(sums[0] / sums[1].clamp(min=1))
        self.metrics.write("eval", step=self.state.step, eval_loss=self.last_eval_loss,
                           eval_tokens=int(sums[1]))
        return self.last_eval_loss

    # ---- save -----------------------------------------------------------------------------

    def save(self) -> Path:
        """An atomic checkpoint of the current step (all ranks must call it)."""
        acc = self.accelerator
        step = self.state.step
        self.state.scheduler = self.scheduler.state_dict()
        tmp = ckpt.tmp_folder(self.output_dir, step)
        if self._sharded == "deepspeed":
            trainable, optim = {}, {}  # DeepSpeed's own sharded files, under tmp/engine
        else:
            trainable, optim = self._full_trainable_state()
        if self.is_main:
            ckpt.begin(self.output_dir, step)
            ckpt.write_main(tmp, trainable=trainable, optimizer=optim, state=self.state,
                            config=self.cfg)
        acc.wait_for_everyone()
        if self._sharded == "deepspeed":
            self.objective.save_checkpoint(str(tmp / "engine"), tag="state")
        ckpt.write_rng(tmp, self.rank)
        acc.wait_for_everyone()
        final = tmp
        if self.is_main:
            final = ckpt.commit(self.output_dir, step, keep_last=self.cfg.keep_last)
            self.metrics.write("checkpoint", step=step, path=str(final))
        acc.wait_for_everyone()
        return final

    def _full_trainable_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Unsharded trainable weights and optimizer state keyed by parameter name
        (works for a plain module, DDP and FSDP; gathered on every rank, on CPU)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        full = get_model_state_dict(self.objective, options=opts)
        optim = get_optimizer_state_dict(self.objective, self.optimizer, options=opts)
        names = {_plain_name(n) for n, p in self.objective.named_parameters() if p.requires_grad}
        return {k: v for k, v in full.items() if k in names}, optim

    def export(self) -> Path | None:
        """Write ``OUTPUT/final``: a plain vidlm checkpoint (``vidlm.load`` / ``vidlm ask``).

        LoRA: the adapter goes to ``OUTPUT/final_adapter`` (``peft`` format); with
        ``lora.merge`` the adapters are folded into ``final``'s LM, otherwise ``final``
        holds the base LM with the trained connector and
        :func:`vidlm.train.lora.apply_adapter` adds the adapter back.
        """
        from vidlm.train import lora

        model = self._model_for_export()
        if not self.is_main:
            return None
        final = self.output_dir / "final"
        model.vision_tower.config.frozen = True  # an exported tower is for inference
        if lora.is_lora(model):
            lora.save_adapter(model, self.output_dir / "final_adapter")
            if self.cfg.lora.merge:
                lora.merge_lora(model)
            else:
                model.language_model = model.language_model.unload()
        model.save_pretrained(final)
        self.metrics.write("export", step=self.state.step, path=str(final))
        return final

    def _model_for_export(self) -> Any:
        """The trained VideoLM with full weights on the main process.

        Sharded engines (FSDP, DeepSpeed ZeRO-3) hold only a shard per rank: the full
        state is gathered and loaded into a fresh copy of the base model.
        """
        acc = self.accelerator
        acc.wait_for_everyone()
        if self._sharded is None:
            return acc.unwrap_model(self.objective).model
        state = acc.get_state_dict(self.objective)  # full on the main process
        if not self.is_main:
            return None
        model = _load_model(self.cfg.model.path)
        if self.cfg.stage == "lora":
            from vidlm.train.lora import add_lora

            add_lora(model, self.cfg.lora)
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
        return model

    # ---- cleanup --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {"steps": self.state.step, "samples": self.state.samples_seen,
                "tokens": self.state.tokens_seen, "final_loss": self.last_loss,
                "eval_loss": self.last_eval_loss, "skipped": dict(self.skipped),
                "skipped_total": sum(self.skipped.values())}

    def cleanup(self) -> None:
        if self.metrics is not None:
            self.metrics.write("summary", **self.summary())
            self.metrics.close()
        self.accelerator.end_training()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        # leave the process as it was, so another run in it can choose other settings
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
        torch.use_deterministic_algorithms(self._was_deterministic)


def _plain_name(name: str) -> str:
    """A parameter name as ``get_model_state_dict`` reports it (wrapper prefixes removed)."""
    for prefix in ("module.", "_orig_mod.", "_fsdp_wrapped_module."):
        name = name.replace(prefix, "")
    return name


def tower_identity(model: Any) -> str:
    """What the cached features depend on: the tower's config (weights are frozen)."""
    import json

    from vidlm.config import to_dict

    return json.dumps(to_dict(model.config.vision_tower), sort_keys=True)


def _load_model(path: str) -> Any:
    import vidlm

    return vidlm.load(path)


def run_training(cfg: TrainConfig, *, resume: bool = False, model: Any | None = None
                 ) -> dict[str, Any]:
    """Setup, train, save, export, cleanup; returns the run summary."""
    recipe = TrainRecipe(cfg, model=model)
    recipe.setup(resume=resume)
    try:
        recipe.train()
        if cfg.save_every == 0 or recipe.state.step % cfg.save_every:
            recipe.save()
        if cfg.export:
            recipe.export()
        return recipe.summary()
    finally:
        recipe.cleanup()
