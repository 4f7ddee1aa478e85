"""Reading rosbag2 recordings (sqlite3 or MCAP directories, single .mcap files) without ROS.

Message types come from the definitions stored in the bag (MCAP, Iron and newer sqlite3); bags
recorded without them (Humble sqlite3) fall back to the standard Humble types plus this project's
messages. A message whose bytes do not decode is a counted skip, never the end of the run.
"""
from __future__ import annotations

import logging
import sqlite3
import struct
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import apsw
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError

from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.typestore import typestore_with_project_types

LOG = logging.getLogger(__name__)

UNDECODABLE = "undecodable message"
# What damaged storage raises through rosbags: its own errors, SQLite's (apsw for reading, sqlite3
# for writing), short reads and bad record framing in MCAP.
STORAGE_ERRORS = (AnyReaderError, ReaderError, apsw.Error, sqlite3.DatabaseError, OSError, struct.error, EOFError)


@dataclass(frozen=True)
class BagMessage:
    """One decoded message as it was logged.

    Attributes:
        topic: topic name.
        msgtype: ROS 2 type name, e.g. 'sensor_msgs/msg/Image'.
        log_time_ns: receive (log) time in the bag, nanoseconds.
        message: the deserialized message (rosbags dataclass; same attributes as rclpy's).
        raw: the serialized CDR bytes, for copying the message unchanged.
    """

    topic: str
    msgtype: str
    log_time_ns: int
    message: Any
    raw: bytes


class BagReader:
    """Context manager over one recording; iterates decoded messages in log-time order.

    Attributes:
        skips: reason -> number of messages dropped for that reason (undecodable bytes).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.skips: Counter[str] = Counter()
        self._reader: AnyReader | None = None

    def __enter__(self) -> "BagReader":
        """Open the recording.

        Raises:
            BagError: the path is missing or is not a readable rosbag2 recording.
        """
        if not self.path.exists():
            raise BagError(f"Could not open bag {self.path}: no such file or directory")
        try:
            reader = AnyReader([self.path], default_typestore=typestore_with_project_types())
            reader.open()
        except (*STORAGE_ERRORS, ValueError, KeyError) as err:
            raise BagError(f"Could not open bag {self.path}: {err}") from err
        self._reader = reader
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def _open_reader(self) -> AnyReader:
        if self._reader is None:
            raise BagError(f"Bag {self.path} is not open; use `with BagReader(path) as bag:`")
        return self._reader

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type of every topic in the recording."""
        return {c.topic: c.msgtype for c in self._open_reader.connections}

    @property
    def message_counts(self) -> dict[str, int]:
        """topic -> number of messages the recording's index lists."""
        return {topic: info.msgcount for topic, info in self._open_reader.topics.items()}

    @property
    def duration_ns(self) -> int:
        return self._open_reader.duration

    def qos_profiles(self, topic: str) -> list:
        """The offered QoS profiles recorded for `topic` (rosbags Qos records), e.g. to keep /tf_static latched."""
        for connection in self._open_reader.connections:
            if connection.topic == topic:
                return list(getattr(connection.ext, "offered_qos_profiles", []) or [])
        return []

    def messages(self, topics: Collection[str] = (), undecoded: Collection[str] = ()) -> Iterator[BagMessage]:
        """Decoded messages of `topics` (all if empty) in log-time order.

        Messages that fail to deserialize (truncated or corrupt CDR) are counted in
        `skips[UNDECODABLE]` and logged; iteration goes on. Topics in `undecoded` come back as raw
        bytes only (`message` None), e.g. to copy them without paying for (or counting) decoding twice.

        Raises:
            BagError: the storage itself cannot be read (damaged pages or records); the messages
                before the damage have been yielded.
        """
        reader = self._open_reader
        connections = [c for c in reader.connections if not topics or c.topic in topics]
        if topics and not connections:
            return
        try:
            for connection, log_time_ns, raw in reader.messages(connections=connections):
                if connection.topic in undecoded:
                    yield BagMessage(connection.topic, connection.msgtype, log_time_ns, None, bytes(raw))
                    continue
                try:
                    message = reader.deserialize(raw, connection.msgtype)
                except AnyReaderError as err:
                    self.skips[UNDECODABLE] += 1
                    LOG.warning("%s: skipped a %s on %s at %d ns: %s", self.path, connection.msgtype,
                                connection.topic, log_time_ns, err)
                    continue
                yield BagMessage(connection.topic, connection.msgtype, log_time_ns, message, bytes(raw))
        except STORAGE_ERRORS as err:
            raise BagError(f"Could not read messages from bag {self.path}: {type(err).__name__}: {err}") from err
