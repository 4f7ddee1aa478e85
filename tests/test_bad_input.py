"""Bad input never costs more than itself.

Counted skips per damaged message, one `error:` line for damage that ends the input, bounded
memory for decompression bombs, output that survives SIGTERM and SIGKILL.

Damaged messages are built from the shared 7-Scenes frames, written with rosbags, and read back
through `bag process` (the offline path) and `frame_from_messages` (the node's path).
"""
from __future__ import annotations

import dataclasses
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from mvinverse_ros import topics
from mvinverse_ros.pipeline import finite_maps
from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.importer import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC, import_rgbd
from mvinverse_ros.bag.reader import BagReader
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.bag.writer import HUMBLE_COMPATIBLE_VERSION
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.conversions.frames import BAD_CAMERA_INFO, BAD_DEPTH, BAD_IMAGE, frame_from_messages
from mvinverse_ros.conversions.camera_info import camera_info_msg
from mvinverse_ros.conversions.images import compressed_image_msg, depth_image_msg, rgb_image_msg
from mvinverse_ros.visualize import MAX_TILE_ASPECT, contact_sheet
from mvinverse_ros.types import CameraModel, Frame, MaterialMaps, Window, WindowResult
from test_import_rgbd import few_frames

TYPESTORE = typestore_with_project_types()
FACTORY = RosbagsMessageFactory(TYPESTORE)
FAST = ["--set", "model.preset=tiny", "--set", "model.long_side=112", "--set", "model.device=cpu",
        "--set", "window.size=2", "--set", "window.stride=2", "--set", "window.publish=all",
        "--set", "window.min_translation=0", "--set", "window.min_rotation_deg=0", "--set", "window.min_interval=0",
        "--set", "fusion.pixel_stride=4"]
CLI = [sys.executable, "-m", "mvinverse_ros.cli"]


