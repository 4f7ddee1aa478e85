"""Synchronized Frames out of a recorded bag: the one reading path of `bag process` and `finetune`.

Reading, pairing each camera's image, camera_info and depth by stamp (bag/sync.py), poses from
the bag's own tf (offline TransformBuffer) and decoding into Frames (conversions.frame_from_messages,
images decoded by rosbags-image) happen here once, so every offline consumer sees exactly the frames the node would.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from mvinverse_ros import topics
from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.reader import BagMessage, BagReader
from mvinverse_ros.bag.sync import ApproximateSynchronizer
from mvinverse_ros.bag.tf import buffer_from_bag
from mvinverse_ros.params import PerceptionParams
from mvinverse_ros.conversions.frames import frame_from_messages
from mvinverse_ros.geometry.transforms import TransformError
from mvinverse_ros.types import NS_PER_SECOND, Frame

LOG = logging.getLogger(__name__)

IMAGE_STREAM, INFO_STREAM, DEPTH_STREAM = "image", "camera_info", "depth"
WRONG_TYPE = "wrong_type"  # a message whose type is not what its stream carries
FRAME_ERRORS = "frame_errors"  # a message that failed in a way no skip reason names (the node's counter too)
STREAM_TYPES = {IMAGE_STREAM: {"raw": topics.IMAGE_TYPE, "compressed": "sensor_msgs/msg/CompressedImage"},
                INFO_STREAM: "sensor_msgs/msg/CameraInfo", DEPTH_STREAM: topics.IMAGE_TYPE}


@dataclass
class CameraStreams:
    """The input topics of one camera and its synchronizer."""

    name: str
    image_topic: str
    info_topic: str
    depth_topic: str | None
    sync: ApproximateSynchronizer
    image_type: str

    def stream_of(self, topic: str) -> str:
        """Which stream (image, camera_info, depth) `topic` feeds."""
        return {self.image_topic: IMAGE_STREAM, self.info_topic: INFO_STREAM, self.depth_topic: DEPTH_STREAM}[topic]


def camera_streams(params: PerceptionParams, bag_topics: dict[str, str]) -> list[CameraStreams]:
    """One CameraStreams per entry of `inputs.cameras`, checked against the bag's topics.

    The list lengths and the transport were checked when the parameters were built (params.py);
    `inputs.depth_topics: []` means no depth for any camera, as in the node.

    Raises:
        BagError: an image / camera_info topic the bag lacks.
    """
    inputs = params.inputs
    depth_topics = inputs.depth_topics or [""] * len(inputs.cameras)
    streams = []
    for camera, image, info, depth in zip(inputs.cameras, inputs.image_topics, inputs.camera_info_topics,
                                          depth_topics, strict=True):
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
        sync = ApproximateSynchronizer(names, inputs.sync_queue_size, round(inputs.sync_slop * NS_PER_SECOND))
        streams.append(CameraStreams(camera, image, info, depth or None, sync,
                                     STREAM_TYPES[IMAGE_STREAM][inputs.transport]))
    return streams


class BagFrameReader:
    """Frames of an open bag in log-time order, with every loss counted.

    Args:
        bag: an open BagReader (its tf is read once, up front, into an offline TransformBuffer).
        params: the full parameter set (inputs and tf sections matter here).

    Attributes:
        streams: the configured cameras found in the bag.
        skips: reason -> count of messages or frames lost or degraded (complete after `finish`).
        image_messages: colour images read so far.

    Raises:
        BagError: the bag lacks a configured image / camera_info topic.
    """

    def __init__(self, bag: BagReader, params: PerceptionParams) -> None:
        self.max_pixels = params.inputs.max_pixels
        self.decoder = RosbagsImageDecoder()
        self.bag = bag
        self.streams = camera_streams(params, bag.topics)
        self._by_topic = {topic: camera for camera in self.streams
                          for topic in (camera.image_topic, camera.info_topic, camera.depth_topic) if topic}
        buffer, rejected = buffer_from_bag(bag)
        fixed = params.tf.fixed_frame

        def lookup(frame_id: str, stamp_ns: int):
            # tf2's stamp 0 means "latest": right live, but a recorded frame stamped 0 has no known time.
            if stamp_ns == 0:
                raise TransformError(f"{frame_id} is stamped 0: no time to look its pose up at")
            return buffer.lookup(fixed, frame_id, stamp_ns)

        self._lookup = lookup
        self.skips: Counter = Counter(rejected_transform=rejected)
        self.skips.update(bag.skips)
        bag.skips.clear()
        self.image_messages = 0

    @property
    def total_images(self) -> int:
        """Colour images the bag holds for the configured cameras (for progress bars)."""
        return sum(self.bag.message_counts.get(camera.image_topic, 0) for camera in self.streams)

    def frames(self, passthrough: Collection[str] = (),
               on_message: Callable[[BagMessage], None] | None = None) -> Iterator[Frame]:
        """Decoded, synchronized Frames (poses in `tf.fixed_frame` where the bag's tf has them).

        Args:
            passthrough: extra topics read undecoded, only to be handed to `on_message` (e.g. to copy them).
            on_message: called with every message read, before it is paired.
        """
        for message in self.bag.messages(list(self._by_topic) + list(passthrough), undecoded=passthrough):
            if on_message is not None:
                on_message(message)
            camera = self._by_topic.get(message.topic)
            if camera is None or message.message is None:
                continue
            stream = camera.stream_of(message.topic)
            if stream == IMAGE_STREAM:
                self.image_messages += 1
            expected = camera.image_type if stream == IMAGE_STREAM else STREAM_TYPES[stream]
            if message.msgtype != expected:
                self.skips[WRONG_TYPE] += 1
                LOG.warning("%s: skipped a %s on %s (a %s stream) at %d ns", camera.name, message.msgtype,
                            message.topic, expected, message.log_time_ns)
                continue
            try:
                matched = camera.sync.add(stream, message.message)
                if matched is None:
                    continue
                parts = dict(zip(camera.sync.streams, matched))
                frame, reasons = frame_from_messages(parts[IMAGE_STREAM], parts[INFO_STREAM],
                                                     parts.get(DEPTH_STREAM), camera.name, self._lookup,
                                                     self.decoder, self.max_pixels)
            except Exception as err:  # as the node: one bad message must not end the run; counted and logged
                self.skips[FRAME_ERRORS] += 1
                LOG.warning("%s: dropped a %s at %d ns: %s: %s", camera.name, message.msgtype, message.log_time_ns,
                            type(err).__name__, err)
                continue
            self.skips.update(reasons)
            if frame is not None:
                yield frame

    def finish(self) -> None:
        """Count what stayed unpaired and what the reader dropped since the last call."""
        self.skips.update(self.bag.skips)
        self.bag.skips.clear()
        for camera in self.streams:
            camera.sync.flush()
            self.skips.update({f"unpaired_{k}": v for k, v in camera.sync.unpaired.items()})
            camera.sync.unpaired.clear()


def iter_frames(bag_path: str | Path, params: PerceptionParams, skips: Counter | None = None) -> Iterator[Frame]:
    """Every synchronized Frame of the bag at `bag_path` (directory or single .mcap), for offline consumers.

    Args:
        bag_path: the bag.
        params: the full parameter set (inputs and tf sections matter here).
        skips: if given, receives the counted losses once the iteration ends.

    Raises:
        BagError: the bag cannot be opened or lacks the configured topics.
    """
    with BagReader(bag_path) as bag:
        reader = BagFrameReader(bag, params)
        try:
            yield from reader.frames()
        finally:
            reader.finish()
            if skips is not None:
                skips.update(+reader.skips)
