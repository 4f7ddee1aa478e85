"""What the node tells people: its /diagnostics figures and status, and why it hears nothing.

ROS-free: the node turns these strings and levels into DiagnosticStatus / log lines.
"""
from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mvinverse_ros.runtime.stats import RecentSamples


class Level(enum.IntEnum):
    """Status levels with diagnostic_msgs/DiagnosticStatus's byte values."""

    OK = 0
    WARN = 1
    ERROR = 2


def health(active: bool, worker_alive: bool, input_rate: float) -> tuple[Level, str]:
    """(level, message) of the node's status: the first of inactive, worker dead, silent input that holds."""
    if not active:
        return Level.WARN, "inactive"
    if not worker_alive:
        return Level.ERROR, "inference worker stopped"
    if input_rate == 0.0:
        return Level.WARN, "no input"
    return Level.OK, "running"


def _milliseconds(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000.0:.1f}"


@dataclass
class RunFigures:
    """What the node counts and times while it runs.

    Attributes:
        counters: event name -> count ('frames_in', 'frame_errors', 'time_resets', the frame skip reasons, ...).
        inputs: one sample per synchronized frame received.
        inference: network seconds per window.
        latency: image stamp -> maps published, seconds.
    """

    counters: Counter[str] = field(default_factory=Counter)
    inputs: RecentSamples = field(default_factory=RecentSamples)
    inference: RecentSamples = field(default_factory=RecentSamples)
    latency: RecentSamples = field(default_factory=RecentSamples)

    def values(self, now: float, dropped_windows: int, window_errors: int,
               pipeline_counters: Mapping[str, int] | None = None,
               window_counters: Mapping[str, int] | None = None) -> dict[str, str]:
        """The /diagnostics key -> value strings at monotonic time `now`.

        Args:
            now: time.monotonic() of the report.
            dropped_windows: windows dropped because the worker was behind, or discarded by a time jump.
            window_errors: windows whose processing raised.
            pipeline_counters: PerceptionPipeline.counters, when a pipeline exists.
            window_counters: PerceptionPipeline.window_counters(), when a pipeline exists.
        """
        values = {
            "input rate (Hz)": f"{self.inputs.rate(now):.2f}",
            "inference per window mean (ms)": _milliseconds(self.inference.mean(now)),
            "latency stamp->publish mean (ms)": _milliseconds(self.latency.mean(now)),
            "latency stamp->publish max (ms)": _milliseconds(self.latency.maximum(now)),
            "windows dropped (worker behind)": str(dropped_windows),
            "tf failures": str(self.counters["no_transform"]),
        }
        counts = dict(self.counters)  # one C-level copy: callbacks may add a counter meanwhile
        counts["window_errors"] = window_errors
        values.update({name: str(count) for name, count in sorted(counts.items())})
        values.update({f"pipeline {k}": str(v) for k, v in sorted((pipeline_counters or {}).items())})
        values.update({f"window {k}": str(v) for k, v in sorted((window_counters or {}).items())})
        return values


class SilenceWatch:
    """When to explain that no synchronized frame has arrived: after `patience` seconds of steady time.

    The clock is the caller's steady one (time.monotonic), never ROS time: with use_sim_time ROS time
    stands still until /clock arrives, then leaps, which would fire a hint at once. The synchronizer
    also gets `patience` seconds from the first input message before a hint blames pairing, so the
    first messages of a replay never trigger one.

    Args:
        patience: seconds of silence before a hint.
    """

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._since: float | None = None
        self._first_message: float | None = None
        self._paired = False

    def start(self, now: float) -> None:
        """The node began listening (activation): forget earlier input."""
        self._since, self._first_message, self._paired = now, None, False

    def stop(self) -> None:
        """The node stopped listening: no hint until the next `start`."""
        self._since = None

    def message(self, now: float) -> None:
        """Note that input arrived, on any subscribed topic."""
        if self._first_message is None:
            self._first_message = now

    def frame(self) -> None:
        """A synchronized frame arrived: input works, no hint any more."""
        self._paired = True

    def due(self, now: float) -> bool:
        """Whether a hint is due: listening for `patience` s and, if messages came, `patience` s since the first."""
        if self._since is None or self._paired:
            return False
        waited_from = self._since if self._first_message is None else self._first_message
        return now - waited_from >= self.patience


@dataclass(frozen=True)
class TopicActivity:
    """What the ROS graph says about one subscribed topic.

    Attributes:
        topic: the resolved topic name.
        publishers: how many publishers it has.
        reliabilities: their QoS reliabilities ('best_effort', 'reliable').
        received: messages this node received on it.
    """

    topic: str
    publishers: int
    reliabilities: frozenset[str]
    received: int


def silence_hint(activity: Sequence[TopicActivity], reliability: str) -> str:
    """The warning explaining why no synchronized frame has arrived yet, with one line per topic.

    Args:
        activity: every subscribed topic.
        reliability: the node's inputs.reliability.
    """
    if reliability == "reliable" and any("best_effort" in a.reliabilities for a in activity):
        hint = "inputs.reliability is 'reliable', which hears no best_effort publisher: set it to best_effort"
    elif not any(a.received for a in activity):
        hint = "nothing received: check the topic names (namespace, remappings) and that a publisher runs"
    else:
        hint = ("messages arrive but never pair: check that their stamps agree within inputs.sync_slop and "
                "that every listed topic publishes (set an unused depth topic to '')")
    lines = [f"{a.topic}: {a.publishers} publisher(s) {sorted(a.reliabilities) or ''}, {a.received} message(s) received"
             for a in activity]
    return f"no synchronized frame yet. {hint}.\n  " + "\n  ".join(lines)
