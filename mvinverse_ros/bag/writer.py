"""Writing rosbag2 recordings that ROS 2 Humble and newer can play, without ROS.

Metadata version 8 keeps offered QoS profiles as a YAML string, the form Humble's rosbag2 parses
(version 9 turned it into a list). Every message type's definition is stored in the bag, the
project's own mvinverse_ros/msg/MaterialMaps included, so any reader can decode it. The writer
always closes the bag properly, also on Ctrl-C or an error, so everything written stays readable.
"""
from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from mvinverse_ros.bag.errors import BagError

HUMBLE_COMPATIBLE_VERSION = 8
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

_NEVER = QosTime(0, 0)
# What tf2_ros' StaticTransformBroadcaster offers: late subscribers still get the static tree.
LATCHED_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                  _NEVER, _NEVER, QosLiveliness.AUTOMATIC, _NEVER, False)


class BagWriter:
    """Context manager writing messages (or already serialized bytes) to a new rosbag2 directory.

    Args:
        path: the bag directory to create; must not exist.
        typestore: rosbags typestore that knows every type written (e.g. typestore_with_project_types()).
        storage: 'mcap' or 'sqlite3'.

    Raises:
        BagError: unknown storage, existing path, or a write that fails.
    """

    def __init__(self, path: str | Path, typestore, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"Could not create bag {path}: storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        self.typestore = typestore
        self.storage = storage
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        try:
            writer = Writer(self.path, version=HUMBLE_COMPATIBLE_VERSION, storage_plugin=STORAGES[self.storage])
            writer.open()
        except (WriterError, OSError) as err:
            raise BagError(f"Could not create bag {self.path}: {err}") from err
        self._writer = writer
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close properly whatever happened (KeyboardInterrupt included): what was written stays."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except (WriterError, OSError) as err:
            writer.abort()
            if exc_type is None:
                raise BagError(f"Could not finish bag {self.path}: {err}") from err

    def _connection(self, topic: str, msgtype: str, latched: bool):
        connection = self._connections.get(topic)
        if connection is not None:
            if connection.msgtype != msgtype:
                raise BagError(f"Bag {self.path}: topic {topic} already carries {connection.msgtype}, not {msgtype}")
            return connection
        if self._writer is None:
            raise BagError(f"Bag {self.path} is not open; use `with BagWriter(...) as bag:`")
        try:
            connection = self._writer.add_connection(
                topic, msgtype, typestore=self.typestore, offered_qos_profiles=[LATCHED_QOS] if latched else []
            )
        except WriterError as err:
            raise BagError(f"Bag {self.path}: could not add topic {topic} ({msgtype}): {err}") from err
        self._connections[topic] = connection
        self.counts[topic] = 0
        return connection

    def write_raw(self, topic: str, msgtype: str, log_time_ns: int, raw: bytes, latched: bool = False) -> None:
        """Write CDR bytes as they are (copying a message from another bag)."""
        connection = self._connection(topic, msgtype, latched)
        assert self._writer is not None
        self._writer.write(connection, log_time_ns, raw)
        self.counts[topic] += 1

    def write(self, topic: str, msgtype: str, log_time_ns: int, message: Any, latched: bool = False) -> None:
        """Serialize a rosbags message of `msgtype` and write it at `log_time_ns`."""
        self.write_raw(topic, msgtype, log_time_ns, bytes(self.typestore.serialize_cdr(message, msgtype)), latched)
