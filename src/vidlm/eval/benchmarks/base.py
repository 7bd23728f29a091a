"""The benchmark adapter interface and its registry.

An adapter reads one benchmark's official annotation files from a local path and
yields :class:`~vidlm.eval.items.EvalItem` objects whose videos live under a local
folder. It also declares how the benchmark is reported: its default prompt, the
category fields of its table and chart, and its headline score.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar, Literal

from vidlm.errors import ConfigError
from vidlm.eval.items import EvalItem
from vidlm.eval.prompts import PromptTemplate

Headline = Literal["accuracy", "mean_of_category_accuracies"]


class Benchmark(abc.ABC):
    """One benchmark's file format and reporting conventions.

    ``report_by``: category fields shown in the table, first one also in the chart.
    ``category_order``: the listing order of some fields' values (others: numbers by
    value, then alphabetical).
    ``headline``: ``"accuracy"`` (over all items) or ``"mean_of_category_accuracies"``
    (unweighted mean over the values of ``report_by[0]``, e.g. MLVU's 7 tasks).
    """

    name: ClassVar[str]
    template: ClassVar[PromptTemplate]
    report_by: ClassVar[tuple[str, ...]] = ()
    headline: ClassVar[Headline] = "accuracy"
    category_order: ClassVar[dict[str, tuple[str, ...]]] = {}
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        """All items, in file order. Raises :class:`vidlm.errors.DataError` on bad files."""


_BENCHMARKS: dict[str, type[Benchmark]] = {}


def register_benchmark(cls: type[Benchmark]) -> type[Benchmark]:
    _BENCHMARKS[cls.name] = cls
    return cls


def get_benchmark(name: str) -> Benchmark:
    from vidlm.eval import benchmarks  # noqa: F401  (imports every adapter module)

    if name not in _BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {sorted(_BENCHMARKS)}")
    return _BENCHMARKS[name]()


def list_benchmarks() -> list[str]:
    from vidlm.eval import benchmarks  # noqa: F401

    return sorted(_BENCHMARKS)

