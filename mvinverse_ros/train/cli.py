"""`mvinverse-ros generate | train | finetune`: synthetic data, supervised training, consistency fine-tuning."""
from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 112x84, got {text!r}") from err
    return w, h


def _views(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("..")
    try:
        return int(lo), int(hi or lo)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"views must look like 2..8, got {text!r}") from err


def _generate(args: argparse.Namespace) -> int:
    from .synthetic import RenderSettings, generate

    width, height = args.size
    settings = RenderSettings(width=width, height=height, spp=args.spp)
    paths = generate(args.out, args.scenes, *args.views, seed=args.seed, settings=settings, first=args.first)
    print(f"{len(paths)} scenes in {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `generate`, `train` and `finetune`."""
    gen = subparsers.add_parser("generate", help="render synthetic multi-view scenes with exact material ground truth")
    gen.add_argument("out", help="output folder (one scene_XXXXX.npz per scene; existing scenes are kept)")
    gen.add_argument("--scenes", type=int, default=100)
    gen.add_argument("--views", type=_views, default=(2, 8), help="views per scene, MIN..MAX (default 2..8)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--first", type=int, default=0, help="index of the first scene (to split a data set across runs)")
    gen.add_argument("--size", type=_size, default=(112, 84), help="WIDTHxHEIGHT (default 112x84)")
    gen.add_argument("--spp", type=int, default=32, help="samples per pixel (default 32)")
    gen.set_defaults(func=_generate)
