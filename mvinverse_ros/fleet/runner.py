"""The Ray side of a fleet run: worker actors, the driver's scheduling loop, retries and the report.

The driver keeps one queue of bags and hands the next one to whichever worker is idle. A bag that
cannot be read fails alone (the worker catches it and reports the reason). A worker process that
dies (out of memory, a crash, a killed node) is replaced by a fresh actor, which Ray may place on
any node, and its bag goes back into the queue, at most `retries` times per bag, for the next idle
worker. The driver replaces workers itself rather than through Ray's `max_restarts`: calls to an
actor that Ray is restarting fail at once (ActorUnavailableError), while calls to a new actor wait
until its model is loaded. Ray's own task retries stay off (`max_task_retries=0`) so that every
attempt is counted in the report.

Ray adds 15 to its worker processes' niceness (`worker_niceness`), so that its own daemons win the
CPU on a busy node. A worker here is a long CPU-bound job, and at nice +15 it gets about 3% of a
core that any normal process also wants (on a 2-core machine with one other busy process, one of
its two torch threads gets next to no CPU and every parallel region waits for that thread). A local
Ray started here therefore runs its workers at the driver's own priority: `nice mvinverse-ros
fleet process` still lowers all of them together. A cluster sets it at `ray start`
(`RAY_worker_niceness=0 ray start ...`, see the README).
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mvinverse_ros.fleet.jobs import (Job, Outputs, PartialOutputs, clear_partial, complete_record, params_sha256,
                                      write_json)

REPORT_NAME = "report.json"
# Test hook: the first attempt at the input of this name ends its worker process abruptly, after the
# output is written and before it is committed (the worst moment), as a crash or a killed node would.
CRASH_HOOK_ENV = "MVINVERSE_FLEET_CRASH_ONCE"


class BagWorker:
    """Holds one loaded model and processes bags with `bag process`'s BagProcessor (a Ray actor).

    Args:
        flat_params: `section.field` -> value of the full parameter set.
        digests: params and checkpoint digests stored in each output's stamp.
        threads: torch threads of this worker.
    """

    def __init__(self, flat_params: dict[str, Any], digests: dict[str, str], threads: int) -> None:
        import torch

        from mvinverse_ros.bag.process import BagProcessor
        from mvinverse_ros.params import build_params
        from mvinverse_ros.pipeline import engine_from_params

        torch.set_num_threads(threads)
        params = build_params(flat_params)
        engine, _ = engine_from_params(params.model)
        self.processor = BagProcessor(params, engine)
        self.digests = digests

    def process(self, job: Job, out_dir: Path, attempt: int) -> dict[str, Any]:
        """Process one bag into OUT_DIR; a record for the report (status done or failed, never raises)."""
        started, cpu_started = time.perf_counter(), time.process_time()
        partial = PartialOutputs(out_dir, job.name)
        record: dict[str, Any] = {"input": str(job.input_path), "outputs": partial.final.as_dict(),
                                  "worker_pid": os.getpid()}
        try:
            summary = self.processor.run(job.input_path, partial.work.bag, partial.work.ply, partial.work.sheet,
                                         progress=False)
        except Exception as err:  # any failure of one bag (corrupt, unreadable, unwritable) must not stop the fleet
            partial.discard()
            return {**record, "status": "failed", "error": f"{type(err).__name__}: {err}",
                    "seconds": time.perf_counter() - started}
        record.update(frames=summary.frames, windows=summary.windows, published=summary.published,
                      skips=dict(summary.skips), bag_seconds=summary.bag_seconds, written=summary.written,
                      seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started)
        if summary.interrupted:
            partial.discard()
            return {**record, "status": "interrupted"}
        if attempt == 0 and os.environ.get(CRASH_HOOK_ENV) == job.name:
            os._exit(70)
        partial.commit({**self.digests, "record": {**record, "status": "done"}})
        return {**record, "status": "done"}


@dataclass
class FleetReport:
    """Per-input records (input path -> record) and the totals of one run."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    workers: int = 0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.records.values() if r["status"] == status)

    def processed_frames(self) -> int:
        return sum(r.get("frames", 0) for r in self.records.values() if r["status"] == "done")

    def processed_bag_seconds(self) -> float:
        return sum(r.get("bag_seconds", 0.0) for r in self.records.values() if r["status"] == "done")

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.records, "wall_seconds": self.wall_seconds, "workers": self.workers,
                "interrupted": self.interrupted,
                "totals": {s: self.count(s) for s in ("done", "failed", "skipped", "interrupted")}}

    def lines(self) -> list[str]:
        rate = self.processed_frames() / self.wall_seconds if self.wall_seconds > 0 else 0.0
        lines = [f"{'INTERRUPTED: ' if self.interrupted else ''}{len(self.records)} inputs: "
                 f"{self.count('done')} done, {self.count('failed')} failed, {self.count('skipped')} skipped"
                 + (f", {self.count('interrupted')} interrupted" if self.count("interrupted") else ""),
                 f"{self.processed_frames()} frames ({self.processed_bag_seconds():.1f} s of bags) in "
                 f"{self.wall_seconds:.1f} s with {self.workers} workers: {rate:.2f} frames/s"]
        lines += [f"failed: {path}: {r['error']}" for path, r in self.records.items() if r["status"] == "failed"]
        return lines


