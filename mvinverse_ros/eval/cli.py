"""`mvinverse-ros eval`: material metrics and multi-view / temporal consistency tables."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the eval sub-command (filled in as the eval package lands)."""
