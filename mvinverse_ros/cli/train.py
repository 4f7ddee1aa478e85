"""`mvinverse-ros generate | train | finetune`: synthetic data, supervised training, consistency fine-tuning."""
from __future__ import annotations

import argparse

from mvinverse_ros.cli.common import EXIT_CODES, add_params_arguments, params_from_args, report_error
from mvinverse_ros.datasets.synthetic import SCENE_STYLES
from mvinverse_ros.types import MAP_NAMES


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
    from mvinverse_ros.datasets.synthetic import RenderSettings, generate

    width, height = args.size
    settings = RenderSettings(width=width, height=height, spp=args.spp)
    paths = generate(args.out, args.scenes, *args.views, seed=args.seed, settings=settings, first=args.first,
                     style=args.style)
    print(f"{len(paths)} scenes in {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from mvinverse_ros.train.trainer import TrainConfig, train

    config = TrainConfig(preset=args.preset, steps=args.steps, batch_size=args.batch_size, min_views=args.views[0],
                         max_views=args.views[1], lr=args.lr, lr_warmup=args.lr_warmup,
                         albedo_warmup=args.albedo_warmup, albedo_anchor=args.albedo_anchor,
                         bounded_weight=args.bounded_weight, no_gradient=tuple(args.no_gradient), crop=args.crop,
                         checkpoint_every=args.checkpoint_every, freeze_encoders=args.freeze_encoders, seed=args.seed,
                         threads=args.threads)
    train(args.data, args.out, config, resume=args.resume)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    from mvinverse_ros.train.consistency import FinetuneConfig, finetune

    config = FinetuneConfig(steps=args.steps, window=args.window, lr=args.lr, anchor_weight=args.anchor_weight,
                            correspondence=args.correspondence, checkpoint_every=args.checkpoint_every,
                            threads=args.threads, seed=args.seed)
    try:
        finetune(args.source, params.model.checkpoint, args.out, config, size=args.size, limit=args.limit,
                 params=params)
    except ValueError as err:  # a sequence too short for a window, or depth asked of one without: unusable input
        report_error(err)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `generate`, `train` and `finetune`."""
    gen = subparsers.add_parser("generate", help="render synthetic multi-view scenes with exact material ground truth",
                                epilog=EXIT_CODES)
    gen.add_argument("out", help="output folder (one scene_XXXXX.npz per scene; existing scenes are kept)")
    gen.add_argument("--scenes", type=int, default=100)
    gen.add_argument("--views", type=_views, default=(2, 8), help="views per scene, MIN..MAX (default 2..8)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--first", type=int, default=0, help="index of the first scene (to split a data set across runs)")
    gen.add_argument("--size", type=_size, default=(112, 84), help="WIDTHxHEIGHT (default 112x84)")
    gen.add_argument("--spp", type=int, default=32, help="samples per pixel (default 32)")
    gen.add_argument("--style", choices=sorted(SCENE_STYLES), default="train",
                     help="room distribution: train, or heldout (object kinds and light set-ups training never shows)")
    gen.set_defaults(func=_generate)

    tr = subparsers.add_parser("train", help="supervised training on generated scenes (resumable)", epilog=EXIT_CODES)
    tr.add_argument("data", help="folder of scene_XXXXX.npz from `generate`")
    tr.add_argument("--out", required=True,
                    help="checkpoint folder (last.safetensors, last.optim.safetensors, log.jsonl)")
    tr.add_argument("--preset", default="small", help="model preset (small | tiny | official)")
    tr.add_argument("--steps", type=int, default=1000, help="total optimizer steps")
    tr.add_argument("--resume", action="store_true", help="continue from --out/last.safetensors")
    tr.add_argument("--freeze-encoders", action="store_true", help="train only the decoder and heads")
    tr.add_argument("--batch-size", type=int, default=1)
    tr.add_argument("--views", type=_views, default=(2, 4), help="views per sample, MIN..MAX (default 2..4)")
    tr.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (warm-up, then cosine to a tenth)")
    tr.add_argument("--lr-warmup", type=int, default=300, help="steps of linear learning-rate warm-up")
    tr.add_argument("--albedo-warmup", type=int, default=200,
                    help="steps of plain albedo MSE before the scale-invariant loss")
    tr.add_argument("--albedo-anchor", type=float, default=0.1,
                    help="weight of the plain albedo MSE kept beside the scale-invariant one")
    tr.add_argument("--bounded-weight", type=float, default=1.0,
                    help="weight of the metallic and roughness loss terms (the paper: 1)")
    tr.add_argument("--no-gradient", nargs="+", default=[], metavar="MAP",
                    choices=[name for name in MAP_NAMES if name != "normal"],
                    help="maps trained without the multi-scale gradient loss term")
    tr.add_argument("--crop", type=_size, default=None, help="random crop WIDTHxHEIGHT (multiples of 14)")
    tr.add_argument("--checkpoint-every", type=int, default=25)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default; 1 on a shared CPU)")
    tr.set_defaults(func=_train)

    ft = subparsers.add_parser(
        "finetune", help="self-supervised multi-view consistency fine-tuning on an unlabeled sequence",
        description="Starts from model.checkpoint. For a bag, its topics (inputs.*) and tf.fixed_frame come "
                    "from the parameters too.",
        epilog=EXIT_CODES)
    ft.add_argument("source", help="image folder (flow correspondences), 7-Scenes folder (depth + poses) or "
                    "rosbag directory / .mcap (depth + poses from its tf when it has them, else flow)")
    ft.add_argument("--out", required=True, help="output folder (last.safetensors, log.jsonl)")
    add_params_arguments(ft, ("--checkpoint",))
    ft.add_argument("--correspondence", choices=["auto", "depth", "flow"], default="auto",
                    help="auto = depth + poses when the source has them, else DIS optical flow")
    ft.add_argument("--steps", type=int, default=200)
    ft.add_argument("--window", type=int, default=3,
                    help="consecutive frames per training step (a training knob, not window.size)")
    ft.add_argument("--lr", type=float, default=2e-5)
    ft.add_argument("--anchor-weight", type=float, default=1.0,
                    help="weight of the frame-0 anchor to the frozen start model")
    ft.add_argument("--size", type=_size, default=(112, 84), help="network input WIDTHxHEIGHT (multiples of 14)")
    ft.add_argument("--limit", type=int, help="use only the first N frames")
    ft.add_argument("--checkpoint-every", type=int, default=25)
    ft.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default; 1 on a shared CPU)")
    ft.add_argument("--seed", type=int, default=0)
    ft.set_defaults(func=_finetune)
