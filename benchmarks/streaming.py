"""Streaming engine vs the official-style full recompute, on the real 7-Scenes kitchen sequence.

Both paths run in this one process on the same model and the same windows (keyframes chosen by
WindowPolicy from the real poses, sliding, publishing the newest frame), interleaved window by
window so machine load hits both alike. The full recompute sends every frame of every window
through the encoder, ResNeXt, decoder and all heads (what the official script does per call);
the engine runs each frame's encoder, ResNeXt and decoder block 0 once while it stays in the
window, the last global decoder block for the published frame's tokens only, and heads for the
published frame only.

    python benchmarks/streaming.py                 # small @ data resolution + official @ reduced size
    python benchmarks/streaming.py --quick         # fewer windows, smaller sizes (smoke run)
    python benchmarks/streaming.py --device cuda --dtype bf16 --official-long-side 518   # on a GPU

Prints a table, then as its LAST line one JSON object (device, dtype, latencies per published
frame, peak memory, speedup_w4, speedup_w8 for the default preset, max_abs_diff over everything).
On CUDA, memory is the allocator's peak above what was allocated before the call; on the CPU it
is the peak RSS above the RSS before it.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mvinverse_ros.datasets.rgbd import load_7scenes  # noqa: E402
from mvinverse_ros.engine.preprocess import resolve_device  # noqa: E402
from mvinverse_ros.engine.streaming import StreamingEngine, full_recompute, window_network_size  # noqa: E402
from mvinverse_ros.engine.windowing import WindowPolicy  # noqa: E402
from mvinverse_ros.model import build_model  # noqa: E402
from mvinverse_ros.params import load_params  # noqa: E402
from mvinverse_ros.types import MAP_NAMES, Frame, Window  # noqa: E402

MIB = 1024 * 1024


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def start_peak_rss() -> float:
    """Return freed heap to the OS and start a new peak (VmHWM := RSS); returns that RSS in MiB.

    Without the trim, memory the previous path freed but glibc kept would hide this path's peak.
    """
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    return _status_mib("VmHWM")


class PeakMemory:
    """Peak memory of one call above the memory in use before it (CUDA allocator or process RSS)."""

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return torch.cuda.memory_allocated(self.device) / MIB
        return start_peak_rss()

    def peak(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / MIB
        return peak_rss_mib()


def device_name(device: torch.device) -> str:
    """The GPU's or the CPU's model name, for the report."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x{torch.get_num_threads()} threads"
    return "cpu"


