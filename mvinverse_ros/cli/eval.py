"""`mvinverse-ros eval`: material metrics and multi-view / temporal consistency tables."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mvinverse_ros.cli.common import EXIT_CODES, add_params_arguments, params_from_args, report_error

# The held-out suite: another seed AND the `heldout` scene style (object kinds and light set-ups that
# training never shows), at the training data's size.
DEFAULT_HELDOUT_SEED = 1000
DEFAULT_HELDOUT_SCENES = 16
DEFAULT_HELDOUT_STYLE = "heldout"
# The bundled model was consistency-fine-tuned on 7-Scenes frames 0-59 (unlabeled); the suite scores 60-99.
DEFAULT_SEVENSCENES_FIRST = 60


def _default_sevenscenes() -> Path:
    """The shared 7-Scenes frames beside the checkout (as in CI), or under $MVINVERSE_SHARED."""
    shared = os.environ.get("MVINVERSE_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
    return Path(shared) / "data" / "7scenes-redkitchen"


def _eval(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    synthetic, sevenscenes = args.synthetic, args.sevenscenes
    if not (args.suite or synthetic or sevenscenes):
        report_error("nothing to evaluate: give --suite default, --synthetic DIR and/or --sevenscenes DIR")
        return 2
    from mvinverse_ros.eval.suite import METHODS, evaluate_sequence, evaluate_synthetic, format_table
    from mvinverse_ros.model import load_model

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model, window = params.model, params.window.size
    loaded = load_model(model.checkpoint, preset=model.preset)
    warning = loaded.untrained_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    methods = tuple(args.methods.split(",")) if args.methods else METHODS
    if args.suite == "default":
        if synthetic is None:
            from mvinverse_ros.datasets.synthetic import RenderSettings, generate

            synthetic = Path(args.cache) / f"{DEFAULT_HELDOUT_STYLE}_seed{DEFAULT_HELDOUT_SEED}"
            generate(synthetic, DEFAULT_HELDOUT_SCENES, 4, 6, seed=DEFAULT_HELDOUT_SEED, settings=RenderSettings(),
                     style=DEFAULT_HELDOUT_STYLE)
        sevenscenes = sevenscenes or _default_sevenscenes()
        first = DEFAULT_SEVENSCENES_FIRST if args.first is None else args.first
    else:
        first = args.first or 0
    report = {"model": loaded.source, "preset": loaded.preset, "trained": loaded.trained,
              "albedo_alignment": "per-channel least-squares scale over valid pixels before PSNR/SSIM",
              "results": {}}
    tables = []
    long_side = model.long_side or loaded.native_long_side
    if synthetic:
        results = evaluate_synthetic(synthetic, loaded.model, long_side, methods)
        report["results"]["synthetic"] = {"folder": str(synthetic), **results}
        tables.append(format_table(results, f"Held-out synthetic scenes ({synthetic})"))
    if sevenscenes:
        results = evaluate_sequence(sevenscenes, loaded.model, long_side, window=window, limit=args.limit,
                                    first=first, methods=methods)
        report["results"]["sevenscenes"] = {"folder": str(sevenscenes), "window": window, "first": first,
                                            **results}
        title = f"Real RGB-D sequence from frame {first}, windows of {window} ({sevenscenes})"
        tables.append(format_table(results, title))
    print("\n\n".join(tables))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval`."""
    ev = subparsers.add_parser(
        "eval", help="material metrics and multi-view / temporal consistency vs baselines",
        description="Reads model.checkpoint, model.preset, model.long_side (0 = the size the weights were trained "
                    "at) and window.size (frames per window on sequences); runs on the CPU.",
        epilog=EXIT_CODES,
    )
    ev.add_argument("--suite", choices=["default"],
                    help="held-out generated scenes (another seed and the heldout scene style, rendered once into "
                         "--cache) + shared 7-Scenes frames")
    add_params_arguments(ev, ("--checkpoint", "--preset", "--long-side", "--window"))
    ev.add_argument("--synthetic", type=Path, help="folder of generated scene_XXXXX.npz with ground truth")
    ev.add_argument("--sevenscenes", type=Path, help="7-Scenes folder (frame-*.color.jpg/depth.png/pose.txt)")
    ev.add_argument("--first", type=int,
                    help=f"first frame of the sequence to use (suite default: {DEFAULT_SEVENSCENES_FIRST})")
    ev.add_argument("--limit", type=int, help="use at most N frames of the sequence")
    ev.add_argument("--methods", help="comma-separated subset of the methods (default all)")
    ev.add_argument("--cache", default=str(Path.home() / ".cache" / "mvinverse_ros"),
                    help="where --suite default renders its held-out scenes")
    ev.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default; 1 on a shared CPU)")
    ev.add_argument("--json", help="also write the results as JSON here")
    ev.set_defaults(func=_eval)
