"""``vidlm eval``: evaluate a model on a local copy of a video benchmark.

    vidlm eval --benchmark videomme --annotations videomme.json --videos videos/ \\
               --model ./ckpt [--limit N] [--num-frames N | --fps F --max-frames M] \\
               [--rule robust] [--scoring generate|likelihood] [--out DIR] [--workers K]

Writes ``predictions.jsonl``, ``metrics.json`` and ``accuracy.png`` to ``--out`` and
prints a table by category. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidlm.errors import ConfigError


def register(parser: argparse.ArgumentParser) -> None:
    from vidlm.eval.benchmarks import list_benchmarks
    from vidlm.eval.extraction import DEFAULT_RULE, list_rules

    parser.add_argument("--benchmark", required=True, choices=list_benchmarks())
    parser.add_argument("--annotations", required=True, type=Path,
                        help="the benchmark's annotation file or folder of task files")
    parser.add_argument("--videos", required=True, type=Path, help="folder holding the videos")
    parser.add_argument("--model", required=True, help="vidlm checkpoint or supported HF folder")
    parser.add_argument("--connector", default=None, help="override the model's connector")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items")
    frames = parser.add_mutually_exclusive_group()
    frames.add_argument("--num-frames", type=int, default=None, help="N uniform frames")
    frames.add_argument("--fps", type=float, default=None,
                        help="frames per second, at most --max-frames (then uniform)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--decode-size", default=None,
                        help="decode frames at this size: '336' short side, 'WxH[:pad|crop]'")
    parser.add_argument("--rule", default=DEFAULT_RULE, choices=list_rules(),
                        help="answer-letter extraction rule (generate scoring)")
    parser.add_argument("--scoring", default="generate", choices=["generate", "likelihood"])
    parser.add_argument("--likelihood-target", default="letter", choices=["letter", "option"])
    parser.add_argument("--prompt-template", default=None,
                        help="prompt text with {question} {options} {raw_question} {letters}, "
                             "or @FILE to read it from a file")
    parser.add_argument("--option-format", default=None, help="e.g. '{letter}. {text}'")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: eval-out/<benchmark>)")
    parser.add_argument("--workers", type=int, default=2, help="parallel video decoders")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def sampling_from_args(args: argparse.Namespace):  # -> SamplingConfig | None
    from vidlm.model.config import SamplingConfig

    if args.max_frames is not None and args.fps is None:
        raise ConfigError("--max-frames goes with --fps")
    if args.num_frames is not None:
        if args.num_frames < 1:
            raise ConfigError(f"--num-frames must be >= 1, got {args.num_frames}")
        return SamplingConfig(mode="uniform", num_frames=args.num_frames)
    if args.fps is not None:
        if args.fps <= 0:
            raise ConfigError(f"--fps must be > 0, got {args.fps}")
        return SamplingConfig(mode="fps", fps=args.fps, max_frames=args.max_frames or 64)
    return None


def template_from_args(args: argparse.Namespace, default):  # -> PromptTemplate | None
    from vidlm.eval.prompts import PromptTemplate

    if args.prompt_template is None and args.option_format is None:
        return None
    text = args.prompt_template or default.text
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{text[1:]}: cannot read the prompt template: {exc}") from exc
    return PromptTemplate(text, args.option_format or default.option_format)


def run(args: argparse.Namespace) -> int:
    import vidlm
    from vidlm.eval.benchmarks import get_benchmark
    from vidlm.eval.runner import EvalSettings, run_eval

    sampling = sampling_from_args(args)
    benchmark = get_benchmark(args.benchmark)
    template = template_from_args(args, benchmark.template)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    model = vidlm.load(args.model, connector=args.connector, sampling=sampling,
                       dtype=args.dtype, device=args.device)
    model_path = Path(args.model)
    settings = EvalSettings(
        benchmark=args.benchmark, annotations=args.annotations, videos=args.videos,
        out=args.out or Path("eval-out") / args.benchmark, model_id=args.model,
        checkpoint=model_path if model_path.exists() else None, limit=args.limit,
        sampling=sampling, decode_size=args.decode_size, rule=args.rule, scoring=args.scoring,
        likelihood_target=args.likelihood_target, template=template, workers=args.workers,
        max_new_tokens=args.max_new_tokens, progress=not args.quiet,
        extra_provenance={"connector_override": args.connector})
    result = run_eval(model, settings)
    print(result.table)
    print(f"wrote {result.predictions}, {result.metrics_path} and {result.chart}")
    return 0
