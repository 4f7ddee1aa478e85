"""`mvinverse-ros`: one console script whose subcommands live beside the code they drive.

Exit codes, the same for every subcommand:
    0    done.
    1    unusable input: a file, folder, bag, data set or checkpoint that cannot be read or used.
    2    bad parameters or usage: a value the schema refuses (named with its source), a bad flag.
    130  interrupted (Ctrl-C); `bag process` still closes a valid output bag first.
Errors are one `error: ...` line on stderr, never a traceback; a traceback means a bug.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mvinverse_ros.cli.common import EXIT_CODES, report_error
from mvinverse_ros.params import ParameterError

# Each module exposes register(subparsers) and sets `func` on the parsers it adds.
SUBCOMMAND_MODULES = (
    "mvinverse_ros.cli.infer",    # infer
    "mvinverse_ros.cli.convert",  # convert
    "mvinverse_ros.cli.bag",      # bag process, bag import-rgbd
    "mvinverse_ros.cli.fleet",    # fleet process
    "mvinverse_ros.cli.train",    # generate, train, finetune
    "mvinverse_ros.cli.eval",     # eval
    "mvinverse_ros.cli.export",   # export onnx
    "mvinverse_ros.cli.relight",  # relight
)
# (module, class) of the errors that mean unusable input: an unreadable file, folder, bag, data set or checkpoint.
_INPUT_ERRORS = (
    ("mvinverse_ros.bag.errors", "BagError"),
    ("mvinverse_ros.datasets.errors", "DatasetError"),
    ("mvinverse_ros.datasets.synthetic", "SyntheticDataError"),
    ("mvinverse_ros.engine.export", "ExportError"),
    ("mvinverse_ros.engine.preprocess", "InferenceError"),
    ("mvinverse_ros.model.errors", "ModelError"),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="mvinverse-ros", description="Feed-forward multi-view inverse rendering.",
                                     epilog=EXIT_CODES)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean unusable input (exit 1).

    Each is looked up only in a module already imported (one that was never imported cannot have
    raised it), so an early error does not pay for importing torch.
    """
    imported = [getattr(sys.modules[module], name) for module, name in _INPUT_ERRORS if module in sys.modules]
    return (*imported, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ParameterError as err:
        report_error(err)
        return 2
    except KeyboardInterrupt:
        report_error("interrupted")
        return 130
    except Exception as err:
        if not isinstance(err, input_errors()):
            raise
        report_error(err)
        return 1
