"""``vidlm batch IN.jsonl OUT.jsonl --model M``: answer video questions in bulk, resumably.

See :mod:`vidlm.serve.batch` for the record formats. Progress (with an ETA) goes to
stderr; the summary line to stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vidlm.errors import DataError
from vidlm.serve.batch import BatchRunner
from vidlm.serve.encoding import CachedEncoder
from vidlm.serve.options import (
    add_cache_args,
    add_generation_args,
    add_model_args,
    add_sampling_args,
    cache_from_args,
    generation_from_args,
    load_model,
    sampling_from_args,
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="JSONL: {id, video, question | questions}")
    parser.add_argument("output", type=Path, help="JSONL of answers (appended; resumable)")
    add_model_args(parser)
    parser.add_argument("--workers", type=int, default=2, help="parallel video decoders")
    parser.add_argument("--media-root", type=Path, default=None,
                        help="folder relative video paths start from (default: the input's)")
    parser.add_argument("--retry-errors", action="store_true",
                        help="redo records that failed in an earlier run")
    add_sampling_args(parser)
    add_generation_args(parser)
    add_cache_args(parser)


def run(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise DataError(f"{args.input}: batch input file not found")
    if args.input.resolve() == args.output.resolve():
        raise DataError(f"{args.output}: the output must differ from the input")
    model = load_model(args)
    runner = BatchRunner(model, encoder=CachedEncoder(model, cache_from_args(args)),
                         sampling=sampling_from_args(args, model.config.sampling),
                         generation=generation_from_args(args), workers=args.workers)
    columns = (TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("batch", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = runner.run(args.input, args.output, media_root=args.media_root,
                             retry_errors=args.retry_errors, progress=progress)
    print(summary.line(), flush=True)
    return 0
