"""The node's /diagnostics figures, status levels and silence hint, without ROS."""
from __future__ import annotations

from collections import Counter

import pytest

from mvinverse_ros.runtime.diagnostics import Level, RunFigures, TopicActivity, health, silence_hint


@pytest.mark.parametrize("active, alive, rate, expected", [
    (False, False, 0.0, (Level.WARN, "inactive")),
    (False, True, 30.0, (Level.WARN, "inactive")),
    (True, False, 30.0, (Level.ERROR, "inference worker stopped")),
    (True, False, 0.0, (Level.ERROR, "inference worker stopped")),
    (True, True, 0.0, (Level.WARN, "no input")),
    (True, True, 0.2, (Level.OK, "running")),
])
def test_health_names_the_worst_condition(active, alive, rate, expected):
    assert health(active, alive, rate) == expected


def test_levels_are_diagnostic_status_bytes():
    # diagnostic_msgs/DiagnosticStatus: OK=0, WARN=1, ERROR=2; the node sends bytes([level]).
    assert [bytes([level]) for level in Level] == [b"\x00", b"\x01", b"\x02"]


def test_values_report_rates_means_drops_and_every_counter():
    figures = RunFigures()
    for t in (10.0, 11.0, 12.0, 13.0, 14.0):
        figures.inputs.add(t)
    figures.inference.add(13.0, 0.25)
    figures.inference.add(14.0, 0.35)
    figures.latency.add(14.0, 0.5)
    figures.latency.add(14.0, 0.7)
    figures.counters.update({"frames_in": 5, "no_transform": 2})
    values = figures.values(14.0, dropped_windows=3, window_errors=1,
                            pipeline_counters=Counter({"windows": 4, "fused": 2}),
                            window_counters=Counter({"resets": 1}))
    assert values["input rate (Hz)"] == "1.00"  # 5 frames in the last 5 s
    assert values["inference per window mean (ms)"] == "300.0"
    assert values["latency stamp->publish mean (ms)"] == "600.0"
    assert values["latency stamp->publish max (ms)"] == "700.0"
    assert values["windows dropped (worker behind)"] == "3"
    assert values["tf failures"] == "2"
    assert (values["frames_in"], values["no_transform"], values["window_errors"]) == ("5", "2", "1")
    assert (values["pipeline fused"], values["pipeline windows"], values["window resets"]) == ("2", "4", "1")
    counter_keys = [k for k in values if k in ("frames_in", "no_transform", "window_errors")]
    assert counter_keys == sorted(counter_keys)


def test_values_without_samples_or_pipeline():
    values = RunFigures().values(100.0, dropped_windows=0, window_errors=0)
    assert values["input rate (Hz)"] == "0.00"
    assert values["inference per window mean (ms)"] == "n/a"
    assert values["latency stamp->publish max (ms)"] == "n/a"
    assert values["window_errors"] == "0"
    assert not any(k.startswith(("pipeline ", "window ")) for k in values)


def test_old_samples_leave_the_figures():
    figures = RunFigures()
    figures.inputs.add(0.0)
    figures.latency.add(0.0, 1.0)
    values = figures.values(60.0, 0, 0)
    assert values["input rate (Hz)"] == "0.00" and values["latency stamp->publish mean (ms)"] == "n/a"
    assert health(True, True, figures.inputs.rate(60.0)) == (Level.WARN, "no input")


IMAGE = TopicActivity("/camera/color/image_raw", 1, frozenset({"best_effort"}), 0)
INFO = TopicActivity("/camera/color/camera_info", 1, frozenset({"reliable"}), 0)
SILENT_DEPTH = TopicActivity("/camera/depth/image_raw", 0, frozenset(), 0)


def test_silence_hint_blames_reliability_when_a_best_effort_publisher_goes_unheard():
    text = silence_hint([IMAGE, INFO], "reliable")
    assert text.startswith("no synchronized frame yet. inputs.reliability is 'reliable'")
    assert "/camera/color/image_raw: 1 publisher(s) ['best_effort'], 0 message(s) received" in text
    assert "set it to best_effort" not in silence_hint([IMAGE, INFO], "best_effort")


def test_silence_hint_says_nothing_arrives_or_nothing_pairs():
    nothing = silence_hint([IMAGE, INFO, SILENT_DEPTH], "best_effort")
    assert "nothing received: check the topic names" in nothing
    assert "/camera/depth/image_raw: 0 publisher(s) , 0 message(s) received" in nothing
    assert len(nothing.splitlines()) == 4  # the hint, then one line per topic
    arriving = TopicActivity(IMAGE.topic, 1, IMAGE.reliabilities, 30)
    unpaired = silence_hint([arriving, INFO, SILENT_DEPTH], "best_effort")
    assert "messages arrive but never pair" in unpaired and "30 message(s) received" in unpaired
