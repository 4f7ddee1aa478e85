"""Whether two bags carry the same messages: per topic, the same types and the same serialized bytes in order.

Log times and storage are not compared (an MCAP and a sqlite3 copy of one recording are equal), so
a refactoring, a second backend or a fleet worker can be checked against a reference run.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mvinverse_ros.bag.reader import BagReader


@dataclass(frozen=True)
class TopicDigest:
    """Type, message count and SHA-256 over the CDR bytes of one topic's messages in log order."""

    msgtype: str
    count: int
    sha256: str


def bag_digest(path: str | Path) -> dict[str, TopicDigest]:
    """topic -> TopicDigest of every topic in the bag.

    Raises:
        BagError: the bag cannot be opened.
    """
    hashes: dict[str, hashlib._Hash] = defaultdict(hashlib.sha256)
    counts: dict[str, int] = defaultdict(int)
    types: dict[str, str] = {}
    with BagReader(path) as bag:
        for message in bag.messages(undecoded=bag.topics):
            hashes[message.topic].update(len(message.raw).to_bytes(8, "little"))
            hashes[message.topic].update(message.raw)
            counts[message.topic] += 1
            types[message.topic] = message.msgtype
    return {topic: TopicDigest(types[topic], counts[topic], hashes[topic].hexdigest()) for topic in sorted(types)}


def bag_differences(a: str | Path, b: str | Path) -> list[str]:
    """One line per topic whose type, count or bytes differ between bags `a` and `b` (empty: equal)."""
    first, second = bag_digest(a), bag_digest(b)
    lines = []
    for topic in sorted(set(first) | set(second)):
        x, y = first.get(topic), second.get(topic)
        if x is None or y is None:
            lines.append(f"{topic}: only in {a if y is None else b}")
        elif x.msgtype != y.msgtype:
            lines.append(f"{topic}: type {x.msgtype} vs {y.msgtype}")
        elif x.count != y.count:
            lines.append(f"{topic}: {x.count} vs {y.count} messages")
        elif x.sha256 != y.sha256:
            lines.append(f"{topic}: {x.count} messages, bytes differ")
    return lines
