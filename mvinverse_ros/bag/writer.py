"""Writing rosbag2 recordings that ROS 2 Humble and newer can play, without ROS.

Metadata version 8 keeps offered QoS profiles as a YAML string, the form Humble's rosbag2 parses
(version 9 turned it into a list). Every message type's definition is stored in the bag, the
project's own mvinverse_ros/msg/MaterialMaps included, so any reader can decode it. The writer
always closes the bag properly, also on Ctrl-C or an error, so everything written stays readable.

A process killed outright (SIGKILL, power loss) cannot close it: the MCAP file then lacks its
footer and summary, the sqlite3 file its last transaction, and both lack metadata.yaml, so no
rosbag2 reader opens the directory. `flush` bounds that loss (MCAP: the pending chunk goes to
the file; sqlite3: the transaction is committed), and `recover_bag` (`mvinverse-ros bag recover`)
copies everything up to the last flush into a new, complete bag.
"""
from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer, WriterError

from mvinverse_ros import topics
from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.reader import BagReader

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
        compress: zstd-compress MCAP chunks (readers decompress them transparently; sqlite3 ignores it).

    Raises:
        BagError: unknown storage, existing path, or a write that fails.
    """

    def __init__(self, path: str | Path, typestore, storage: str = "mcap", compress: bool = False) -> None:
        if storage not in STORAGES:
            raise BagError(f"Could not create bag {path}: storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        self.typestore = typestore
        self.storage = storage
        self.compress = compress
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        try:
            writer = Writer(self.path, version=HUMBLE_COMPATIBLE_VERSION, storage_plugin=STORAGES[self.storage])
            if self.compress and self.storage == "mcap":
                writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
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
            return
        _flushed_marker(self.path / f"{self.path.name}.mcap").unlink(missing_ok=True)  # complete: nothing to recover

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

    def flush(self) -> None:
        """Make everything written so far survive a kill (recoverable with `recover_bag`).

        rosbags has no public flush; its storage writers are reached directly (checked against rosbags 0.11).
        """
        if self._writer is None or self._writer.storage is None:
            return
        storage = self._writer.storage
        if self.storage == "mcap":
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            # rosbags also closes a chunk on its own at 1 MiB, so the file can end in part of the next
            # window; the flushed length marks where the last whole window ends.
            marker = _flushed_marker(storage.path)
            marker.with_suffix(".tmp").write_text(str(storage.bio.tell()))
            marker.with_suffix(".tmp").replace(marker)
        else:
            storage.conn.commit()


def _flushed_marker(mcap: Path) -> Path:
    """The file beside an MCAP being written that holds its length at the last `flush`."""
    return mcap.with_name(mcap.name + ".flushed")


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_MCAP_FOOTER = 0x02
_MCAP_DATA_END = 0x0F


def _complete_mcap_prefix(path: Path) -> int:
    """Bytes of the MCAP file at `path` up to its last complete record (header magic included)."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        if stream.read(8) != _MCAP_MAGIC:
            raise BagError(f"Could not recover {path}: not an MCAP file")
        end = 8
        while end + 9 <= size:
            op, length = struct.unpack("<BQ", stream.read(9))
            if op in (_MCAP_FOOTER, _MCAP_DATA_END) or end + 9 + length > size:
                break
            end += 9 + length
            stream.seek(end)
    return end


def _mcap_messages(path: Path, scratch: Path):
    """(topic, msgtype, log time, raw) of a footerless MCAP: its complete records plus a footer, read by rosbags.

    A footer whose summary offset is 0 makes rosbags scan the data section record by record.
    """
    fixed = scratch / "recovered.mcap"
    marker = _flushed_marker(path)
    flushed = int(marker.read_text()) if marker.exists() else len(_MCAP_MAGIC)
    end = min(_complete_mcap_prefix(path), flushed)
    with path.open("rb") as source, fixed.open("wb") as target:
        while end - target.tell() > 0:
            block = source.read(min(1 << 24, end - target.tell()))
            target.write(block)
        target.write(struct.pack("<BQQQI", _MCAP_FOOTER, 20, 0, 0, 0) + _MCAP_MAGIC)
    with BagReader(fixed) as bag:
        for message in bag.messages(undecoded=bag.topics):
            yield message.topic, message.msgtype, message.log_time_ns, message.raw


def _sqlite3_messages(path: Path, scratch: Path):
    """(topic, msgtype, log time, raw) of the committed rows of a rosbag2 sqlite3 file (a copy is read)."""
    copy = scratch / path.name
    shutil.copyfile(path, copy)
    for journal in (path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        if journal.exists():  # SQLite rolls an unfinished transaction back from it
            shutil.copyfile(journal, scratch / journal.name)
    connection = sqlite3.connect(copy)
    try:
        types = {row[0]: (row[1], row[2]) for row in connection.execute("SELECT id, name, type FROM topics")}
        for topic_id, stamp, data in connection.execute(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp, id"):
            yield (*types[topic_id], stamp, bytes(data))
    finally:
        connection.close()


def recover_bag(broken: str | Path, out: str | Path, typestore) -> dict[str, int]:
    """Copy what a killed writer left in the bag directory `broken` into a new, complete bag at `out`.

    Everything up to the writer's last `flush` is there; a record or transaction cut by the kill is dropped.

    Args:
        typestore: a typestore that knows every type in the bag (e.g. typestore_with_project_types()).

    Returns:
        topic -> messages recovered.

    Raises:
        BagError: `broken` was closed properly (nothing to recover), holds no storage file, or cannot be read.
    """
    broken, out = Path(broken), Path(out)
    if (broken / "metadata.yaml").exists():
        raise BagError(f"Could not recover {broken}: it was closed properly (metadata.yaml exists); read it as it is")
    files = sorted(broken.glob("*.mcap")) + sorted(broken.glob("*.db3"))
    if len(files) != 1:
        raise BagError(f"Could not recover {broken}: expected one .mcap or .db3 file there, found {len(files)}")
    storage = "mcap" if files[0].suffix == ".mcap" else "sqlite3"
    reader = _mcap_messages if storage == "mcap" else _sqlite3_messages
    with tempfile.TemporaryDirectory(prefix="recover-", dir=out.parent) as scratch, \
            BagWriter(out, typestore, storage) as bag:
        try:
            for topic, msgtype, stamp, raw in reader(files[0], Path(scratch)):
                bag.write_raw(topic, msgtype, stamp, raw, latched=topic == topics.TF_STATIC)
        except (sqlite3.DatabaseError, OSError, KeyError) as err:
            raise BagError(f"Could not recover {broken}: {type(err).__name__}: {err}") from err
        return dict(bag.counts)