def timed_ms(device: torch.device, call):
    """(result, milliseconds) of call(), waiting for queued GPU work on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, (time.perf_counter() - started) * 1e3


def kitchen_frames(shared: Path) -> list[Frame]:
    sequence = load_7scenes(shared / "data" / "7scenes-redkitchen", fps=10.0)
    poses = dict(sequence.poses)
    return [
        Frame(s.stamp_ns, "kitchen", cv2.cvtColor(cv2.imread(str(s.color_path)), cv2.COLOR_BGR2RGB),
              camera_to_fixed=poses[s.stamp_ns])
        for s in sequence.samples
    ]


def full_windows(frames: list[Frame], size: int, count: int) -> list[Window]:
    """The first `count` full windows WindowPolicy emits on the sequence (default keyframe rules)."""
    policy = WindowPolicy(dataclasses.replace(load_params().window, size=size, stride=1, publish="newest"))
    windows = []
    for frame in frames:
        window = policy.push(frame)
        if window is not None and len(window.frames) == size:
            windows.append(window)
            if len(windows) == count:
                return windows
    raise SystemExit(f"the sequence gives only {len(windows)} full windows of {size} keyframes; ask for fewer")


def max_abs_diff(maps_a, maps_b) -> float:
    return max(float(np.abs(getattr(a, n) - getattr(b, n)).max()) for a, b in zip(maps_a, maps_b) for n in MAP_NAMES)


def compare(model, preset: str, frames: list[Frame], size: int, long_side: int, timed: int,
            device: torch.device, dtype: str) -> dict:
    """One (preset, window size, resolution) row: interleaved timing of both paths, then their memory.

    Timing runs on a warm heap, as a running node does; the peak-memory pass comes after it,
    because returning the heap to the OS before each call (needed to see a call's own peak)
    makes the call fault its memory in again and would bill that to its time.
    """
    windows = full_windows(frames, size, timed + 1)
    engine = StreamingEngine(model, device=str(device), dtype=dtype, long_side=long_side)

    def full(window):
        return full_recompute(model, window, long_side, device=str(device), dtype=dtype)

    engine.run(windows[0])  # fills the cache of the first full window and warms up kernels
    full(windows[0])
    full_ms, stream_ms, worst = [], [], 0.0
    for window in windows[1:]:
        reference, elapsed = timed_ms(device, lambda: full(window))
        full_ms.append(elapsed)
        result, elapsed = timed_ms(device, lambda: engine.run(window))
        stream_ms.append(elapsed)
        worst = max(worst, max_abs_diff(result.maps, reference))
    frames_encoded = engine.counters["frames_encoded"]
    memory, last = PeakMemory(device), windows[-1]
    before = memory.start()
    full(last)
    full_work = memory.peak() - before
    engine.reset()
    engine.run(windows[-2])  # the cache as it was before the last window
    before = memory.start()
    engine.run(last)
    stream_work = memory.peak() - before
    height, width = window_network_size(windows[0].frames, long_side)
    full, stream = statistics.median(full_ms), statistics.median(stream_ms)
    return {
        "preset": preset, "window": size, "network_hw": [height, width], "windows_timed": timed,
        "full_ms_per_frame": round(full, 1), "stream_ms_per_frame": round(stream, 1),
        "speedup": round(full / stream, 2),
        "full_work_mib": round(full_work), "stream_work_mib": round(stream_work),
        "rss_mib": round(_status_mib("VmRSS")),
        "cache_mib": round(engine.cache_bytes / MIB, 1), "frames_encoded": frames_encoded,
        "max_abs_diff": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--small-long-side", type=int, default=640, help="small preset input (640 = 7-Scenes' own)")
    parser.add_argument("--official-long-side", type=int, default=168, help="official preset input (reduced for CPU)")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per small-preset row")
    parser.add_argument("--official-windows", type=int, default=2, help="timed windows per official row (0 = skip)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8], help="window sizes")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast precision")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 windows, small sizes, no official")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.quick:
        args.small_long_side, args.windows, args.official_windows = 126, 2, 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frames = kitchen_frames(args.shared)
    default_preset = load_params().model.preset

    rows = []
    plans = [("small", args.small_long_side, args.windows),
             ("official", args.official_long_side, args.official_windows)]
    for preset, long_side, timed in plans:
        if timed == 0:
            continue
        started = time.perf_counter()
        model = build_model(preset).eval()
        print(f"# built {preset} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        for size in args.sizes:
            rows.append(compare(model, preset, frames, size, long_side, timed, device, args.dtype))
            print(f"# {rows[-1]}", file=sys.stderr, flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    header = (f"{'preset':9}{'win':>4}{'net HxW':>10}{'full ms':>10}{'stream ms':>11}{'speedup':>9}"
              f"{'full +MiB':>10}{'strm +MiB':>10}{'cache MiB':>10}{'max|diff|':>11}")
    held = "allocated CUDA memory" if device.type == "cuda" else "RSS"
    print(f"{device_name(device)}, {args.dtype}; ms per published frame (median of timed windows); +MiB = peak {held} "
          f"above the {held} before the call (activations; the engine's cache is held before); cache = engine cache")
    print(header)
    for r in rows:
        hw = "x".join(map(str, r["network_hw"]))
        print(f"{r['preset']:9}{r['window']:>4}{hw:>10}{r['full_ms_per_frame']:>10.0f}{r['stream_ms_per_frame']:>11.0f}"
              f"{r['speedup']:>9.2f}{r['full_work_mib']:>10}{r['stream_work_mib']:>10}{r['cache_mib']:>10.1f}"
              f"{r['max_abs_diff']:>11.1e}")
    summary = {"device": device_name(device), "dtype": args.dtype, "threads": args.threads,
               "default_preset": default_preset, "rows": rows}
    for size in args.sizes:
        match = [r for r in rows if r["preset"] == default_preset and r["window"] == size]
        if match:
            summary[f"speedup_w{size}"] = match[0]["speedup"]
    summary["max_abs_diff"] = max(r["max_abs_diff"] for r in rows)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
