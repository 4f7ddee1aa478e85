"""`mvinverse-ros fleet process`: many bags through `bag process` on a local Ray or a Ray cluster."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mvinverse_ros.cli.common import EXIT_CODES, MODEL_FLAGS, add_params_arguments, params_from_args, report_error
from mvinverse_ros.resources import share_file

FLEET_PARAMS = "config/fleet.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `fleet process`."""
    fleet = subparsers.add_parser("fleet", help="process many bags on Ray workers", epilog=EXIT_CODES)
    commands = fleet.add_subparsers(dest="fleet_command", required=True)
    process = commands.add_parser(
        "process", help="run `bag process` over many bags on Ray workers, resumably",
        description="Processes every INPUT (rosbag2 directory, .mcap file, or a folder searched for them) into "
                    "OUT_DIR/<name> (+ .ply, .png and a .fleet.json stamp) exactly as `bag process` would, one bag "
                    "per task on Ray worker actors that load the model once. Writes OUT_DIR/report.json. A rerun "
                    f"skips outputs complete for the same parameters and checkpoint. Parameters: {FLEET_PARAMS} "
                    "(non-overlapping windows, every frame published) unless --params-file is given.",
        epilog=EXIT_CODES,
    )
    process.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="bags, .mcap files or folders")
    process.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output folder (created if missing)")
    process.add_argument("--address", help="Ray cluster to join: 'auto' or ray://HOST:PORT (default: a local Ray)")
    process.add_argument("--workers", type=_at_least(1), default=0,
                         help="worker actors (default: as many as the CPUs allow at --cpus-per-worker)")
    process.add_argument("--cpus-per-worker", type=_at_least(1), default=1, help="CPUs and torch threads per worker")
    process.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (0.5 = two share one)")
    process.add_argument("--retries", type=_at_least(0), default=2,
                         help="times a bag whose worker process died is tried again (default 2)")
    add_params_arguments(process, MODEL_FLAGS)
    process.set_defaults(func=run_process)


def _at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def run_process(args: argparse.Namespace) -> int:
    if args.params_file is None:
        args.params_file = share_file(FLEET_PARAMS)
    params = params_from_args(args)
    from mvinverse_ros.fleet.jobs import FleetError, checkpoint_sha256, find_jobs
    from mvinverse_ros.fleet.runner import FleetOptions, print_progress, run_fleet
    from mvinverse_ros.params import to_flat

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        jobs = find_jobs(args.inputs)
    except FleetError as err:
        report_error(err)
        return 1
    if args.out_dir.resolve() in [job.input_path for job in jobs] or args.out_dir.is_file():
        report_error(f"OUT_DIR {args.out_dir} is an input or a file")
        return 2
    options = FleetOptions(address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                           gpus_per_worker=args.gpus_per_worker, retries=args.retries)
    report = run_fleet(jobs, args.out_dir, to_flat(params), checkpoint_sha256(params.model), options, print_progress)
    for line in report.lines():
        print(line)
    print(f"report: {args.out_dir / 'report.json'}")
    if report.interrupted:
        return 130
    return 1 if report.count("failed") else 0
