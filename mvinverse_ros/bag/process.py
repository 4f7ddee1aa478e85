"""`mvinverse-ros bag process`: a recorded bag in, the node's outputs as a new bag out.

One pass over the input in log-time order does what the node does live: pair each camera's
image, camera_info and depth by stamp, decode them into Frames with poses from the bag's tf,
feed the PerceptionPipeline and write every window's maps and the fused cloud under the node's
topic names (mvinverse_ros.topics). The final cloud also goes to a PLY file and a few frames'
maps to a contact-sheet PNG.

The output is deterministic: every message's log time is its header stamp and the one
wall-clock field, MaterialMaps.inference_time, is written as 0 (timings are in the summary), so
the same input and parameters give byte-identical messages on the same machine with the same
torch thread count (float reductions split across threads round differently: pin
OMP_NUM_THREADS when comparing bytes across machines).

Stopping: SIGINT and SIGTERM stop reading at once, except while a window's messages are being
written: those finish first (a second signal stops at once), so a window is in the bag on every
topic or on none and the summary counts what the bag holds. The bag is flushed after every
window, so a SIGKILL loses at most the window being written; `mvinverse-ros bag recover` turns
what is left into a complete bag. Damaged input storage ends the run like a signal, with what
was written kept, and is reported as `error`.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mvinverse_ros import topics
from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.frames import BagFrameReader
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.bag.reader import BagMessage, BagReader
from mvinverse_ros.bag.writer import BagWriter
from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.outputs import cloud_output_msg, window_output_msgs
from mvinverse_ros.params import PerceptionParams
from mvinverse_ros.pipeline import PerceptionPipeline
from mvinverse_ros.runtime.time_jumps import BackwardsStamps
from mvinverse_ros.types import NS_PER_SECOND, Frame, MaterialCloud, MaterialMaps, WindowResult
from mvinverse_ros.visualize import contact_sheet, tile_height

LOG = logging.getLogger(__name__)

SHEET_ROWS = 4
SHEET_TILE_WIDTH = 192


class SheetSampler:
    """Keeps a few evenly spaced published frames (thumbnails) for the contact sheet, in bounded memory."""

    def __init__(self, rows: int = SHEET_ROWS, tile_width: int = SHEET_TILE_WIDTH) -> None:
        self.rows, self.tile_width = rows, tile_width
        self._every, self._seen = 1, 0
        self._first_stamp_ns: int | None = None
        self._kept: list[tuple[str, np.ndarray, MaterialMaps]] = []

    def _thumb(self, image: np.ndarray) -> np.ndarray:
        height = tile_height(image.shape, self.tile_width)
        return cv2.resize(image, (self.tile_width, height), interpolation=cv2.INTER_AREA)

    def offer(self, frame: Frame, maps: MaterialMaps) -> None:
        if self._first_stamp_ns is None:
            self._first_stamp_ns = frame.stamp_ns
        if self._seen % self._every == 0:
            small = MaterialMaps(*(self._thumb(getattr(maps, f.name)) for f in dataclasses.fields(MaterialMaps)))
            label = f"{frame.source} +{(frame.stamp_ns - self._first_stamp_ns) / NS_PER_SECOND:.2f}s"
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
    error: str | None = None
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


class StopSignals:
    """SIGINT and SIGTERM raise KeyboardInterrupt, except inside `held()`, which defers the first one to its end.

    Installed only from the main thread (signal handlers can be set nowhere else); the previous
    handlers come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._holding = False
        self.pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame) -> None:
        if self._holding and self.pending is None:
            self.pending = signum
            return
        raise KeyboardInterrupt

    def ignore(self) -> None:
        """From now on stop signals are ignored (until exit): what remains is finishing the outputs."""
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Defer a stop signal until the block ends, then raise KeyboardInterrupt."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self.pending is not None:
            raise KeyboardInterrupt


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
        self._written = False

    def _write_result(self, out: BagWriter, result: WindowResult, sampler: SheetSampler,
                      cloud: MaterialCloud | None = None) -> None:
        """The window's messages as the node publishes them (the same builder), logged at their stamps."""
        bag = self.params.bag
        for topic, message in window_output_msgs(self.factory, result, cloud, self.params.tf.fixed_frame,
                                                 with_inference_time=False, map_encoding=bag.map_encoding,
                                                 with_materials=bag.write_materials):
            out.write(topic, topics.output_type(topic), stamp_to_ns(message.header.stamp), message)
            self._cloud_stale = self._cloud_stale and topic != topics.CLOUD
        for frame, maps in result.published():
            sampler.offer(frame, maps)
            self._last_stamp_ns = max(self._last_stamp_ns, frame.stamp_ns)

    def _write_cloud(self, out: BagWriter, cloud: MaterialCloud, stamp_ns: int) -> None:
        topic, message = cloud_output_msg(self.factory, cloud, self.params.tf.fixed_frame, stamp_ns)
        out.write(topic, topics.output_type(topic), stamp_ns, message)
        self._cloud_stale = False

    def run(self, input_path: str | Path, output_path: str | Path, ply_path: str | Path | None = None,
            sheet_path: str | Path | None = None, progress: bool = True) -> ProcessSummary:
        """Process `input_path` into a new bag at `output_path` (plus PLY and contact sheet if paths are given).

        Ctrl-C or SIGTERM stops reading (see the module docstring), then the cloud so far, the PLY
        and the sheet are still written and the bag is closed properly; the summary says
        `interrupted`. Input storage damaged mid-file ends the run the same way, with the cause in
        `summary.error`.

        Raises:
            BagError: the input cannot be opened or lacks the configured topics; an output exists.
                An output bag an error leaves empty is removed, so it does not block a rerun.
        """
        for path in (output_path, ply_path, sheet_path):
            if path is not None and Path(path).exists():
                raise BagError(f"Could not write {path}: it exists (remove it or choose another output)")
        try:
            with StopSignals() as stops:
                return self._run(input_path, output_path, ply_path, sheet_path, progress, stops)
        except Exception:
            if Path(output_path).exists() and not self._written:
                shutil.rmtree(output_path, ignore_errors=True)
            raise

    def _run(self, input_path, output_path, ply_path, sheet_path, progress: bool,
             stops: StopSignals) -> ProcessSummary:
        summary = ProcessSummary(Path(input_path), Path(output_path))
        started = time.perf_counter()
        self.engine.reset()
        self.pipeline = PerceptionPipeline(self.params, self.engine)
        self._cloud_stale, self._last_stamp_ns = False, 0
        self._written = False
        time_jumps = BackwardsStamps()
        with BagReader(input_path) as bag:
            reader = BagFrameReader(bag, self.params)
            image_topics = {camera.image_topic for camera in reader.streams}
            copy = self.params.bag.copy_inputs
            tf_topics = [t for t in (topics.TF, topics.TF_STATIC) if t in bag.topics] if copy else []
            first_stamp = last_stamp = None
            with BagWriter(output_path, self.typestore, self.params.bag.storage,
                           compress=self.params.bag.compression == "zstd") as out, \
                    tqdm(total=reader.total_images, unit="img", desc="bag process", disable=not progress) as bar:
                sampler = SheetSampler()

                def on_message(message: BagMessage) -> None:
                    if copy:
                        out.write_raw(message.topic, message.msgtype, message.log_time_ns, message.raw,
                                      latched=message.topic == topics.TF_STATIC)
                    if message.topic in image_topics and message.message is not None:
                        bar.update(1)

                try:
                    for frame in reader.frames(passthrough=tf_topics, on_message=on_message):
                        summary.frames += 1
                        if time_jumps.observe(frame.source, frame.stamp_ns):
                            LOG.warning("%s: stamp went back in time: windows and fused map start afresh",
                                        frame.source)
                            summary.skips["time_resets"] += 1
                            self.pipeline.reset()
                        first_stamp = frame.stamp_ns if first_stamp is None else min(first_stamp, frame.stamp_ns)
                        last_stamp = frame.stamp_ns if last_stamp is None else max(last_stamp, frame.stamp_ns)
                        window = self.pipeline.submit(frame)
                        if window is None:
                            continue
                        output = self.pipeline.process(window)
                        result = output.result
                        due = self.params.bag.cloud_per_window and output.cloud_due
                        with stops.held():  # all of a window's messages, or none
                            summary.network_seconds += output.result.inference_seconds
                            self._cloud_stale = self._cloud_stale or output.fused > 0
                            self._write_result(out, result, sampler, self.pipeline.cloud() if due else None)
                            out.flush()
                            summary.windows += 1
                            summary.published += len(result.maps)
                            summary.fused += output.fused
                            self._written = True
                except KeyboardInterrupt:
                    summary.interrupted = True
                    LOG.warning("interrupted: closing %s with everything processed so far", output_path)
                except BagError as err:  # damaged input storage (or a failing write): keep what was written
                    summary.error = str(err)
                    LOG.warning("stopped early: closing %s with everything processed so far", output_path)
                stops.ignore()  # the outputs so far are finished whatever arrives now
                reader.finish()
                summary.image_messages = reader.image_messages
                summary.skips.update(reader.skips)
                cloud = self.pipeline.cloud()
                published_any = self._last_stamp_ns > 0
                if cloud is not None and published_any and (self._cloud_stale or not self.params.bag.cloud_per_window):
                    self._write_cloud(out, cloud, self._last_stamp_ns)
                summary.cloud_points = len(cloud) if cloud is not None else 0
                summary.written = dict(out.counts)
        counters = self.pipeline.counters
        for reason in ("no_depth", "no_camera_info", "no_pose"):
            if counters[reason]:
                summary.skips[f"unfused_{reason}"] = counters[reason]
        summary.skips["nonfinite_maps"] = counters["nonfinite_maps"]
        summary.skips = +summary.skips  # drop reasons that never happened
        summary.window_counters = self.pipeline.window_counters()
        if ply_path is not None and cloud is not None:
            try:
                self.pipeline.save_map(ply_path)
            except ConversionError as err:
                raise BagError(str(err)) from err
            summary.ply_path = Path(ply_path)
        sheet = sampler.sheet()
        if sheet_path is not None and sheet is not None:
            if not cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
                raise BagError(f"Could not write contact sheet {sheet_path}")
            summary.sheet_path = Path(sheet_path)
        if first_stamp is not None:
            summary.bag_seconds = (last_stamp - first_stamp) / NS_PER_SECOND
        summary.wall_seconds = time.perf_counter() - started
        return summary
