"""`bag import-rgbd`: 7-Scenes and TUM RGB-D folders become bags whose tf reproduces the dataset poses."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mvinverse_ros import topics
from mvinverse_ros.bag import BagError
from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.importer import (BODY_FRAME, CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC, ODOM_FRAME,
                                        OPTICAL_FRAME, T_LINK_OPTICAL, import_rgbd)
from mvinverse_ros.bag.reader import BagReader
from mvinverse_ros.bag.tf import buffer_from_bag
from mvinverse_ros.conversions.camera_info import camera_model_from_msg
from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.conversions.images import depth_from_msg, rgb_from_msg
from mvinverse_ros.geometry.transforms import translation_quaternion_from_matrix

FRAMES = 5


def rigid(pose: np.ndarray) -> np.ndarray:
    """The pose with its rotation block replaced by the nearest rotation matrix.

    7-Scenes' rotation blocks are off orthonormal by ~5e-5 (singular values 0.99994..0.99996);
    a tf quaternion can only carry the rotation part, so that is what must be reproduced exactly.
    """
    u, _, vt = np.linalg.svd(pose[:3, :3])
    out = pose.copy()
    out[:3, :3] = u @ vt
    return out


def few_frames(sevenscenes_dir: Path, folder: Path, count: int = FRAMES) -> Path:
    """A 7-Scenes folder holding the first `count` frames of the shared sequence (symlinks)."""
    folder.mkdir()
    (folder / "camera-intrinsics.txt").symlink_to(sevenscenes_dir / "camera-intrinsics.txt")
    for color in sorted(sevenscenes_dir.glob("frame-*.color.jpg"))[:count]:
        stem = color.name.split(".")[0]
        for suffix in ("color.jpg", "depth.png", "pose.txt"):
            (folder / f"{stem}.{suffix}").symlink_to(sevenscenes_dir / f"{stem}.{suffix}")
    return folder


@pytest.fixture(scope="module")
def sevenscenes_bag(sevenscenes_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("import")
    folder = few_frames(sevenscenes_dir, root / "seq")
    import_rgbd(folder, root / "bag", fps=10.0)
    return folder, root / "bag"


def test_optical_rotation_is_rep103():
    forward_link = T_LINK_OPTICAL[:3, :3] @ np.array([0.0, 0.0, 1.0])    # optical z
    right_link = T_LINK_OPTICAL[:3, :3] @ np.array([1.0, 0.0, 0.0])      # optical x
    down_link = T_LINK_OPTICAL[:3, :3] @ np.array([0.0, 1.0, 0.0])       # optical y
    np.testing.assert_array_equal(forward_link, [1, 0, 0])
    np.testing.assert_array_equal(right_link, [0, -1, 0])
    np.testing.assert_array_equal(down_link, [0, 0, -1])
    _, quaternion = translation_quaternion_from_matrix(T_LINK_OPTICAL)
    np.testing.assert_allclose(np.abs(quaternion), [0.5, 0.5, 0.5, 0.5])


def test_tf_chain_reproduces_the_dataset_poses(sevenscenes_bag):
    folder, bag_path = sevenscenes_bag
    poses = [np.loadtxt(p) for p in sorted(folder.glob("frame-*.pose.txt"))]
    with BagReader(bag_path) as bag:
        buffer, rejected = buffer_from_bag(bag)
        stamps = [stamp_to_ns(m.message.header.stamp) for m in bag.messages([COLOR_TOPIC])]
    assert rejected == 0 and len(stamps) == FRAMES
    assert np.all(np.diff(stamps) == 100_000_000)  # 10 fps
    for stamp, pose in zip(stamps, poses):
        optical = buffer.lookup(ODOM_FRAME, OPTICAL_FRAME, stamp)
        np.testing.assert_allclose(optical, rigid(pose), atol=1e-9)
        np.testing.assert_allclose(optical, pose, atol=1e-4)  # the file's own round-off
        body = buffer.lookup(ODOM_FRAME, BODY_FRAME, stamp)
        np.testing.assert_allclose(body[:3, 0], rigid(pose)[:3, 2], atol=1e-9)  # camera_link x = optical z (forward)


def test_topics_encodings_and_latched_tf_static(sevenscenes_bag, sevenscenes_dir):
    folder, bag_path = sevenscenes_bag
    with BagReader(bag_path) as bag:
        assert bag.message_counts == {topics.TF_STATIC: 1, topics.TF: FRAMES, COLOR_TOPIC: FRAMES,
                                      CAMERA_INFO_TOPIC: FRAMES, DEPTH_TOPIC: FRAMES}
        first = {m.topic: m.message for m in bag.messages([COLOR_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC])
                 if stamp_to_ns(m.message.header.stamp) == 1_700_000_000 * 10**9}
    assert first[COLOR_TOPIC].encoding == "rgb8" and first[DEPTH_TOPIC].encoding == "16UC1"
    assert {m.header.frame_id for m in first.values()} == {OPTICAL_FRAME}
    expected_rgb = cv2.cvtColor(cv2.imread(str(folder / "frame-000000.color.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(rgb_from_msg(first[COLOR_TOPIC], RosbagsImageDecoder()), expected_rgb)
    depth_mm = cv2.imread(str(folder / "frame-000000.depth.png"), cv2.IMREAD_UNCHANGED)
    depth = depth_from_msg(first[DEPTH_TOPIC], RosbagsImageDecoder())
    np.testing.assert_array_equal(np.isnan(depth), depth_mm == 0)
    np.testing.assert_allclose(depth[depth_mm > 0], depth_mm[depth_mm > 0] / 1000.0, rtol=1e-6)
    camera = camera_model_from_msg(first[CAMERA_INFO_TOPIC])
    np.testing.assert_allclose(camera.K, np.loadtxt(sevenscenes_dir / "camera-intrinsics.txt"))
    metadata = yaml.safe_load((bag_path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] == 8
    qos = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
           for t in metadata["topics_with_message_count"]}
    assert yaml.safe_load(qos[topics.TF_STATIC])[0]["durability"] == 1  # RMW transient_local: latched


def test_compressed_sqlite3_import_carries_the_jpeg_bytes(sevenscenes_bag, tmp_path):
    folder, _ = sevenscenes_bag
    import_rgbd(folder, tmp_path / "bag", compressed=True, storage="sqlite3")
    assert list((tmp_path / "bag").glob("*.db3"))
    with BagReader(tmp_path / "bag") as bag:
        images = [m.message for m in bag.messages([topics.compressed(COLOR_TOPIC)])]
    assert len(images) == FRAMES and images[0].format == "jpeg"
    assert images[0].data.tobytes() == (folder / "frame-000000.color.jpg").read_bytes()


def test_tum_layout_keeps_its_stamps_and_depth_scale(sevenscenes_bag, tmp_path):
    """A TUM RGB-D folder (rgb.txt, depth.txt, groundtruth.txt, depth in 1/5000 m) made from real frames."""
    folder, _ = sevenscenes_bag
    tum = tmp_path / "rgbd_dataset_freiburg1_test"
    (tum / "rgb").mkdir(parents=True)
    (tum / "depth").mkdir()
    rgb_lines, depth_lines, gt_lines = ["# color images"], ["# depth maps"], ["# ground truth"]
    poses = [np.loadtxt(p) for p in sorted(folder.glob("frame-*.pose.txt"))][:3]
    for i, pose in enumerate(poses):
        stamp = 1305031102.175304 + i / 30
        color = cv2.imread(str(folder / f"frame-{3 * i:06d}.color.jpg"))
        cv2.imwrite(str(tum / "rgb" / f"{stamp:.6f}.png"), color)
        depth_mm = cv2.imread(str(folder / f"frame-{3 * i:06d}.depth.png"), cv2.IMREAD_UNCHANGED)
        tum_depth = (depth_mm.astype(np.uint32) * 5).clip(0, 65535).astype(np.uint16)  # 1/5000 m units
        cv2.imwrite(str(tum / "depth" / f"{stamp + 0.004:.6f}.png"), tum_depth)
        rgb_lines.append(f"{stamp:.6f} rgb/{stamp:.6f}.png")
        depth_lines.append(f"{stamp + 0.004:.6f} depth/{stamp + 0.004:.6f}.png")
        t, q = translation_quaternion_from_matrix(pose)
        gt_lines.append(f"{stamp - 0.002:.4f} " + " ".join(f"{v:.9f}" for v in (*t, *q)))
        gt_lines.append(f"{stamp + 0.002:.4f} " + " ".join(f"{v:.9f}" for v in (*t, *q)))
    for name, lines in (("rgb.txt", rgb_lines), ("depth.txt", depth_lines), ("groundtruth.txt", gt_lines)):
        (tum / name).write_text("\n".join(lines) + "\n")
    summary = import_rgbd(tum, tmp_path / "bag")
    assert (summary.format, summary.frames, summary.poses) == ("tum", 3, 6)
    with BagReader(tmp_path / "bag") as bag:
        buffer, _ = buffer_from_bag(bag)
        images = [m.message for m in bag.messages([COLOR_TOPIC])]
        depths = [m.message for m in bag.messages([DEPTH_TOPIC])]
        info = next(m.message for m in bag.messages([CAMERA_INFO_TOPIC]))
    assert stamp_to_ns(images[1].header.stamp) == 1305031102_208637_000  # rgb.txt's 1305031102.208637
    np.testing.assert_allclose(camera_model_from_msg(info).K[0, 0], 517.3)  # freiburg1 calibration
    depth_mm = cv2.imread(str(folder / "frame-000000.depth.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(depth_from_msg(depths[0], RosbagsImageDecoder())[depth_mm > 0],
                               depth_mm[depth_mm > 0] / 1000.0, atol=1e-6)
    for image, pose in zip(images, poses):
        np.testing.assert_allclose(buffer.lookup(ODOM_FRAME, OPTICAL_FRAME, stamp_to_ns(image.header.stamp)),
                                   rigid(pose), atol=1e-7)


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(BagError, match="not a directory"):
        import_rgbd(tmp_path / "missing", tmp_path / "bag")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="empty.*7-Scenes.*TUM"):
        import_rgbd(tmp_path / "empty", tmp_path / "bag")
