"""The /diagnostics input rate reads the real rate from the first seconds of a run on (runtime.stats).

It used to divide the samples of the last span by the whole span, so a 5 Hz replay read 0.2, 0.4, ...
up to 5 Hz over the first five seconds, and a two-second replay never read more than 2.00 Hz.
"""
from __future__ import annotations

import pytest

from mvinverse_ros.runtime.stats import RecentSamples

PERIOD = 0.2  # a 5 Hz camera


def _steady(samples: RecentSamples, start: float, count: int) -> float:
    """Add `count` samples at 5 Hz from `start`; the time of the last one."""
    for k in range(count):
        samples.add(start + k * PERIOD)
    return start + (count - 1) * PERIOD


def test_a_young_five_hertz_run_reads_five_hertz():
    samples = RecentSamples(span=5.0)
    last = _steady(samples, 100.0, 10)  # a 2 s replay
    assert samples.rate(last) == pytest.approx(5.0)
    assert samples.rate(last + PERIOD / 2) == pytest.approx(9 / 1.9)  # half an interval later, no new frame yet


def test_a_long_run_reads_its_rate_over_the_span():
    samples = RecentSamples(span=5.0)
    last = _steady(samples, 0.0, 100)
    assert samples.rate(last) == pytest.approx(5.0, abs=0.25)  # 25 or 26 samples within the closed span


def test_silence_brings_the_rate_down_then_to_zero():
    samples = RecentSamples(span=5.0)
    last = _steady(samples, 0.0, 10)
    assert samples.rate(last + 2.0) == pytest.approx(9 / 3.8)  # the run's 10 samples over 3.8 s
    assert samples.rate(last + 6.0) == 0.0


def test_a_run_after_a_long_silence_starts_afresh():
    samples = RecentSamples(span=5.0)
    _steady(samples, 0.0, 10)
    last = _steady(samples, 60.0, 6)
    assert samples.rate(last) == pytest.approx(5.0)


def test_one_sample_alone_is_not_an_infinite_rate():
    samples = RecentSamples(span=5.0)
    samples.add(7.0)
    assert samples.rate(7.0) == pytest.approx(1 / 5.0)