def png_bomb() -> bytes:
    """A real PNG of 12000x9000 black pixels: ~100 KB on disk, 324 MB decoded."""
    ok, encoded = cv2.imencode(".png", np.zeros((9000, 12000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad_input")


@pytest.fixture(scope="module")
def clean_bag(sevenscenes_dir: Path, work: Path) -> Path:
    import_rgbd(few_frames(sevenscenes_dir, work / "seq6", 6), work / "clean", fps=10.0)
    return work / "clean"


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def damaged_copy(source: Path, target: Path) -> None:
    """One defect per frame, frames 100 ms apart.

    Frame 1: colour 0x0. Frame 2: depth of height 0. Frame 3: camera_info with a NaN in K.
    Frame 4: camera_info with an infinite focal length. Frame 5: an extra CameraInfo logged on the
    colour topic (a second connection of the wrong type), the real image still there.
    """
    start = None
    writer = Writer(target, version=HUMBLE_COMPATIBLE_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}

    def connection(topic: str, msgtype: str):
        if (topic, msgtype) not in connections:
            connections[topic, msgtype] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        return connections[topic, msgtype]

    with BagReader(source) as bag:
        for m in bag.messages():
            start = m.log_time_ns if start is None else start
            frame = round((m.log_time_ns - start) / 100_000_000)
            message, raw = m.message, m.raw
            if m.topic == COLOR_TOPIC and frame == 1:
                message.width = message.height = message.step = 0
                message.data = np.zeros(0, np.uint8)
            elif m.topic == DEPTH_TOPIC and frame == 2:
                message.height = 0
                message.data = np.zeros(0, np.uint8)
            elif m.topic == CAMERA_INFO_TOPIC and frame == 3:
                message.k = np.where(np.arange(9) == 2, np.nan, message.k)
            elif m.topic == CAMERA_INFO_TOPIC and frame == 4:
                message.k = np.where(np.arange(9) == 0, np.inf, message.k)
            elif m.topic == CAMERA_INFO_TOPIC and frame == 5:
                writer.write(connection(COLOR_TOPIC, m.msgtype), m.log_time_ns,
                             TYPESTORE.serialize_cdr(message, m.msgtype))
            if frame in (1, 2, 3, 4) and m.topic in (COLOR_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC):
                raw = TYPESTORE.serialize_cdr(message, m.msgtype)
            writer.write(connection(m.topic, m.msgtype), m.log_time_ns, bytes(raw))
    writer.close()


def test_damaged_messages_are_counted_skips_through_the_cli(clean_bag, work):
    damaged_copy(clean_bag, work / "damaged")
    done = run_cli("bag", "process", work / "damaged", work / "out_damaged", "--no-progress", *FAST)
    assert done.returncode == 0, done.stderr
    assert_clean_stderr(done.stderr)
    skips = next(line for line in done.stdout.splitlines() if line.startswith("skips:"))
    # frame 1 gives no frame (its partners were paired with it, so none is unpaired); frames 2-4 are
    # kept without depth or calibration, so they get maps but are not fused; frame 5 loses nothing
    assert skips == ("skips: bad_camera_info 2, bad_depth 1, bad_image 1, unfused_no_camera_info 2, "
                     "unfused_no_depth 1, wrong_type 1")


def restamped_copy(source: Path, target: Path, stamps_ns: dict[int, int]) -> None:
    """The bag with the header stamps of frame k's colour, depth and camera_info set to stamps_ns[k]."""
    start = None
    writer = Writer(target, version=HUMBLE_COMPATIBLE_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}
    with BagReader(source) as bag:
        for m in bag.messages():
            start = m.log_time_ns if start is None else start
            frame = round((m.log_time_ns - start) / 100_000_000)
            raw = m.raw
            if frame in stamps_ns and m.topic in (COLOR_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC):
                m.message.header.stamp.sec, m.message.header.stamp.nanosec = divmod(stamps_ns[frame], 10**9)
                raw = TYPESTORE.serialize_cdr(m.message, m.msgtype)
            if (m.topic, m.msgtype) not in connections:
                connections[m.topic, m.msgtype] = writer.add_connection(m.topic, m.msgtype, typestore=TYPESTORE)
            writer.write(connections[m.topic, m.msgtype], m.log_time_ns, bytes(raw))
    writer.close()


def test_stamp_zero_gets_no_pose_and_backward_stamps_restart_windows_and_map(clean_bag, work):
    """Offline, stamp 0 is no time (tf2's 'latest' would give the bag's last pose); a stamp going back resets."""
    with BagReader(clean_bag) as bag:
        stamps = [m.message.header.stamp for m in bag.messages([COLOR_TOPIC])]
    first_ns = stamps[0].sec * 10**9 + stamps[0].nanosec
    restamped_copy(clean_bag, work / "restamped", {2: 0, 4: first_ns})
    done = run_cli("bag", "process", work / "restamped", work / "out_restamped", "--no-progress", *FAST)
    assert done.returncode == 0, done.stderr
    assert_clean_stderr(done.stderr)
    skips = next(line for line in done.stdout.splitlines() if line.startswith("skips:"))
    # frame 2 (stamp 0) goes back in time and has no pose; frame 3 moves forward again; frame 4 goes back
    assert "no_transform 1" in skips and "time_resets 2" in skips, skips


def damaged_messages(sevenscenes_dir: Path):
    """A real colour image, its camera_info and a depth image, as the node receives them."""
    header = header_msg(FACTORY, 10**9, "optical")
    rgb = cv2.cvtColor(cv2.imread(str(sorted(sevenscenes_dir.glob("*.color.jpg"))[0])), cv2.COLOR_BGR2RGB)
    camera = CameraModel(640, 480, np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]]))
    image = rgb_image_msg(FACTORY, rgb, header)
    info = camera_info_msg(FACTORY, camera, header)
    depth = depth_image_msg(FACTORY, np.ones((480, 640), np.float32), header)
    return image, info, depth, header


