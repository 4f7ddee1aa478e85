"""What the pipeline needs of an engine, typed so that another backend can stand in for the torch one."""
from __future__ import annotations

from typing import Protocol

from mvinverse_ros.types import Window, WindowResult


class WindowEngine(Protocol):
    """Runs windows; may cache per-frame work between consecutive windows of one stream."""

    def run(self, window: Window) -> WindowResult:
        """The maps of `window`'s published frames (equal to a full recompute of the window)."""
        ...

    def reset(self) -> None:
        """Forget every cached frame (a new sequence starts)."""
        ...

    def release(self) -> None:
        """Free accelerator memory until the next `run`."""
        ...
