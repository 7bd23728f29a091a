"""Benchmark adapters, one module each, registered by name (see :mod:`.base`)."""

from vidlm.eval.benchmarks import (  # noqa: F401  (registration side effects)
    egoschema,
    longvideobench,
    mlvu,
    mvbench,
    nextqa,
    perceptiontest,
    videomme,
)
from vidlm.eval.benchmarks.base import Benchmark, get_benchmark, list_benchmarks, register_benchmark

__all__ = ["Benchmark", "get_benchmark", "list_benchmarks", "register_benchmark"]
