"""`mvinverse-ros bag process`: a recorded bag in, the node's outputs as a new bag out.

One pass over the input in log-time order does what the node does live: pair each camera's
image, camera_info and depth by stamp, decode them into Frames with poses from the bag's tf,
feed the PerceptionPipeline and write every window's maps and the fused cloud under the node's
topic names (mvinverse_ros.topics). The final cloud also goes to a PLY file and a few frames'
maps to a contact-sheet PNG.

The output is deterministic: every message's log time is its header stamp and the one
wall-clock field, MaterialMaps.inference_time, is written as 0 (timings are in the summary), so
the same input and parameters give byte-identical messages.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mvinverse_ros import topics
from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.ply import write_ply
from mvinverse_ros.bag.reader import BagReader
from mvinverse_ros.bag.sync import ApproximateSynchronizer
from mvinverse_ros.bag.tf import buffer_from_bag
from mvinverse_ros.bag.writer import BagWriter
from mvinverse_ros.conversions.factory import RosbagsMessageFactory, header_msg, typestore_with_project_types
from mvinverse_ros.conversions.images import rgb_image_msg
from mvinverse_ros.conversions.materials import material_maps_msg
from mvinverse_ros.conversions.pointcloud import cloud_msg
from mvinverse_ros.geometry.transforms import TransformBuffer
from mvinverse_ros.params import PerceptionParams
from mvinverse_ros.pipeline import PerceptionPipeline, frame_from_messages
from mvinverse_ros.types import Frame, MaterialMaps, WindowResult
from mvinverse_ros.visualize import contact_sheet, normal_to_rgb8

LOG = logging.getLogger(__name__)

IMAGE_STREAM, INFO_STREAM, DEPTH_STREAM = "image", "camera_info", "depth"
SHEET_ROWS = 4
SHEET_TILE_WIDTH = 192


@dataclass
class CameraStreams:
    """The input topics of one camera and its synchronizer."""

    name: str
    image_topic: str
    info_topic: str
    depth_topic: str | None
    sync: ApproximateSynchronizer

    def stream_of(self, topic: str) -> str:
        return {self.image_topic: IMAGE_STREAM, self.info_topic: INFO_STREAM, self.depth_topic: DEPTH_STREAM}[topic]


def camera_streams(params: PerceptionParams, bag_topics: dict[str, str]) -> list[CameraStreams]:
    """One CameraStreams per entry of `inputs.cameras`, checked against the bag's topics.

    Raises:
        BagError: list parameters of different lengths, or an image / camera_info topic the bag lacks.
    """
    inputs = params.inputs
    lists = {"inputs.image_topics": inputs.image_topics, "inputs.camera_info_topics": inputs.camera_info_topics,
             "inputs.depth_topics": inputs.depth_topics}
    for name, values in lists.items():
        if len(values) != len(inputs.cameras):
            raise BagError(f"{name} has {len(values)} entries but inputs.cameras has {len(inputs.cameras)}")
    if inputs.transport not in ("raw", "compressed"):
        raise BagError(f"inputs.transport must be raw or compressed, got {inputs.transport!r}")
    streams = []
    for camera, image, info, depth in zip(inputs.cameras, inputs.image_topics, inputs.camera_info_topics,
                                          inputs.depth_topics):
        image = topics.compressed(image) if inputs.transport == "compressed" else image
        for topic in (image, info):
            if topic not in bag_topics:
                images = sorted(t for t, ty in bag_topics.items()
                                if ty.endswith(("/Image", "/CompressedImage", "/CameraInfo")))
                raise BagError(f"camera {camera!r}: topic {topic} is not in the bag (image-like topics there: "
                               f"{', '.join(images) or 'none'}); set inputs.* or inputs.transport")
        if depth and depth not in bag_topics:
            LOG.warning("camera %r: depth topic %s is not in the bag; no cloud from this camera", camera, depth)
            depth = ""
        names = (IMAGE_STREAM, INFO_STREAM) + ((DEPTH_STREAM,) if depth else ())
        sync = ApproximateSynchronizer(names, inputs.sync_queue_size, round(inputs.sync_slop * 1e9))
        streams.append(CameraStreams(camera, image, info, depth or None, sync))
    return streams


class SheetSampler:
    """Keeps a few evenly spaced published frames (thumbnails) for the contact sheet, in bounded memory."""

    def __init__(self, rows: int = SHEET_ROWS, tile_width: int = SHEET_TILE_WIDTH) -> None:
        self.rows, self.tile_width = rows, tile_width
        self._every, self._seen = 1, 0
        self._first_stamp_ns: int | None = None
        self._kept: list[tuple[str, np.ndarray, MaterialMaps]] = []

    def _thumb(self, image: np.ndarray) -> np.ndarray:
        height = max(1, round(image.shape[0] * self.tile_width / image.shape[1]))
        return cv2.resize(image, (self.tile_width, height), interpolation=cv2.INTER_AREA)

    def offer(self, frame: Frame, maps: MaterialMaps) -> None:
        if self._first_stamp_ns is None:
            self._first_stamp_ns = frame.stamp_ns
        if self._seen % self._every == 0:
            small = MaterialMaps(*(self._thumb(getattr(maps, f.name)) for f in dataclasses.fields(MaterialMaps)))
            label = f"{frame.source} +{(frame.stamp_ns - self._first_stamp_ns) / 1e9:.2f}s"
            self._kept.append((label, self._thumb(frame.image), small))
            if len(self._kept) >= 2 * self.rows:
                self._kept, self._every = self._kept[::2], self._every * 2
        self._seen += 1

    def sheet(self) -> np.ndarray | None:
        if not self._kept:
            return None
        picks = np.linspace(0, len(self._kept) - 1, min(self.rows, len(self._kept))).round().astype(int)
        return contact_sheet([self._kept[i] for i in picks], tile_width=self.tile_width)


@dataclass
class ProcessSummary:
    """What a run did; `skips` maps reason -> count of messages or frames lost or degraded."""

    input_path: Path
    output_path: Path
    image_messages: int = 0
    frames: int = 0
    windows: int = 0
    published: int = 0
    fused: int = 0
    cloud_points: int = 0
    skips: Counter = field(default_factory=Counter)
    window_counters: Counter = field(default_factory=Counter)
    written: dict[str, int] = field(default_factory=dict)
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    network_seconds: float = 0.0
    interrupted: bool = False
    ply_path: Path | None = None
    sheet_path: Path | None = None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def real_time_factor(self) -> float:
        """Bag seconds processed per wall-clock second (> 1 is faster than real time)."""
        return self.bag_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def lines(self) -> list[str]:
        skips = ", ".join(f"{k} {v}" for k, v in sorted(self.skips.items()) if v) or "none"
        windowing = ", ".join(f"{k} {v}" for k, v in sorted(self.window_counters.items()) if v) or "none"
        lines = [
            f"{'INTERRUPTED: ' if self.interrupted else ''}{self.input_path} -> {self.output_path}",
            f"images in {self.image_messages}, frames {self.frames}, windows run {self.windows}, "
            f"frames published {self.published}, fused {self.fused}, cloud points {self.cloud_points}",
            f"skips: {skips}",
            f"windowing: {windowing}",
            f"{self.frames_per_second:.2f} frames/s, {self.bag_seconds:.1f} s of bag in {self.wall_seconds:.1f} s "
            f"(real-time factor {self.real_time_factor:.2f}; network {self.network_seconds:.1f} s, "
            f"everything else {self.wall_seconds - self.network_seconds:.1f} s)",
            "written: " + ", ".join(f"{t} {n}" for t, n in self.written.items()),
        ]
        for what, path in (("ply", self.ply_path), ("contact sheet", self.sheet_path)):
            if path:
                lines.append(f"{what}: {path}")
        return lines


class BagProcessor:
    """Drives one PerceptionPipeline over one bag and writes what the node would publish.

    Args:
        params: the full parameter set (inputs, tf, window, fusion, execution and bag sections matter here).
        engine: a StreamingEngine (see mvinverse_ros.engine.engine_from_params).
    """

    def __init__(self, params: PerceptionParams, engine) -> None:
        self.params = params
        self.engine = engine
        self.pipeline = PerceptionPipeline(params, engine)
        self.typestore = typestore_with_project_types()
        self.factory = RosbagsMessageFactory(self.typestore)
        self._cloud_stale = False
        self._last_stamp_ns = 0

    def _lookup_pose(self, buffer: TransformBuffer):
        fixed = self.params.tf.fixed_frame
        return lambda frame_id, stamp_ns: buffer.lookup(fixed, frame_id, stamp_ns)

    def _write_result(self, out: BagWriter, result: WindowResult, sampler: SheetSampler) -> None:
        stamps = [f.stamp_ns for f in result.window.frames]
        for index, maps in zip(result.window.publish, result.maps):
            frame = result.window.frames[index]
            stamp = frame.stamp_ns
            materials = material_maps_msg(self.factory, frame, maps, stamps, index, inference_seconds=0.0)
            # The image topics carry the same Image messages the MaterialMaps bundles, as the node does.
            images = {topics.ALBEDO: materials.albedo, topics.ROUGHNESS: materials.roughness,
                      topics.METALLIC: materials.metallic, topics.NORMAL: materials.normal,
                      topics.NORMAL_VISUAL: rgb_image_msg(self.factory, normal_to_rgb8(maps.normal), materials.header),
                      topics.SHADING: materials.shading}
            for topic, message in images.items():
                out.write(topic, topics.IMAGE_TYPE, stamp, message)
            out.write(topics.MATERIALS, topics.MATERIALS_TYPE, stamp, materials)
            sampler.offer(frame, maps)
            self._last_stamp_ns = max(self._last_stamp_ns, stamp)

    def _write_cloud(self, out: BagWriter, stamp_ns: int) -> int:
        cloud = self.pipeline.cloud()
        if cloud is None:
            return 0
        header = header_msg(self.factory, stamp_ns, self.params.tf.fixed_frame)
        out.write(topics.CLOUD, topics.CLOUD_TYPE, stamp_ns, cloud_msg(self.factory, cloud, header))
        self._cloud_stale = False
        return len(cloud)

    def run(self, input_path: str | Path, output_path: str | Path, ply_path: str | Path | None = None,
            sheet_path: str | Path | None = None, progress: bool = True) -> ProcessSummary:
        """Process `input_path` into a new bag at `output_path` (plus PLY and contact sheet if paths are given).

        Ctrl-C stops reading, then the cloud so far, the PLY and the sheet are still written and the
        bag is closed properly; the summary says `interrupted`.

        Raises:
            BagError: the input cannot be opened or lacks the configured topics; the output exists.
        """
        summary = ProcessSummary(Path(input_path), Path(output_path))
        started = time.perf_counter()
        self.engine.reset()
        self.pipeline = PerceptionPipeline(self.params, self.engine)
        self._cloud_stale, self._last_stamp_ns = False, 0
        with BagReader(input_path) as bag:
            streams = camera_streams(self.params, bag.topics)
            by_topic = {}
            for camera in streams:
                for topic in (camera.image_topic, camera.info_topic, camera.depth_topic):
                    if topic:
                        by_topic[topic] = camera
            buffer, rejected = buffer_from_bag(bag)
            summary.skips["rejected_transform"] += rejected
            summary.skips.update(bag.skips)
            bag.skips.clear()
            lookup = self._lookup_pose(buffer)
            copy = self.params.bag.copy_inputs
            tf_topics = [t for t in (topics.TF, topics.TF_STATIC) if t in bag.topics]
            wanted = list(by_topic) + (tf_topics if copy else [])
            total_images = sum(bag.message_counts.get(c.image_topic, 0) for c in streams)
            first_stamp = last_stamp = None
            with BagWriter(output_path, self.typestore, self.params.bag.storage) as out, \
                    tqdm(total=total_images, unit="img", desc="bag process", disable=not progress) as bar:
                sampler = SheetSampler()
                try:
                    for message in bag.messages(wanted, undecoded=tf_topics):
                        if copy:
                            out.write_raw(message.topic, message.msgtype, message.log_time_ns, message.raw,
                                          latched=message.topic == topics.TF_STATIC)
                        camera = by_topic.get(message.topic)
                        if camera is None or message.message is None:
                            continue
                        stream = camera.stream_of(message.topic)
                        if stream == IMAGE_STREAM:
                            summary.image_messages += 1
                            bar.update(1)
                        matched = camera.sync.add(stream, message.message)
                        if matched is None:
                            continue
                        parts = dict(zip(camera.sync.streams, matched))
                        frame, reasons = frame_from_messages(parts[IMAGE_STREAM], parts[INFO_STREAM],
                                                             parts.get(DEPTH_STREAM), camera.name, lookup)
                        summary.skips.update(reasons)
                        if frame is None:
                            continue
                        summary.frames += 1
                        first_stamp = frame.stamp_ns if first_stamp is None else min(first_stamp, frame.stamp_ns)
                        last_stamp = frame.stamp_ns if last_stamp is None else max(last_stamp, frame.stamp_ns)
                        window = self.pipeline.submit(frame)
                        if window is None:
                            continue
                        output = self.pipeline.process(window)
                        summary.network_seconds += output.result.inference_seconds
                        self._write_result(out, output.result, sampler)
                        self._cloud_stale = self._cloud_stale or output.fused > 0
                        if self.params.bag.cloud_per_window and output.cloud_due:
                            self._write_cloud(out, max(f.stamp_ns for f in window.frames))
                except KeyboardInterrupt:
                    summary.interrupted = True
                    LOG.warning("interrupted: closing %s with everything processed so far", output_path)
                summary.skips.update(bag.skips)
                for camera in streams:
                    camera.sync.flush()
                    summary.skips.update({f"unpaired_{k}": v for k, v in camera.sync.unpaired.items()})
                cloud = self.pipeline.cloud()
                published_any = self._last_stamp_ns > 0
                if cloud is not None and published_any and (self._cloud_stale or not self.params.bag.cloud_per_window):
                    self._write_cloud(out, self._last_stamp_ns)
                summary.cloud_points = len(cloud) if cloud is not None else 0
                summary.written = dict(out.counts)
        counters = self.pipeline.counters
        summary.windows, summary.published = counters["windows"], counters["published"]
        summary.fused = counters["fused"]
        for reason in ("no_depth", "no_camera_info", "no_pose"):
            if counters[reason]:
                summary.skips[f"unfused_{reason}"] = counters[reason]
        summary.skips = +summary.skips  # drop reasons that never happened
        summary.window_counters = self.pipeline.window_counters()
        if ply_path is not None and cloud is not None:
            write_ply(ply_path, cloud)
            summary.ply_path = Path(ply_path)
        sheet = sampler.sheet()
        if sheet_path is not None and sheet is not None:
            if not cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
                raise BagError(f"Could not write contact sheet {sheet_path}")
            summary.sheet_path = Path(sheet_path)
        if first_stamp is not None:
            summary.bag_seconds = (last_stamp - first_stamp) / 1e9
        summary.wall_seconds = time.perf_counter() - started
        return summary
