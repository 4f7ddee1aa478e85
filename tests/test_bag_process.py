"""`bag process` end to end on real 7-Scenes frames: outputs, fused geometry, skips, storages, Ctrl-C.

Small on purpose (6 frames, the tiny untrained preset at a low resolution): everything checked here
is plumbing and geometry, which does not depend on trained weights.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mvinverse_ros import topics
from mvinverse_ros.bag import BagError
from mvinverse_ros.bag.importer import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC, import_rgbd
from mvinverse_ros.conversions.ply import read_ply
from mvinverse_ros.bag.process import BagProcessor
from mvinverse_ros.bag.reader import UNDECODABLE, BagReader
from mvinverse_ros.bag.writer import BagWriter
from mvinverse_ros.cli import main
from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.bag.typestore import typestore_with_project_types
from mvinverse_ros.conversions.encoding import (NORMAL_ERROR_BOUND, UNIT_ERROR_BOUND, decode_normal16,
                                                decode_unit16)
from mvinverse_ros.conversions.images import float_image_to_array, image_to_rgb
from mvinverse_ros.conversions.pointcloud import cloud_from_msg
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.geometry.camera import project_points
from mvinverse_ros.geometry.transforms import invert, transform_points
from mvinverse_ros.params import load_params
from mvinverse_ros.types import CameraModel
from test_import_rgbd import few_frames

FRAMES = 6
FAST = {
    "model.preset": "tiny", "model.long_side": "112", "model.device": "cpu",
    "window.size": "2", "window.stride": "2", "window.publish": "all",
    "window.min_translation": "0", "window.min_rotation_deg": "0", "window.min_interval": "0",
    "fusion.pixel_stride": "4",
    # the node's layout (float Images and MaterialMaps); the compact default has its own test
    "bag.map_encoding": "raw", "bag.write_materials": "true",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("process")


@pytest.fixture(scope="module")
def sequence(sevenscenes_dir: Path, work: Path) -> Path:
    return few_frames(sevenscenes_dir, work / "seq", FRAMES)


@pytest.fixture(scope="module")
def input_bags(sequence: Path, work: Path) -> dict[str, Path]:
    bags = {storage: work / f"in_{storage}" for storage in ("mcap", "sqlite3")}
    for storage, path in bags.items():
        import_rgbd(sequence, path, fps=10.0, storage=storage)
    return bags


@pytest.fixture(scope="module")
def params():
    return load_params(None, FAST)


@pytest.fixture(scope="module")
def engine(params):
    engine, _ = engine_from_params(params.model)
    return engine


@pytest.fixture(scope="module")
def processed(input_bags, params, engine, work):
    out = work / "out_mcap"
    summary = BagProcessor(params, engine).run(input_bags["mcap"], out, work / "out.ply", work / "out.png",
                                               progress=False)
    return summary, out


def read_all(path: Path) -> dict[str, list]:
    with BagReader(path) as bag:
        messages: dict[str, list] = {}
        for m in bag.messages():
            messages.setdefault(m.topic, []).append(m)
        assert not bag.skips
    return messages


def test_every_topic_with_expected_counts_and_encodings(processed):
    summary, out = processed
    assert (summary.frames, summary.windows, summary.published, summary.fused) == (FRAMES, 3, FRAMES, FRAMES)
    assert not summary.skips
    messages = read_all(out)
    expected = {topic: FRAMES for topic in topics.OUTPUT_TYPES}
    expected[topics.CLOUD] = 1
    assert {t: len(m) for t, m in messages.items()} == expected
    with BagReader(out) as bag:
        assert bag.topics == topics.OUTPUT_TYPES
    for topic, encoding in topics.IMAGE_ENCODINGS.items():
        assert {m.message.encoding for m in messages[topic]} == {encoding}
        assert {(m.message.width, m.message.height) for m in messages[topic]} == {(640, 480)}
    for topic in topics.IMAGE_ENCODINGS:
        stamps = [stamp_to_ns(m.message.header.stamp) for m in messages[topic]]
        assert [m.log_time_ns for m in messages[topic]] == stamps
    materials = [m.message for m in messages[topics.MATERIALS]]
    assert [m.frame_index for m in materials] == [0, 1] * 3
    assert all(len(m.window_stamps) == 2 and m.inference_time == 0.0 for m in materials)
    assert materials[0].header.frame_id == "camera_color_optical_frame"
    cloud = messages[topics.CLOUD][0].message
    assert cloud.header.frame_id == "odom" and cloud.width == summary.cloud_points > 1000
    metadata = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] == 8 and metadata["storage_identifier"] == "mcap"


def test_fused_cloud_lands_on_the_depth_of_a_known_view(processed, sequence):
    """Points re-projected into frame 3 (pose and depth from the dataset files) lie on its depth."""
    summary, out = processed
    vertices = read_ply(summary.ply_path)
    assert len(vertices) == summary.cloud_points
    cloud = cloud_from_msg(read_all(out)[topics.CLOUD][0].message)
    np.testing.assert_array_equal(cloud.points[:, 0], vertices["x"])
    K = np.loadtxt(sequence / "camera-intrinsics.txt")
    camera = CameraModel(640, 480, K)
    pose = np.loadtxt(sequence / "frame-000009.pose.txt")
    depth = cv2.imread(str(sequence / "frame-000009.depth.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0
    in_camera = transform_points(invert(pose), cloud.points.astype(np.float64))
    in_front = in_camera[in_camera[:, 2] > 0.1]
    uv, z = project_points(in_front, camera)
    cols, rows = np.round(uv).astype(int).T
    inside = (cols >= 0) & (cols < 640) & (rows >= 0) & (rows < 480)
    z = z[inside]
    measured = depth[rows[inside], cols[inside]]
    valid = measured > 0
    error = np.abs(z[valid] - measured[valid])
    assert valid.sum() > 1000
    assert np.median(error) < 0.02 and np.mean(error < 0.05) > 0.8


def test_contact_sheet_written(processed):
    summary, _ = processed
    sheet = cv2.imread(str(summary.sheet_path))
    assert sheet is not None and sheet.shape[1] == 6 * 192 and sheet.shape[0] >= 2 * 144


def test_sqlite3_and_mcap_inputs_give_byte_identical_outputs(processed, input_bags, params, engine, work):
    """Also the determinism check: a second, independent run reproduces every message byte."""
    _, reference = processed
    sqlite_params = load_params(None, {**FAST, "bag.storage": "sqlite3"})
    summary = BagProcessor(sqlite_params, engine).run(input_bags["sqlite3"], work / "out_sqlite3", None, None,
                                                      progress=False)
    assert list((work / "out_sqlite3").glob("*.db3"))
    ours, theirs = read_all(reference), read_all(work / "out_sqlite3")
    assert ours.keys() == theirs.keys()
    for topic in ours:
        assert [(m.log_time_ns, m.raw) for m in ours[topic]] == [(m.log_time_ns, m.raw) for m in theirs[topic]], topic
    assert summary.ply_path is None


def corrupt_copy(source: Path, target: Path) -> None:
    """Copy the imported bag with one defect per frame.

    Frames are 100 ms apart, stamps from the importer: frame 1 image truncated CDR, frame 2
    image in an unsupported encoding, frame 3 depth whose data is half its header's size,
    frame 4 without camera_info, frame 5 without its /tf sample.
    """
    typestore = typestore_with_project_types()
    start = None
    with BagReader(source) as bag, BagWriter(target, typestore, "mcap") as out:
        for m in bag.messages():
            if start is None:
                start = m.log_time_ns
            frame = round((m.log_time_ns - start) / 100_000_000)
            raw = m.raw
            if m.topic == COLOR_TOPIC and frame == 1:
                raw = raw[: len(raw) // 2]
            elif m.topic == COLOR_TOPIC and frame == 2:
                m.message.encoding = "8UC3"  # generic: no channel order, not colour
                raw = typestore.serialize_cdr(m.message, m.msgtype)
            elif m.topic == DEPTH_TOPIC and frame == 3:
                m.message.data = m.message.data[: m.message.data.size // 2]
                raw = typestore.serialize_cdr(m.message, m.msgtype)
            elif (m.topic == CAMERA_INFO_TOPIC and frame == 4) or (m.topic == topics.TF and frame == 5):
                continue
            out.write_raw(m.topic, m.msgtype, m.log_time_ns, bytes(raw), latched=m.topic == topics.TF_STATIC)


def test_corrupt_messages_are_exactly_counted_skips(input_bags, params, engine, work):
    corrupt_copy(input_bags["mcap"], work / "corrupt")
    summary = BagProcessor(params, engine).run(work / "corrupt", work / "out_corrupt", None, None, progress=False)
    assert dict(summary.skips) == {
        UNDECODABLE: 1,                 # frame 1 image
        "unpaired_camera_info": 1,      # frame 1's partners, never matched
        "unpaired_depth": 2,            # frames 1 and 4
        "unpaired_image": 1,            # frame 4 (no camera_info)
        "bad_image": 1,                 # frame 2
        "bad_depth": 1,                 # frame 3: kept without depth
        "no_transform": 1,              # frame 5: kept without pose
        "unfused_no_depth": 1,          # frame 3 published, not fused
    }
    counts = (summary.image_messages, summary.frames, summary.windows, summary.published, summary.fused)
    assert counts == (5, 3, 1, 2, 1)
    messages = read_all(work / "out_corrupt")
    assert len(messages[topics.MATERIALS]) == 2 and len(messages[topics.CLOUD]) == 1


class InterruptingEngine:
    """The real engine, with Ctrl-C arriving during the second window (where SIGINT lands in practice)."""

    def __init__(self, engine):
        self.engine, self.runs = engine, 0

    def run(self, window):
        self.runs += 1
        if self.runs == 2:
            raise KeyboardInterrupt
        return self.engine.run(window)

    def reset(self):
        self.engine.reset()


def test_ctrl_c_closes_the_bag_with_everything_written(input_bags, params, engine, work):
    processor = BagProcessor(params, InterruptingEngine(engine))
    summary = processor.run(input_bags["mcap"], work / "out_interrupted", work / "interrupted.ply", None,
                            progress=False)
    assert summary.interrupted and summary.windows == 1
    messages = read_all(work / "out_interrupted")
    assert len(messages[topics.MATERIALS]) == 2 and len(messages[topics.CLOUD]) == 1
    assert len(read_ply(work / "interrupted.ply")) == summary.cloud_points > 0


def test_copy_inputs_and_per_window_clouds(input_bags, work, engine):
    params = load_params(None, {**FAST, "bag.copy_inputs": "true", "bag.cloud_per_window": "true"})
    BagProcessor(params, engine).run(input_bags["mcap"], work / "out_copy", None, None, progress=False)
    counts = {t: len(m) for t, m in read_all(work / "out_copy").items()}
    assert counts[topics.CLOUD] == 3  # one per window, the last one is the final map
    assert counts[COLOR_TOPIC] == counts[DEPTH_TOPIC] == counts[topics.TF] == FRAMES and counts[topics.TF_STATIC] == 1
    metadata = yaml.safe_load((work / "out_copy" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    qos = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
           for t in metadata["topics_with_message_count"]}
    assert yaml.safe_load(qos[topics.TF_STATIC])[0]["durability"] == 1


def test_missing_topics_and_unreadable_bags_are_clear_errors(input_bags, engine, work, tmp_path):
    params = load_params(None, {**FAST, "inputs.transport": "compressed"})
    with pytest.raises(BagError, match=r"/camera/color/image_raw/compressed is not in the bag.*image_raw"):
        BagProcessor(params, engine).run(input_bags["mcap"], tmp_path / "out", None, None, progress=False)
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"not a bag at all")
    with pytest.raises(BagError, match="garbage.mcap"):
        BagProcessor(load_params(None, FAST), engine).run(garbage, tmp_path / "out2", None, None, progress=False)
    with pytest.raises(BagError, match="exists"):
        BagProcessor(load_params(None, FAST), engine).run(input_bags["mcap"], input_bags["sqlite3"], None, None,
                                                          progress=False)


def test_default_bag_is_compact_and_its_maps_decode_within_the_stated_bounds(processed, input_bags, engine, work):
    """PNG maps on <topic>/compressed, no MaterialMaps copy, zstd chunks: a fraction of the node layout's bytes."""
    _, raw_out = processed
    compact = {k: v for k, v in FAST.items() if not k.startswith("bag.")}
    summary = BagProcessor(load_params(None, compact), engine).run(input_bags["mcap"], work / "out_compact",
                                                                   progress=False)
    raw, packed = read_all(raw_out), read_all(work / "out_compact")
    assert set(packed) == {topics.compressed(t) for t in topics.IMAGE_ENCODINGS} | {topics.CLOUD}
    assert summary.written[topics.compressed(topics.ALBEDO)] == FRAMES
    for topic in topics.IMAGE_ENCODINGS:
        for plain, png in zip(raw[topic], packed[topics.compressed(topic)], strict=True):
            assert png.msgtype == topics.COMPRESSED_IMAGE_TYPE and png.log_time_ns == plain.log_time_ns
            assert png.message.header.frame_id == plain.message.header.frame_id
            assert stamp_to_ns(png.message.header.stamp) == stamp_to_ns(plain.message.header.stamp)
            data = np.frombuffer(png.message.data, np.uint8).tobytes()
            if plain.message.encoding == "rgb8":  # albedo and the visual renderings: the same pixels
                decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                                       cv2.COLOR_BGR2RGB)
                np.testing.assert_array_equal(decoded, image_to_rgb(plain.message))
            elif topic == topics.NORMAL:
                error = np.abs(decode_normal16(data) - float_image_to_array(plain.message)).max()
                assert error <= NORMAL_ERROR_BOUND
            else:
                error = np.abs(decode_unit16(data) - float_image_to_array(plain.message)).max()
                assert error <= UNIT_ERROR_BOUND
    assert packed[topics.CLOUD][0].raw == raw[topics.CLOUD][0].raw

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.iterdir())

    # 0.22 here: the untrained tiny model's noisy maps compress worse than trained ones (the demo bag
    # with the bundled model: 0.14 of the node layout, see the README)
    assert size(work / "out_compact") < 0.25 * size(raw_out)
    assert main(["bag", "compare", str(raw_out), str(raw_out)]) == 0
    assert main(["bag", "compare", str(raw_out), str(work / "out_compact")]) == 1


def test_no_depth_topics_at_all_gives_maps_without_a_cloud(input_bags, engine, work):
    """`inputs.depth_topics: []` is valid for the node and the bag path alike: maps for every frame, nothing fused."""
    params = load_params(None, {**FAST, "inputs.depth_topics": "[]"})
    summary = BagProcessor(params, engine).run(input_bags["mcap"], work / "out_no_depth", progress=False)
    assert (summary.frames, summary.published, summary.fused) == (FRAMES, FRAMES, 0)
    assert summary.skips["unfused_no_depth"] == FRAMES
