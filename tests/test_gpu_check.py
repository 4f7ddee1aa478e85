"""benchmarks/gpu_check.py runs end to end on the CPU at a reduced size (the GPU run is the same code path)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_gpu_check_quick_cpu_run_reports_its_json_line(shared):
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    run = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick", "--shared", str(shared),
                          "--ort-providers", "TensorrtExecutionProvider"],
                         capture_output=True, text=True, timeout=600, check=True)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["preset"] == "small" and summary["long_side"] == 126
    assert summary["parity_fp32_vs_cpu"] == 0.0  # the CPU against itself: the same kernels
    assert 0 < summary["fp16_max_abs_diff"] < 0.05 and 0 < summary["bf16_max_abs_diff"] < 0.05
    (row,) = summary["rows"]
    assert row["window"] == 4 and row["full_ms_per_frame"] > 0 and row["stream_ms_per_frame"] > 0
    assert row["max_abs_diff"] <= 1e-5
    assert summary["onnxruntime"] == [] and "TensorrtExecutionProvider not installed" in run.stdout
