"""One-command GPU check: parity, reduced-precision error, latency and memory, torch and ONNX Runtime.

On one GPU, in well under 5 minutes, on real 7-Scenes windows (WindowPolicy keyframes):
  1. parity: torch fp32 on the device vs the CPU reference (full recompute, same weights);
  2. bf16 and fp16 autocast: max error of the streaming maps against device fp32;
  3. the official preset (deterministic parity-rule weights when /work/shared/parity is there, else
     seeded random) at a 518 px long side, windows 4 and 8: ms per published frame full recompute
     vs streaming, peak memory (benchmarks/streaming.py's `compare`);
  4. the same streaming windows through ONNX Runtime with the CUDA and TensorRT providers, when
     this onnxruntime build has them: ms per published frame and max error against torch fp32.

    python benchmarks/gpu_check.py                         # on cuda
    python benchmarks/gpu_check.py --device cpu --quick    # smoke run on a CPU (small preset, 126 px)

Prints a table, then as its LAST line one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from streaming import REPO, compare, device_name, full_windows, kitchen_frames, max_abs_diff, timed_ms  # noqa: E402

from mvinverse_ros.engine.preprocess import resolve_device  # noqa: E402
from mvinverse_ros.engine.streaming import StreamingEngine, full_recompute  # noqa: E402
from mvinverse_ros.model import build_model  # noqa: E402

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def official_model(shared: Path):
    """The official network: the parity fill rule when the fixture is there (deterministic), else seeded random."""
    manifest = shared / "parity" / "manifest.json"
    if manifest.is_file():
        from mvinverse_ros.model.parity import official_synthetic_model
        return official_synthetic_model(str(manifest))[0], "parity fill rule"
    torch.manual_seed(0)
    return build_model("official").eval(), "seeded random"


def onnx_rows(model, preset: str, window_sets, long_side: int, device: torch.device,
              providers: list[str]) -> list[dict]:
    """Export the model once, then per window size and provider: streaming ms per published frame, max error vs torch.

    window_sets: one list of windows per window size; the first of each warms up.
    """
    from mvinverse_ros.engine.export import export_onnx
    from mvinverse_ros.engine.onnx_backend import OnnxRuntimeBackend
    from mvinverse_ros.engine.streaming import window_network_size

    expected = [[StreamingEngine(model, device=str(device), long_side=long_side).run(window).maps
                 for window in windows] for windows in window_sets]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mvinverse_onnx_") as folder:
        started = time.perf_counter()
        size = window_network_size(window_sets[0][0].frames, long_side)
        export_onnx(model.to("cpu"), folder, preset, long_side, size)
        export_s = time.perf_counter() - started
        for (windows, maps_of), provider in ((pair, p) for pair in zip(window_sets, expected) for p in providers):
            for fp16 in ((False, True) if provider == GPU_PROVIDERS[0] else (False,)):
                chain = list(dict.fromkeys([provider, "CPUExecutionProvider"]))
                backend = OnnxRuntimeBackend(folder, chain, preset, long_side, trt_fp16=fp16,
                                             trt_cache_dir=str(Path(folder) / "trt"))
                engine = StreamingEngine(None, long_side=long_side, backend=backend)
                engine.run(windows[0])  # builds TensorRT engines / warms up
                times, worst = [], 0.0
                for window, maps in zip(windows[1:], maps_of[1:]):
                    result, elapsed = timed_ms(torch.device("cpu"), lambda: engine.run(window))
                    times.append(elapsed)
                    worst = max(worst, max_abs_diff(result.maps, maps))
                rows.append({"provider": provider + (" fp16" if fp16 else ""), "window": len(windows[0].frames),
                             "stream_ms_per_frame": round(sorted(times)[len(times) // 2], 1),
                             "max_abs_diff_vs_torch_fp32": worst, "export_s": round(export_s, 1)})
    model.to(device)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--long-side", type=int, default=518, help="official preset input long side")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8], help="window sizes")
    parser.add_argument("--windows", type=int, default=3, help="timed windows per row")
    parser.add_argument("--quick", action="store_true", help="smoke run: small preset at 126 px, window 4, 2 windows")
    parser.add_argument("--ort-providers", nargs="+", default=list(GPU_PROVIDERS),
                        help="ONNX Runtime providers to time, those installed (CPUExecutionProvider to try it here)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    preset, long_side = "official", args.long_side
    if args.quick:
        preset, long_side, args.sizes, args.windows = "small", 126, [4], 2
    frames = kitchen_frames(args.shared)
    started = time.perf_counter()
    if preset == "official":
        model, weights = official_model(args.shared)
    else:
        torch.manual_seed(0)
        model, weights = build_model(preset).eval(), "seeded random"
    print(f"# {preset} ({weights}) ready in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    # 1 + 2: parity and reduced precision on one window (CPU reference first, then the model moves to the device).
    window = full_windows(frames, args.sizes[0], 1)[0]
    cpu_reference = full_recompute(model.to("cpu"), window, long_side)
    device_fp32 = full_recompute(model.to(device), window, long_side, device=str(device))
    precision = {"parity_fp32_vs_cpu": max_abs_diff(device_fp32, cpu_reference)}
    fp32_stream = StreamingEngine(model, device=str(device), long_side=long_side).run(window).maps
    for dtype in ("bf16", "fp16"):
        maps = StreamingEngine(model, device=str(device), dtype=dtype, long_side=long_side).run(window).maps
        precision[f"{dtype}_max_abs_diff"] = max_abs_diff(maps, fp32_stream)
    print(f"# precision {precision}", file=sys.stderr, flush=True)

    # 3: latency and memory, full vs streaming.
    rows = [compare(model, preset, frames, size, long_side, args.windows, device, "fp32") for size in args.sizes]

    # 4: ONNX Runtime GPU providers, when installed.
    ort_rows, providers = [], []
    try:
        import onnxruntime
        providers = [p for p in args.ort_providers if p in onnxruntime.get_available_providers()]
    except ImportError:
        pass
    if providers:
        ort_rows = onnx_rows(model, preset, [full_windows(frames, size, args.windows + 1) for size in args.sizes],
                             long_side, device, providers)

    print(f"{device_name(device)}; {preset} ({weights}); ms per published frame (median of {args.windows} windows)")
    print(f"parity fp32 {device.type} vs cpu: {precision['parity_fp32_vs_cpu']:.1e}; "
          f"bf16: {precision['bf16_max_abs_diff']:.1e}; fp16: {precision['fp16_max_abs_diff']:.1e} (max abs vs fp32)")
    print(f"{'engine':28}{'win':>4}{'net HxW':>10}{'full ms':>10}{'stream ms':>11}{'peak +MiB':>11}{'max|diff|':>11}")
    for r in rows:
        hw = "x".join(map(str, r["network_hw"]))
        print(f"{'torch ' + device.type:28}{r['window']:>4}{hw:>10}{r['full_ms_per_frame']:>10.0f}"
              f"{r['stream_ms_per_frame']:>11.0f}{r['stream_work_mib']:>11}{r['max_abs_diff']:>11.1e}")
    for r in ort_rows:
        print(f"{'ort ' + r['provider']:28}{r['window']:>4}{'':>10}{'':>10}{r['stream_ms_per_frame']:>11.0f}"
              f"{'':>11}{r['max_abs_diff_vs_torch_fp32']:>11.1e}")
    if not providers:
        print(f"onnxruntime providers {', '.join(args.ort_providers)} not installed: ONNX Runtime rows skipped")
    print(json.dumps({"device": device_name(device), "preset": preset, "weights": weights, "long_side": long_side,
                      **precision, "rows": rows, "onnxruntime": ort_rows, "ort_providers": providers}))


if __name__ == "__main__":
    main()