def test_the_node_path_counts_the_same_damage(sevenscenes_dir):
    image, info, depth, header = damaged_messages(sevenscenes_dir)
    empty = dataclasses.replace(image, width=0, height=0, step=0, data=np.zeros(0, np.uint8))
    flat_depth = dataclasses.replace(depth, height=0, data=np.zeros(0, np.uint8))
    nan_k = dataclasses.replace(info, k=np.where(np.arange(9) == 2, np.nan, info.k))
    inf_f = dataclasses.replace(info, k=np.where(np.arange(9) == 0, np.inf, info.k))
    bomb = compressed_image_msg(FACTORY, png_bomb(), "png", header)
    cases = [((empty, info, depth), [BAD_IMAGE]), ((image, info, flat_depth), [BAD_DEPTH]),
             ((image, nan_k, depth), [BAD_CAMERA_INFO]), ((image, inf_f, depth), [BAD_CAMERA_INFO]),
             ((bomb, info, depth), [BAD_IMAGE])]
    for messages, expected in cases:
        frame, reasons = frame_from_messages(*messages, "camera", None, RosbagsImageDecoder(), max_pixels=50_000_000)
        assert reasons == expected
        assert (frame is None) == (BAD_IMAGE in expected)
    over = frame_from_messages(image, info, depth, "camera", None, RosbagsImageDecoder(), max_pixels=640 * 480 - 1)
    assert over == (None, [BAD_IMAGE])


def test_a_sliver_image_gives_a_bounded_contact_sheet():
    sliver = np.zeros((20000, 1, 3), np.uint8)
    maps = MaterialMaps(np.zeros((20000, 1, 3), np.float32), np.zeros((20000, 1), np.float32),
                        np.zeros((20000, 1), np.float32), np.zeros((20000, 1, 3), np.float32),
                        np.zeros((20000, 1, 3), np.float32))
    sheet = contact_sheet([("sliver", sliver, maps)], tile_width=192)
    assert sheet.shape[0] == MAX_TILE_ASPECT * 192


