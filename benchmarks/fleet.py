"""Fleet throughput vs serial `bag process`, the throughput preset vs the streaming default, output bytes.

All in one run on the same bags cut from the real 7-Scenes kitchen sequence (bundled weights):

1. serial `bag process` of every bag in this process with T torch threads (model loaded once; each
   bag writes its bag, PLY and contact sheet, as the CLI and a fleet worker do), then `fleet
   process` with 1 worker x T threads and with 2 workers x T/2 threads (equal total threads), both
   on one Ray: started here (its start is timed apart) or, with --address, an already running one
   (`ray start --head`, how a fleet really runs). The Ray overhead is split honestly:
   - fixed per `fleet process` run: the worker's process start, imports and model load, and the
     scheduling (fleet wall time minus the worker's seconds on its bags), plus Ray's start when
     the fleet starts its own Ray;
   - steady state: the worker's wall and CPU seconds on its bags against serial's on the same bags
     (CPU seconds are the robust figure on a loaded machine);
   - the overhead of this run, 1 - fleet(1 worker) / serial throughput, with and without Ray's
     start, and the input seconds a run needs for that overhead to fall under 10% (from the fixed
     and per-bag costs measured here; serial keeps its one model load).
2. wall seconds and network seconds per published frame: config/fleet.yaml (non-overlapping
   windows, every frame published) vs config/perception.yaml (sliding window, newest frame).
3. output bag bytes per input second: the compact default (PNG maps, no MaterialMaps copy, zstd
   chunks) against the node's layout (float Images and MaterialMaps, uncompressed), the same bags.

    python benchmarks/fleet.py                                  # 2 bags x 30 frames, T = 2, local Ray
    python benchmarks/fleet.py --bags 2 --frames 150            # longer bags (the 100 frames, cycled)
    ray start --head --num-cpus 2 && python benchmarks/fleet.py --address auto; ray stop

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
from mvinverse_ros.fleet.runner import FleetOptions, run_fleet, start_ray  # noqa: E402
from mvinverse_ros.params import load_params, to_flat  # noqa: E402
from mvinverse_ros.pipeline import engine_from_params  # noqa: E402
from mvinverse_ros.resources import share_file  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "7scenes-redkitchen"
GOAL = 0.10


def make_bags(source: Path, work: Path, bags: int, frames: int) -> Path:
    """`bags` bags of `frames` consecutive frames each, imported at 10 fps.

    The 7-Scenes folders are symlinked; bag i starts at frame i x frames and the sequence is
    cycled when it runs out, so bags of any length and number cost the same per frame.
    """
    colors = sorted(source.glob("frame-*.color.jpg"))
    folder = work / "inputs"
    for index in range(bags):
        seq = work / f"seq{index}"
        seq.mkdir()
        (seq / "camera-intrinsics.txt").symlink_to(source / "camera-intrinsics.txt")
        for number in range(frames):
            stem = colors[(index * frames + number) % len(colors)].name.split(".")[0]
            for suffix in ("color.jpg", "depth.png", "pose.txt"):
                (seq / f"frame-{number:06d}.{suffix}").symlink_to(source / f"{stem}.{suffix}")
        import_rgbd(seq, folder / f"bag{index}", fps=10.0)
    return folder


def bag_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def serial(params, inputs: Path, out: Path, threads: int) -> dict:
    """`bag process` over every bag in turn (bag, PLY and sheet), model loaded once."""
    torch.set_num_threads(threads)
    out.mkdir()
    started = time.perf_counter()
    engine, _ = engine_from_params(params.model)
    load = time.perf_counter() - started
    bag_seconds = network = bag_wall = bag_cpu = 0.0
    published = written = 0
    for bag in sorted(inputs.iterdir()):
        wall, cpu = time.perf_counter(), time.process_time()
        summary = BagProcessor(params, engine).run(bag, out / bag.name, out / f"{bag.name}.ply",
                                                   out / f"{bag.name}.png", progress=False)
        bag_wall += time.perf_counter() - wall
        bag_cpu += time.process_time() - cpu
        bag_seconds += summary.bag_seconds
        network += summary.network_seconds
        published += summary.published
        written += bag_bytes(out / bag.name)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "model_load_s": load, "bag_wall_s": bag_wall, "bag_cpu_s": bag_cpu, "bag_s": bag_seconds,
            "input_s_per_wall_s": bag_seconds / wall, "published": published, "wall_s_per_published": wall / published,
            "network_s_per_published": network / published, "output_bytes_per_input_s": written / bag_seconds}


def fleet(params, inputs: Path, out: Path, address: str | None, workers: int, threads: int) -> dict:
    """One `fleet process` run on the Ray this process is connected to."""
    started = time.perf_counter()
    report = run_fleet(find_jobs([inputs]), out, to_flat(params), checkpoint_sha256(params.model),
                       FleetOptions(address=address, workers=workers, cpus_per_worker=threads))
    wall = time.perf_counter() - started
    assert report.count("done") == len(report.records), report.lines()
    bag_wall = sum(record["seconds"] for record in report.records.values())
    return {"wall_s": wall, "input_s_per_wall_s": report.processed_bag_seconds() / wall, "bag_wall_s": bag_wall,
            "bag_cpu_s": sum(record["cpu_seconds"] for record in report.records.values()),
            "fixed_s": wall - bag_wall / workers}


def input_seconds_for_goal(base: dict, one: dict, fixed: float, bags: int) -> float | None:
    """Input seconds per run from which 1 - fleet / serial throughput is under GOAL (None: never).

    Serial takes L + N S for N bags (one model load L, S per bag); the fleet F + N W (fixed F, W per
    bag). 1 - (L + N S) / (F + N W) < GOAL when N (S - (1 - GOAL) W) > (1 - GOAL) F - L.
    """
    per_bag, worker_per_bag = base["bag_wall_s"] / bags, one["bag_wall_s"] / bags
    margin = per_bag - (1 - GOAL) * worker_per_bag
    if margin <= 0:
        return None
    return max(0.0, ((1 - GOAL) * fixed - base["model_load_s"]) / margin) * base["bag_s"] / bags


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=2)
    parser.add_argument("--frames", type=int, default=30, help="frames per bag")
    parser.add_argument("--threads", type=int, default=2, help="total torch threads (T)")
    parser.add_argument("--address", help="a running Ray to use (e.g. auto after `ray start --head`); "
                                          "default: start a local one here, timed apart")
    args = parser.parse_args()
    fast = {"model.device": "cpu"}
    throughput = load_params(share_file("config/fleet.yaml"), fast)
    node_layout = load_params(share_file("config/fleet.yaml"), {**fast, "bag.map_encoding": "raw",
                                                                "bag.write_materials": "true",
                                                                "bag.compression": "none"})
    streaming = load_params(None, fast)
    import ray

    with tempfile.TemporaryDirectory(prefix="fleet_bench_") as tmp:
        work = Path(tmp)
        inputs = make_bags(SHARED, work, args.bags, args.frames)
        results = {"serial_throughput": serial(throughput, inputs, work / "serial_throughput", args.threads)}
        started = time.perf_counter()
        start_ray(FleetOptions(address=args.address, workers=1, cpus_per_worker=args.threads))
        ray_start = time.perf_counter() - started if args.address is None else 0.0
        try:
            results["fleet_1_worker"] = fleet(throughput, inputs, work / "fleet1", args.address, 1, args.threads)
            results["fleet_2_workers"] = fleet(throughput, inputs, work / "fleet2", args.address, 2,
                                               max(1, args.threads // 2))
        finally:
            ray.shutdown()
        results["serial_streaming"] = serial(streaming, inputs, work / "serial_streaming", args.threads)
        results["serial_node_layout"] = serial(node_layout, inputs, work / "serial_node_layout", args.threads)
    base, one = results["serial_throughput"], results["fleet_1_worker"]
    rate = base["input_s_per_wall_s"]
    results.update(
        ray_start_s=ray_start,
        ray_overhead_steady_state_wall=one["bag_wall_s"] / base["bag_wall_s"] - 1,
        ray_overhead_steady_state_cpu=one["bag_cpu_s"] / base["bag_cpu_s"] - 1,
        ray_overhead_on_running_ray=1 - one["input_s_per_wall_s"] / rate,
        ray_overhead_with_ray_start=1 - base["bag_s"] / (one["wall_s"] + ray_start) / rate,
        input_s_for_goal_on_running_ray=input_seconds_for_goal(base, one, one["fixed_s"], args.bags),
        input_s_for_goal_with_ray_start=input_seconds_for_goal(base, one, one["fixed_s"] + ray_start, args.bags),
        speedup_2_workers_vs_serial=results["fleet_2_workers"]["input_s_per_wall_s"] / rate,
        throughput_mode_cost_ratio=base["wall_s_per_published"] / results["serial_streaming"]["wall_s_per_published"],
        compact_bytes_ratio=(base["output_bytes_per_input_s"]
                             / results["serial_node_layout"]["output_bytes_per_input_s"]),
        bags=args.bags, frames=args.frames, threads=args.threads, ray="running: " + args.address if args.address
        else "started by this run")
    for name in ("serial_throughput", "serial_streaming", "serial_node_layout", "fleet_1_worker", "fleet_2_workers"):
        print(f"{name:18s} " + ", ".join(f"{k} {v:.3g}" for k, v in results[name].items()))
    print(f"Ray ({results['ray']}; start {ray_start:.1f} s). 1 worker x {args.threads} threads vs serial: "
          f"steady state {results['ray_overhead_steady_state_wall']:+.1%} wall, "
          f"{results['ray_overhead_steady_state_cpu']:+.1%} CPU per bag; fixed {one['fixed_s']:.1f} s per run "
          f"(worker start, model load, scheduling); this run's overhead "
          f"{results['ray_overhead_on_running_ray']:.1%} on a running Ray, "
          f"{results['ray_overhead_with_ray_start']:.1%} with Ray's start; under {GOAL:.0%} from "
          f"{seconds(results['input_s_for_goal_on_running_ray'])} / "
          f"{seconds(results['input_s_for_goal_with_ray_start'])} of input per run. "
          f"2 workers: {results['speedup_2_workers_vs_serial']:.2f}x serial; throughput mode costs "
          f"{results['throughput_mode_cost_ratio']:.2f}x the streaming default per published frame; "
          f"compact bags are {results['compact_bytes_ratio']:.3f} of the node layout's bytes")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