@dataclass(frozen=True)
class FleetOptions:
    """How to run: which cluster, how many workers and what each one gets.

    Attributes:
        address: None = start a local Ray on this machine; "auto" or "ray://HOST:PORT" = join a cluster.
        workers: number of worker actors; 0 = as many as the cluster's CPUs allow.
        cpus_per_worker: CPUs (and torch threads) per worker.
        gpus_per_worker: GPUs per worker (fractions share a GPU).
        retries: how often a bag whose worker died is tried again; up to `retries` x workers replacements.
    """

    address: str | None = None
    workers: int = 0
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    retries: int = 2


def start_ray(options: FleetOptions) -> bool:
    """Connect to (or start) Ray unless this process already did; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if options.address is None:
        cpus = max(os.cpu_count() or 1, options.workers * options.cpus_per_worker)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _system_config={"worker_niceness": 0})
    else:
        ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    return True


def _worker_count(options: FleetOptions, jobs: int) -> int:
    import ray

    if options.workers:
        return min(options.workers, max(jobs, 1))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(jobs, cpus // options.cpus_per_worker))


def _start_workers(count: int, flat_params: dict[str, Any], digests: dict[str, str], options: FleetOptions) -> list:
    import ray

    env = {CRASH_HOOK_ENV: os.environ[CRASH_HOOK_ENV]} if CRASH_HOOK_ENV in os.environ else {}
    actor = ray.remote(BagWorker).options(
        num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker, max_restarts=0, max_task_retries=0,
        runtime_env={"env_vars": env} if env else None,
    )
    return [actor.remote(flat_params, digests, options.cpus_per_worker) for _ in range(count)]


def run_fleet(jobs: list[Job], out_dir: Path, flat_params: dict[str, Any], checkpoint_digest: str,
              options: FleetOptions, on_progress: Callable[[FleetReport, int], None] | None = None) -> FleetReport:
    """Process every job not already complete in `out_dir` on Ray workers; writes OUT_DIR/report.json.

    Args:
        jobs: the inputs (see fleet.jobs.find_jobs).
        out_dir: the output folder (created if missing).
        flat_params: the full parameter set, `section.field` -> value.
        checkpoint_digest: SHA-256 of the weights (fleet.jobs.checkpoint_sha256).
        options: cluster and worker settings.
        on_progress: called with the report so far and the number of bags running, after each change.

    Returns:
        The report; Ctrl-C stops the workers, marks unfinished inputs `interrupted` and still returns it.
    """
    import ray
    from ray.exceptions import RayActorError

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_partial(out_dir)
    digests = {"params_sha256": params_sha256(flat_params), "checkpoint_sha256": checkpoint_digest}
    report = FleetReport()
    queue: deque[tuple[Job, int]] = deque()
    for job in jobs:
        stored = complete_record(Outputs.of(out_dir, job.name), digests)
        if stored is None:
            queue.append((job, 0))
            report.records[str(job.input_path)] = {"input": str(job.input_path), "status": "pending"}
        else:
            report.records[str(job.input_path)] = {**stored, "status": "skipped", "seconds": 0.0}

    def save() -> None:
        report.wall_seconds = time.perf_counter() - started
        write_json(out_dir / REPORT_NAME, report.as_dict())

    if not queue:
        save()
        return report
    started_ray = start_ray(options)
    running: dict[Any, tuple[Job, int, Any]] = {}
    workers: list = []
    try:
        workers = _start_workers(_worker_count(options, len(queue)), flat_params, digests, options)
        idle = list(workers)
        report.workers = len(workers)
        replacements = options.retries * len(workers)
        while queue or running:
            while queue and idle:
                job, attempt = queue.popleft()
                worker = idle.pop()
                running[worker.process.remote(job, out_dir, attempt)] = (job, attempt, worker)
                report.records[str(job.input_path)]["status"] = "running"
            if not running:  # every worker is gone for good
                for job, _ in queue:
                    report.records[str(job.input_path)].update(status="failed", error="no worker left alive")
                break
            (ref,), _ = ray.wait(list(running), num_returns=1)
            job, attempt, worker = running.pop(ref)
            try:
                report.records[str(job.input_path)] = {**ray.get(ref), "attempts": attempt + 1}
                idle.append(worker)
            except RayActorError as err:
                ray.kill(worker, no_restart=True)
                if replacements > 0:
                    replacements -= 1
                    idle += _start_workers(1, flat_params, digests, options)
                    workers += idle[-1:]
                if attempt < options.retries:
                    queue.append((job, attempt + 1))
                    report.records[str(job.input_path)]["status"] = "pending"
                else:
                    report.records[str(job.input_path)].update(
                        status="failed", error=f"its worker died {attempt + 1} times; last: {err}".splitlines()[0])
            save()
            if on_progress:
                on_progress(report, len(running))
    except KeyboardInterrupt:
        report.interrupted = True
        for record in report.records.values():
            if record["status"] in ("pending", "running"):
                record["status"] = "interrupted"
    finally:
        for worker in workers:
            ray.kill(worker, no_restart=True)
        if started_ray:
            ray.shutdown()
    clear_partial(out_dir)  # every attempt has ended: committed, discarded, or cut off by a dead worker
    save()
    return report


def print_progress(report: FleetReport, running: int) -> None:
    """One line on stderr: bags done / failed / running and the frame rate so far."""
    rate = report.processed_frames() / report.wall_seconds if report.wall_seconds > 0 else 0.0
    print(f"fleet: {report.count('done')} done, {report.count('failed')} failed, {running} running, "
          f"{report.count('pending') + running} left of {len(report.records) - report.count('skipped')}, "
          f"{rate:.2f} frames/s", file=sys.stderr, flush=True)
