"""Fleet throughput vs serial `bag process`, the throughput preset vs the streaming default, output bytes.

All in one run on the same bags cut from the real 7-Scenes kitchen sequence (bundled weights):

1. serial `bag process` of every bag in this process with T torch threads, then `fleet process`
   with 1 worker x T threads and with 2 workers x T/2 threads (equal total threads): input seconds
   per wall second, and the Ray overhead = 1 - fleet(1 worker) / serial (the cost of starting Ray,
   the actor and its model load, and the scheduling; goal under 10 %), split into the fixed cost per
   run and the steady state (the worker's own seconds per bag against serial). Both use config/fleet.yaml.
2. wall seconds and network seconds per published frame: config/fleet.yaml (non-overlapping
   windows, every frame published) vs config/perception.yaml (sliding window, newest frame).
3. output bag bytes per input second: the compact default (PNG maps, no MaterialMaps copy, zstd
   chunks) against the node's layout (float Images and MaterialMaps, uncompressed), the same bags.

    python benchmarks/fleet.py                       # 2 bags x 30 frames, T = 2
    python benchmarks/fleet.py --bags 4 --frames 50 --threads 8

Prints a table, then as its LAST line one JSON object with every number.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mvinverse_ros.bag.importer import import_rgbd  # noqa: E402
from mvinverse_ros.bag.process import BagProcessor  # noqa: E402
from mvinverse_ros.fleet.jobs import checkpoint_sha256, find_jobs  # noqa: E402
from mvinverse_ros.fleet.runner import FleetOptions, run_fleet  # noqa: E402
from mvinverse_ros.params import load_params, to_flat  # noqa: E402
from mvinverse_ros.pipeline import engine_from_params  # noqa: E402
from mvinverse_ros.resources import share_file  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "7scenes-redkitchen"


def make_bags(source: Path, work: Path, bags: int, frames: int) -> Path:
    """`bags` bags of `frames` consecutive frames each (symlinked 7-Scenes folders, imported at 10 fps)."""
    colors = sorted(source.glob("frame-*.color.jpg"))
    folder = work / "inputs"
    for index in range(bags):
        seq = work / f"seq{index}"
        seq.mkdir()
        (seq / "camera-intrinsics.txt").symlink_to(source / "camera-intrinsics.txt")
        for color in colors[index * frames:(index + 1) * frames]:
            stem = color.name.split(".")[0]
            for suffix in ("color.jpg", "depth.png", "pose.txt"):
                (seq / f"{stem}.{suffix}").symlink_to(source / f"{stem}.{suffix}")
        import_rgbd(seq, folder / f"bag{index}", fps=10.0)
    return folder


def bag_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def serial(params, inputs: Path, out: Path, threads: int) -> dict:
    """`bag process` over every bag in turn, model loaded once, like the CLI would per bag."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    engine, _ = engine_from_params(params.model)
    bag_seconds = network = 0.0
    published = written = 0
    for bag in sorted(inputs.iterdir()):
        summary = BagProcessor(params, engine).run(bag, out / bag.name, progress=False)
        bag_seconds += summary.bag_seconds
        network += summary.network_seconds
        published += summary.published
        written += bag_bytes(out / bag.name)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "bag_s": bag_seconds, "input_s_per_wall_s": bag_seconds / wall, "published": published,
            "wall_s_per_published": wall / published, "network_s_per_published": network / published,
            "output_bytes_per_input_s": written / bag_seconds}


def fleet(params, inputs: Path, out: Path, workers: int, threads: int) -> dict:
    started = time.perf_counter()
    report = run_fleet(find_jobs([inputs]), out, to_flat(params), checkpoint_sha256(params.model),
                       FleetOptions(workers=workers, cpus_per_worker=threads))
    wall = time.perf_counter() - started
    assert report.count("done") == len(report.records), report.lines()
    in_workers = sum(record["seconds"] for record in report.records.values())
    return {"wall_s": wall, "input_s_per_wall_s": report.processed_bag_seconds() / wall,
            "bag_s_in_workers": in_workers, "ray_fixed_s": wall - in_workers / workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=2)
    parser.add_argument("--frames", type=int, default=30, help="frames per bag")
    parser.add_argument("--threads", type=int, default=2, help="total torch threads (T)")
    args = parser.parse_args()
    fast = {"model.device": "cpu"}
    throughput = load_params(share_file("config/fleet.yaml"), fast)
    node_layout = load_params(share_file("config/fleet.yaml"), {**fast, "bag.map_encoding": "raw",
                                                                "bag.write_materials": "true",
                                                                "bag.compression": "none"})
    streaming = load_params(None, fast)
    with tempfile.TemporaryDirectory(prefix="fleet_bench_") as tmp:
        work = Path(tmp)
        inputs = make_bags(SHARED, work, args.bags, args.frames)
        results = {
            "serial_throughput": serial(throughput, inputs, work / "serial_throughput", args.threads),
            "serial_streaming": serial(streaming, inputs, work / "serial_streaming", args.threads),
            "serial_node_layout": serial(node_layout, inputs, work / "serial_node_layout", args.threads),
            "fleet_1_worker": fleet(throughput, inputs, work / "fleet1", 1, args.threads),
            "fleet_2_workers": fleet(throughput, inputs, work / "fleet2", 2, max(1, args.threads // 2)),
        }
    base = results["serial_throughput"]
    results["ray_overhead_1_worker"] = 1 - results["fleet_1_worker"]["input_s_per_wall_s"] / base["input_s_per_wall_s"]
    # Steady state: the worker's own time per bag against serial; the rest is Ray's start and the model load.
    results["ray_overhead_steady_state"] = results["fleet_1_worker"]["bag_s_in_workers"] / base["wall_s"] - 1
    two = results["fleet_2_workers"]["input_s_per_wall_s"]
    results["speedup_2_workers_vs_serial"] = two / base["input_s_per_wall_s"]
    results["throughput_mode_cost_ratio"] = (base["wall_s_per_published"]
                                             / results["serial_streaming"]["wall_s_per_published"])
    results["compact_bytes_ratio"] = (base["output_bytes_per_input_s"]
                                      / results["serial_node_layout"]["output_bytes_per_input_s"])
    results.update(bags=args.bags, frames=args.frames, threads=args.threads)
    for name in ("serial_throughput", "serial_streaming", "serial_node_layout", "fleet_1_worker", "fleet_2_workers"):
        print(f"{name:18s} " + ", ".join(f"{k} {v:.3g}" for k, v in results[name].items()))
    print(f"Ray overhead (1 worker x {args.threads} threads vs serial): {results['ray_overhead_1_worker']:.1%} "
          f"({results['fleet_1_worker']['ray_fixed_s']:.1f} s of it fixed per run: Ray's start and the model load; "
          f"steady state {results['ray_overhead_steady_state']:.1%}); "
          f"2 workers: {results['speedup_2_workers_vs_serial']:.2f}x serial; throughput mode costs "
          f"{results['throughput_mode_cost_ratio']:.2f}x the streaming default per published frame; compact bags "
          f"are {results['compact_bytes_ratio']:.3f} of the node layout's bytes")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
