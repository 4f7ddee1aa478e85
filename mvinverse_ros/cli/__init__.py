"""`mvinverse-ros`: one console script whose subcommands live beside the code they drive."""
from __future__ import annotations

import argparse
import importlib
import sys

# Each module exposes register(subparsers) and sets `func` on the parsers it adds.
SUBCOMMAND_MODULES = (
    "mvinverse_ros.cli.infer",   # infer
    "mvinverse_ros.cli.convert",    # convert
    "mvinverse_ros.cli.bag",      # bag process, bag import-rgbd
    "mvinverse_ros.cli.train",    # generate, train, finetune
    "mvinverse_ros.cli.eval",     # eval
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mvinverse-ros", description="Feed-forward multi-view inverse rendering.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
