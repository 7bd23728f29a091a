"""``vidlm ask VIDEO "question" --model M``: one question about a video or image, streamed.

Frame sampling (``--num-frames`` | ``--fps`` [``--max-frames``]) defaults to the model's
own; ``--connector`` switches the connector training-free; ``--set a.b=value`` overrides
any config field (e.g. ``context.on_overflow=drop_frames``). Notes such as frames
dropped to fit the context go to stderr. A model that is neither local nor downloadable
is reported in one sentence (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidlm.serve.options import (
    add_generation_args,
    add_model_args,
    add_sampling_args,
    generation_from_args,
    sampling_from_args,
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a video file, an image, or a folder of images")
    parser.add_argument("question", help="the question to ask")
    add_model_args(parser)
    add_sampling_args(parser)
    add_generation_args(parser)
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="stop the answer at TEXT (repeatable; TEXT is left out)")
    parser.add_argument("--system", default=None, help="a system prompt")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.FIELD=VALUE", help="override a model config field")


def run(args: argparse.Namespace) -> int:
    import vidlm

    model = vidlm.load(args.model, connector=args.connector, overrides=args.overrides)
    sampling = sampling_from_args(args, model.config.sampling)
    gen = generation_from_args(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.question}]
    prompt = model.prepare(messages, [args.video], sampling=sampling,
                           max_new_tokens=gen["max_new_tokens"])
    for note in prompt.notes:
        print(f"vidlm ask: note: {note}", file=sys.stderr)
    for piece in model.generate_prepared(prompt, stream=True, stop=args.stop, **gen):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
