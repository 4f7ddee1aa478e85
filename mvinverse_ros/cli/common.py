"""What the subcommands share: parameters through the one schema, the exit codes, the model's warnings.

Every command that runs the perception model reads its settings with `params_from_args`:
config/perception.yaml, then `--params-file`, then `--set`, then alias flags such as `--window`.
The flags are only aliases: the schema in mvinverse_ros/params.py types and checks every value,
and its error names where the value came from (the file, '--set', or the flag).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mvinverse_ros.params import PerceptionParams, load_params, parse_overrides, spec

if TYPE_CHECKING:
    from mvinverse_ros.engine.streaming import StreamingEngine
    from mvinverse_ros.model import LoadedModel
    from mvinverse_ros.params import ModelParams

EXIT_CODES = ("exit codes: 0 done; 1 unusable input (file, folder, bag, checkpoint); "
              "2 bad parameters or usage; 130 interrupted")

# Flag -> the parameter it sets.
PARAMETER_ALIASES = {
    "--checkpoint": "model.checkpoint",
    "--preset": "model.preset",
    "--long-side": "model.long_side",
    "--device": "model.device",
    "--dtype": "model.dtype",
    "--window": "window.size",
}
MODEL_FLAGS = ("--checkpoint", "--preset", "--long-side", "--device", "--dtype")


def report_error(err: BaseException | str) -> None:
    """Print `error: <message>` as one line on stderr, whatever newlines the message holds."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    print(f"error: {'; '.join(lines)}", file=sys.stderr)


def add_params_arguments(parser: argparse.ArgumentParser, aliases: tuple[str, ...] = ()) -> None:
    """Add `--params-file`, repeatable `--set name=value` and the alias `flags` (keys of PARAMETER_ALIASES)."""
    parser.add_argument("--params-file", type=Path, metavar="FILE",
                        help="node params file (YAML, ros__parameters) over config/perception.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override one parameter, e.g. --set window.size=8 (repeatable)")
    for flag in aliases:
        one = spec(PARAMETER_ALIASES[flag])
        allowed = one.allowed()
        parser.add_argument(flag, default=None, dest=one.name, metavar=flag.lstrip("-").replace("-", "_").upper(),
                            help=f"sets {one.name}: {one.description}" + (f" ({allowed})" if allowed else ""))


def params_from_args(args: argparse.Namespace) -> PerceptionParams:
    """Defaults, then --params-file, then --set, then the alias flags that were given.

    Raises:
        ParameterError: a malformed --set, an unreadable params file, or a value the schema refuses
            (the message names the parameter and its source: the file path, '--set' or the flag).
    """
    overrides: dict[str, str] = parse_overrides(args.overrides)
    sources = dict.fromkeys(overrides, "--set")
    for flag, name in PARAMETER_ALIASES.items():
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
            sources[name] = flag
    return load_params(args.params_file, overrides, sources)


def load_engine(model: ModelParams) -> tuple[StreamingEngine, LoadedModel]:
    """The streaming engine for the `model.*` parameters; says on stderr what was loaded and warns when untrained.

    Raises:
        ModelError / InferenceError: weights that cannot be loaded, a device or dtype that cannot run.
    """
    from mvinverse_ros.pipeline import engine_from_params

    engine, loaded = engine_from_params(model)
    warning = loaded.untrained_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if loaded.preset != model.preset and not model.checkpoint:
        print(f"warning: model.preset={model.preset} not used: the weights at {loaded.source} are a "
              f"'{loaded.preset}' model", file=sys.stderr)
    print(f"model: {loaded.preset} from {loaded.source}; device {engine.device}, dtype {model.dtype}", file=sys.stderr)
    return engine, loaded
