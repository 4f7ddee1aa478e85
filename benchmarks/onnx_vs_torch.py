"""Torch eager vs ONNX Runtime (CPU provider) through the streaming engine, on real 7-Scenes windows.

Same windows, same weights, one process: ms per published frame of each backend (median of the
timed windows) and their max abs difference. The official preset uses the parity fill rule
(deterministic) when /work/shared/parity is there; its export (about 4 GB of weights, external
data) is written to a temporary folder and deleted afterwards.

    python benchmarks/onnx_vs_torch.py            # small @ 476x630 and official @ 126x168, windows 4 and 8
    python benchmarks/onnx_vs_torch.py --presets small

Prints a table, then as its LAST line one JSON object (with the peak RSS of the process).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from gpu_check import official_model, onnx_rows  # noqa: E402
from streaming import REPO, device_name, full_windows, kitchen_frames, peak_rss_mib, timed_ms  # noqa: E402

from mvinverse_ros.engine.streaming import StreamingEngine  # noqa: E402
from mvinverse_ros.model import load_model  # noqa: E402


def torch_ms(model, windows, long_side: int) -> float:
    """Median ms per published frame of the torch streaming engine over windows[1:] (windows[0] warms up)."""
    engine = StreamingEngine(model, long_side=long_side)
    engine.run(windows[0])
    times = [timed_ms(torch.device("cpu"), lambda: engine.run(window))[1] for window in windows[1:]]
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch and ORT)")
    parser.add_argument("--windows", type=int, default=2, help="timed windows per row")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8], help="window sizes")
    parser.add_argument("--presets", nargs="+", default=["small", "official"], choices=("small", "official"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = kitchen_frames(args.shared)
    plans = [(preset, long_side) for preset, long_side in (("small", 630), ("official", 168)) if preset in args.presets]
    rows = []
    for preset, long_side in plans:
        started = time.perf_counter()
        model = load_model(preset="small").model if preset == "small" else official_model(args.shared)[0]
        print(f"# {preset} ready in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        window_sets = [full_windows(frames, size, args.windows + 1) for size in args.sizes]
        ort_rows = onnx_rows(model, preset, window_sets, long_side, torch.device("cpu"), ["CPUExecutionProvider"])
        for size, windows, ort in zip(args.sizes, window_sets, ort_rows):
            eager = torch_ms(model, windows, long_side)
            rows.append({"preset": preset, "long_side": long_side, "window": size,
                         "torch_ms_per_frame": round(eager, 1),
                         "ort_ms_per_frame": ort["stream_ms_per_frame"], "export_s": ort["export_s"],
                         "max_abs_diff": ort["max_abs_diff_vs_torch_fp32"]})
            print(f"# {rows[-1]}", file=sys.stderr, flush=True)
        del model
    print(f"{device_name(torch.device('cpu'))}; streaming engine, ms per published frame (median of {args.windows})")
    print(f"{'preset':9}{'long':>6}{'win':>5}{'torch ms':>10}{'ort ms':>9}{'ratio':>7}{'max|diff|':>11}")
    for r in rows:
        print(f"{r['preset']:9}{r['long_side']:>6}{r['window']:>5}{r['torch_ms_per_frame']:>10.0f}"
              f"{r['ort_ms_per_frame']:>9.0f}{r['torch_ms_per_frame'] / r['ort_ms_per_frame']:>7.2f}"
              f"{r['max_abs_diff']:>11.1e}")
    print(json.dumps({"device": device_name(torch.device("cpu")), "threads": args.threads, "rows": rows,
                      "peak_rss_mib": round(peak_rss_mib())}))


if __name__ == "__main__":
    main()
