"""`mvinverse-ros generate | train | finetune`: synthetic data, supervised training, consistency fine-tuning."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training sub-commands (filled in as the train package lands)."""
