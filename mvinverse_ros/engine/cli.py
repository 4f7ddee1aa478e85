"""`mvinverse-ros infer`: run the model over a folder of images, window by window."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `infer` sub-command."""
    parser = subparsers.add_parser("infer", help="predict material maps for a folder of images")
    parser.add_argument("image_dir")
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=_infer)


def _infer(args: argparse.Namespace) -> int:
    raise SystemExit("infer is not implemented yet")
