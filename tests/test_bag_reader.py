"""BagReader over real rosbag2 layouts: MCAP dir, single .mcap file, Humble-style sqlite3 without definitions."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mvinverse_ros import topics
from mvinverse_ros.bag import BagError
from mvinverse_ros.bag.reader import UNDECODABLE, BagReader
from mvinverse_ros.bag.writer import BagWriter
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.images import rgb_image_msg

TYPESTORE = typestore_with_project_types()
FACTORY = RosbagsMessageFactory(TYPESTORE)
IMAGE = "/camera/color/image_raw"


def write_bag(path: Path, storage: str, count: int = 4, truncate: tuple[int, ...] = ()) -> None:
    """`count` small real rgb8 images, 0.1 s apart, plus a /tf_static; images in `truncate` cut in half."""
    with BagWriter(path, TYPESTORE, storage) as bag:
        bag.write(topics.TF_STATIC, "tf2_msgs/msg/TFMessage", 1, FACTORY.new("tf2_msgs/msg/TFMessage", transforms=[]),
                  latched=True)
        for i in range(count):
            stamp = 10**9 + i * 10**8
            rgb = np.full((4, 6, 3), i, np.uint8)
            raw = TYPESTORE.serialize_cdr(rgb_image_msg(FACTORY, rgb, header_msg(FACTORY, stamp, "cam")),
                                          topics.IMAGE_TYPE)
            bag.write_raw(IMAGE, topics.IMAGE_TYPE, stamp, bytes(raw[: len(raw) // 2] if i in truncate else raw))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_time_order_and_counted_undecodable_messages(tmp_path, storage):
    write_bag(tmp_path / "bag", storage, count=5, truncate=(1, 3))
    with BagReader(tmp_path / "bag") as bag:
        assert bag.topics == {topics.TF_STATIC: "tf2_msgs/msg/TFMessage", IMAGE: topics.IMAGE_TYPE}
        assert bag.message_counts == {topics.TF_STATIC: 1, IMAGE: 5}
        images = list(bag.messages([IMAGE]))
        assert [int(m.message.data[0]) for m in images] == [0, 2, 4]
        assert [m.log_time_ns for m in images] == sorted(m.log_time_ns for m in images)
        assert bag.skips == {UNDECODABLE: 2}
        raw = list(bag.messages([IMAGE], undecoded=[IMAGE]))
        assert len(raw) == 5 and all(m.message is None for m in raw) and bag.skips == {UNDECODABLE: 2}
        assert bag.qos_profiles(topics.TF_STATIC)[0].durability.name == "TRANSIENT_LOCAL"


def test_single_mcap_file(tmp_path):
    write_bag(tmp_path / "bag", "mcap")
    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    with BagReader(mcap) as bag:
        assert len(list(bag.messages([IMAGE]))) == 4


def test_humble_sqlite3_without_definitions_uses_the_humble_types(tmp_path):
    """Humble records sqlite3 schema 3: no message_definitions table; types come from the default store."""
    write_bag(tmp_path / "bag", "sqlite3")
    (db,) = (tmp_path / "bag").glob("*.db3")
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE message_definitions")
        connection.execute("UPDATE schema SET schema_version = 3")
    with BagReader(tmp_path / "bag") as bag:
        assert [int(m.message.data[0]) for m in bag.messages([IMAGE])] == [0, 1, 2, 3]


def test_unopenable_bags_are_one_clear_error(tmp_path):
    with pytest.raises(BagError, match=r"Could not open bag .*missing: no such file"):
        BagReader(tmp_path / "missing").__enter__()
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagError, match="empty_dir"):
        BagReader(tmp_path / "empty_dir").__enter__()
    (tmp_path / "junk.mcap").write_bytes(b"\x89MCAP0\r\n truncated")
    with pytest.raises(BagError, match="junk.mcap"):
        BagReader(tmp_path / "junk.mcap").__enter__()
    with pytest.raises(BagError, match="not open"):
        list(BagReader(tmp_path / "missing").messages())


def test_writer_refuses_existing_paths_and_unknown_storage(tmp_path):
    with pytest.raises(BagError, match="storage must be one of"):
        BagWriter(tmp_path / "x", TYPESTORE, "rosbag1")
    (tmp_path / "taken").mkdir()
    with pytest.raises(BagError, match="taken.*exists"):
        BagWriter(tmp_path / "taken", TYPESTORE).__enter__()
