"""Run metrics: a JSONL log, a rich progress display and TensorBoard when installed.

Only the main process writes. Every record is one JSON object per line in
``OUTPUT/log.jsonl`` with an ``event`` field: ``"train"`` (step, loss, lr, grad_norm,
tokens_per_s, samples_per_s), ``"eval"`` (eval_loss), ``"checkpoint"``, ``"skip"``
(a bad record), ``"start"`` and ``"summary"``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("vidlm.train")


class MetricsLogger:
    def __init__(self, output_dir: str | Path, *, enabled: bool, total_steps: int,
                 start_step: int = 0, progress: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "log.jsonl"
        self._fh = None
        self._tb = None
        self._progress = None
        self._task = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", buffering=1)
        self._tb = _tensorboard(Path(output_dir) / "tensorboard")
        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self._progress.start()
            self._task = self._progress.add_task("train", total=total_steps,
                                                 completed=start_step, info="")

    def write(self, event: str, **fields: Any) -> None:
        if not self.enabled or self._fh is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self._fh.write(json.dumps(record) + "\n")
        step = fields.get("step")
        if self._tb is not None and step is not None:
            for k, v in fields.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(f"{event}/{k}", v, step)

    def train_step(self, step: int, **fields: Any) -> None:
        self.write("train", step=step, **fields)
        if self._progress is not None and self._task is not None:
            info = f"loss {fields['loss']:.4f} lr {fields['lr']:.2e} " \
                   f"{fields.get('tokens_per_s', 0):.0f} tok/s"
            self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("TensorBoard is not installed; metrics go to log.jsonl only")
        return None
    return SummaryWriter(str(folder))


def read_log(path: str | Path, event: str | None = None) -> list[dict[str, Any]]:
    """Records of a ``log.jsonl`` (optionally one ``event`` kind), in order."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if event is None or rec.get("event") == event:
                out.append(rec)
    return out
