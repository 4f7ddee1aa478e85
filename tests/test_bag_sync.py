"""Approximate-time pairing on real rosbags messages (stamps are the only thing that matters)."""
from __future__ import annotations

import numpy as np
import pytest

from mvinverse_ros.bag.sync import ApproximateSynchronizer
from mvinverse_ros.conversions.factory import header_msg, stamp_to_ns
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types

MS = 1_000_000
FACTORY = RosbagsMessageFactory(typestore_with_project_types())


def stamped(stamp_ns: int):
    """A real CompressedImage message with that header stamp."""
    return FACTORY.new("sensor_msgs/msg/CompressedImage", header=header_msg(FACTORY, stamp_ns, "f"), format="jpeg",
                       data=FACTORY.array(np.zeros(1, np.uint8)))


def test_pairs_within_slop_in_stream_order():
    sync = ApproximateSynchronizer(("image", "info", "depth"), queue_size=5, slop_ns=20 * MS)
    assert sync.add("image", stamped(1000 * MS)) is None
    assert sync.add("depth", stamped(1010 * MS)) is None
    matched = sync.add("info", stamped(995 * MS))
    assert [stamp_to_ns(m.header.stamp) for m in matched] == [1000 * MS, 995 * MS, 1010 * MS]
    assert sync.add("image", stamped(1100 * MS)) is None  # its partners have been consumed
    sync.flush()
    assert sync.unpaired == {"image": 1}


def test_spread_beyond_slop_never_pairs_and_is_counted():
    sync = ApproximateSynchronizer(("image", "info"), queue_size=5, slop_ns=20 * MS)
    assert sync.add("image", stamped(1000 * MS)) is None
    assert sync.add("info", stamped(1030 * MS)) is None
    sync.flush()
    assert sync.unpaired == {"image": 1, "info": 1}


def test_closest_partner_wins_and_queue_overflow_is_counted():
    sync = ApproximateSynchronizer(("image", "info"), queue_size=2, slop_ns=50 * MS)
    for stamp in (1000, 1033, 1066):          # third push evicts the 1000 ms image
        assert sync.add("image", stamped(stamp * MS)) is None
    assert sync.unpaired == {"image": 1}
    matched = sync.add("info", stamped(1060 * MS))
    assert stamp_to_ns(matched[0].header.stamp) == 1066 * MS  # closest, not oldest
    sync.flush()
    assert sync.unpaired == {"image": 2}


def test_queue_size_must_be_positive():
    with pytest.raises(ValueError, match="queue size"):
        ApproximateSynchronizer(("image", "info"), queue_size=0, slop_ns=1)
