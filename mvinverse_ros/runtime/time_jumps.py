"""Noticing time running backwards in the input when the clock itself does not say so.

A bag replayed with `--loop` but without `--clock` restarts its stamps with no /clock jump; the
node must then forget TF, waiting windows and the map just as for a clock jump. The test is the
window policy's own (engine.windowing.breaks_sequence), here without a gap limit and per camera.
"""
from __future__ import annotations

import threading

from mvinverse_ros.engine.windowing import breaks_sequence


class BackwardsStamps:
    """The last image stamp of each camera, and whether a new one went back in time.

    Thread-safe: every camera's synchronizer callback may call `observe`.
    """

    def __init__(self) -> None:
        self._last_ns: dict[str, int] = {}
        self._lock = threading.Lock()

    def observe(self, source: str, stamp_ns: int) -> bool:
        """Record `source`'s new stamp; True when it is earlier than that camera's last one.

        After a jump every other camera's stamp is forgotten too (their next frames start afresh
        instead of each reporting the same jump).
        """
        with self._lock:
            jumped = breaks_sequence(self._last_ns.get(source), stamp_ns)
            if jumped:
                self._last_ns.clear()
            self._last_ns[source] = stamp_ns
            return jumped

    def forget(self) -> None:
        """Forget every camera's stamp (the clock jumped: no stamp before it is comparable)."""
        with self._lock:
            self._last_ns.clear()
