"""``vidlm train CONFIG.yaml [key.sub=value ...] [--resume]``: run the training recipe."""

from __future__ import annotations

import argparse
import json
import logging


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (YAML); see configs/train/")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. optim.lr=1e-4 data.num_workers=4")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in output_dir")
    parser.set_defaults(_overrides_anywhere=True)  # `CFG --resume k=v` works too (cli._parse)


def run(args: argparse.Namespace) -> int:
    from vidlm.train.config import load_train_config
    from vidlm.train.recipe import run_training

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_train_config(args.config, args.overrides)
    summary = run_training(cfg, resume=args.resume)
    print(json.dumps(summary))
    return 0
