"""``vidlm data validate FILE --media-root DIR`` and ``vidlm data synth ...``."""

from __future__ import annotations

import argparse
import sys


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    val = sub.add_parser("validate", help="check a LLaVA JSON/JSONL dataset record by record",
                         description="Check fields, placeholders vs media, media decoding and "
                                     "length against the context; exit 1 on any error.")
    val.add_argument("file", help="dataset (.json array or .jsonl)")
    val.add_argument("--media-root", default=".", help="folder the media paths are relative to")
    val.add_argument("--model", help="a vidlm checkpoint: its tokenizer, sampling and connector "
                                     "give the length of every record")
    val.add_argument("--context", type=int, help="context length to check against "
                                                  "(default: the model's)")
    val.add_argument("--no-decode", action="store_true",
                     help="only probe media, do not decode a frame")
    val.add_argument("--max-problems", type=int, default=200,
                     help="print at most this many problems (all are counted)")
    val.set_defaults(_data_run=_run_validate)
    from vidlm.data import synth

    syn = sub.add_parser("synth", help="generate a synthetic video QA dataset",
                         description="Generate a synthetic video QA dataset (LLaVA JSON).")
    synth.register(syn)
    syn.set_defaults(_data_run=synth.run)


def run(args: argparse.Namespace) -> int:
    return int(args._data_run(args) or 0)


def _run_validate(args: argparse.Namespace) -> int:
    from rich.progress import track

    from vidlm.data.validate import MediaChecker, validate_records
    from vidlm.errors import ConfigError

    length_fn, context, sampling = None, args.context, None
    if args.model:
        import vidlm
        from vidlm.data.validate import length_function

        model = vidlm.load(args.model)
        length_fn, sampling = length_function(model), model.config.sampling
        context = context or model.context_length
    elif args.context:
        raise ConfigError("--context needs --model (its tokenizer counts the text tokens)")
    media = MediaChecker(args.media_root, sampling=sampling, decode=not args.no_decode)
    report = validate_records(args.file, media, length_fn=length_fn, context=context,
                              progress=lambda it: track(it, description="validate",
                                                        transient=True, console=_console()))
    for problem in report.problems[:args.max_problems]:
        print(f"{args.file}: {problem}")
    hidden = len(report.problems) - args.max_problems
    if hidden > 0:
        print(f"... {hidden} more problem(s) not shown (--max-problems)")
    print(report.summary(), file=sys.stderr if not report.ok else sys.stdout)
    return 0 if report.ok else 1


def _console():
    from rich.console import Console

    return Console(stderr=True)