def test_decompression_bomb_is_skipped_in_bounded_memory(sevenscenes_dir, work):
    import_rgbd(few_frames(sevenscenes_dir, work / "seq3", 3), work / "compressed", fps=10.0, compressed=True)
    bomb = png_bomb()
    with BagReader(work / "compressed") as bag:
        writer = Writer(work / "bombed", version=HUMBLE_COMPATIBLE_VERSION, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        connections = {}
        for m in bag.messages():
            raw = m.raw
            if m.topic == topics.compressed(COLOR_TOPIC) and m.message.header.stamp.nanosec == 100_000_000:
                m.message.data = np.frombuffer(bomb, np.uint8)
                m.message.format = "png"
                raw = TYPESTORE.serialize_cdr(m.message, m.msgtype)
            if m.topic not in connections:
                connections[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=TYPESTORE)
            writer.write(connections[m.topic], m.log_time_ns, bytes(raw))
        writer.close()
    limit = 4 * 1024**3
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (%d, %d)); "
              "from mvinverse_ros.cli import main; sys.exit(main(sys.argv[1:]))" % (limit, limit))
    done = subprocess.run([sys.executable, "-c", script, "bag", "process", str(work / "bombed"),
                           str(work / "out_bombed"), "--no-progress", "--set", "inputs.transport=compressed", *FAST],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_clean_stderr(done.stderr)
    assert "bad_image 1" in done.stdout and "frames 2" in done.stdout


def test_corrupt_sqlite3_pages_end_the_run_with_one_error_line(clean_bag, work):
    import_rgbd(work / "seq6", work / "in_sqlite", fps=10.0, storage="sqlite3")
    db = next((work / "in_sqlite").glob("*.db3"))
    data = bytearray(db.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle:middle + 4 * page] = random.Random(0).randbytes(4 * page)
    db.write_bytes(bytes(data))
    done = run_cli("bag", "process", work / "in_sqlite", work / "out_sqlite", "--no-progress", *FAST)
    assert_clean_stderr(done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    with BagReader(work / "out_sqlite") as bag:  # closed properly, whatever came before the damage
        assert sum(1 for _ in bag.messages()) >= 0


def test_import_refuses_bad_numbers_and_skips_a_corrupt_jpeg(sevenscenes_dir, work):
    for flags in (["--fps", "nan"], ["--fps", "inf"], ["--intrinsics", "0,0,0,0"]):
        done = run_cli("bag", "import-rgbd", sevenscenes_dir, work / "never", *flags)
        assert done.returncode == 2 and "error:" in done.stderr and not (work / "never").exists(), flags
        assert_clean_stderr(done.stderr)
    folder = few_frames(sevenscenes_dir, work / "seq_corrupt", 3)
    second = sorted(folder.glob("*.color.jpg"))[1]
    second.unlink()
    second.write_bytes(b"\xff\xd8 not really a jpeg")
    summary = import_rgbd(folder, work / "imported_corrupt", fps=10.0)
    assert (summary.frames, summary.skipped) == (2, 1)
    with BagReader(work / "imported_corrupt") as bag:
        assert bag.message_counts[COLOR_TOPIC] == bag.message_counts[DEPTH_TOPIC] == 2


def test_existing_outputs_are_refused_alike(clean_bag, work):
    for existing in ("out_exists.ply", "out_exists.png"):
        (work / existing).write_bytes(b"keep me")
        done = run_cli("bag", "process", clean_bag, work / "out_exists", "--no-progress", *FAST)
        assert done.returncode == 1 and "exists" in done.stderr and not (work / "out_exists").exists()
        assert (work / existing).read_bytes() == b"keep me"
        (work / existing).unlink()


@pytest.fixture(scope="module")
def long_bag(sevenscenes_dir: Path, work: Path) -> Path:
    import_rgbd(few_frames(sevenscenes_dir, work / "seq30", 30), work / "long", fps=10.0)
    return work / "long"


def started_run(long_bag: Path, out: Path) -> subprocess.Popen:
    """`bag process` running, at a random point after its first window is in the bag.

    A window of two frames' compressed maps is megabytes: once the .mcap holds over 1 MB, the first
    window's chunk is being written, and 0.3 s later it is complete.
    """
    process = subprocess.Popen([*CLI, "bag", "process", str(long_bag), str(out), "--no-progress", *FAST],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mcap = out / f"{out.name}.mcap"
    while not (mcap.exists() and mcap.stat().st_size > 1_000_000):
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    time.sleep(random.Random().uniform(0.3, 1.3))
    return process


def window_topics_match(path: Path) -> int:
    """How many frames' maps the bag holds, asserting that every map topic holds that many (whole windows)."""
    with BagReader(path) as bag:
        counts = bag.message_counts
    per_topic = {counts.get(topics.compressed(topic), 0) for topic in topics.IMAGE_ENCODINGS}
    assert len(per_topic) == 1, counts
    return per_topic.pop()


def test_sigterm_keeps_a_complete_bag_that_the_summary_counts(long_bag, work):
    process = started_run(long_bag, work / "out_term")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert_clean_stderr(stderr)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert process.returncode == 130 and stdout.startswith("INTERRUPTED")
    frames = window_topics_match(work / "out_term")
    written = next(line for line in stdout.splitlines() if line.startswith("written:"))
    assert f"{topics.compressed(topics.ALBEDO)} {frames}," in written


def test_sigkill_loses_at_most_the_window_in_flight(long_bag, work):
    process = started_run(long_bag, work / "out_kill")
    process.kill()
    process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal")
    done = run_cli("bag", "recover", work / "out_kill", work / "recovered")
    assert done.returncode == 0, done.stderr
    assert window_topics_match(work / "recovered") >= 2  # at least the first window, flushed before the kill
    again = run_cli("bag", "recover", work / "recovered", work / "recovered2")
    assert again.returncode == 1 and again.stderr.startswith("error:")


def test_maps_with_nan_or_inf_are_not_written():
    frames = tuple(Frame(i, "optical", np.zeros((4, 6, 3), np.uint8)) for i in range(3))
    good = MaterialMaps(*(np.zeros((4, 6, 3) if k in (0, 3, 4) else (4, 6), np.float32) for k in range(5)))
    bad = dataclasses.replace(good, roughness=np.full((4, 6), np.nan, np.float32))
    result = WindowResult(Window(0, frames, (1, 2)), (bad, good), 0.0)
    kept, dropped = finite_maps(result)
    assert dropped == 1 and kept.window.publish == (2,) and kept.maps == (good,)
