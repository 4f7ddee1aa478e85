"""`fleet process` on a local Ray with two workers: equal to serial `bag process`, failures alone, resume, crashes.

Three bags of 4 real 7-Scenes frames each and one truncated (corrupt) bag; the bundled weights at
their native 112 px and the fleet preset's non-overlapping windows (of 2), so a bag is two windows.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mvinverse_ros.bag.compare import bag_differences
from mvinverse_ros.bag.importer import import_rgbd
from mvinverse_ros.bag.process import BagProcessor
from mvinverse_ros.cli import main
from mvinverse_ros.fleet.jobs import (PARTIAL_DIR, Outputs, checkpoint_sha256, complete_record, find_jobs,
                                      params_sha256)
from mvinverse_ros.fleet.runner import CRASH_HOOK_ENV, REPORT_NAME, FleetOptions, run_fleet
from mvinverse_ros.params import load_params, to_flat
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.resources import share_file

ray = pytest.importorskip("ray")

FRAMES = 4
GOOD = ("kitchen_a", "kitchen_b", "kitchen_c")
FAST = {"model.device": "cpu", "window.size": "2", "window.stride": "2", "window.min_translation": "0",
        "window.min_rotation_deg": "0", "window.min_interval": "0", "fusion.pixel_stride": "8"}


def frames_folder(sevenscenes_dir: Path, folder: Path, start: int) -> Path:
    """A 7-Scenes folder of FRAMES frames of the shared sequence from `start` on (symlinks)."""
    folder.mkdir()
    (folder / "camera-intrinsics.txt").symlink_to(sevenscenes_dir / "camera-intrinsics.txt")
    for color in sorted(sevenscenes_dir.glob("frame-*.color.jpg"))[start:start + FRAMES]:
        stem = color.name.split(".")[0]
        for suffix in ("color.jpg", "depth.png", "pose.txt"):
            (folder / f"{stem}.{suffix}").symlink_to(sevenscenes_dir / f"{stem}.{suffix}")
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="module")
def inputs(sevenscenes_dir: Path, work: Path) -> Path:
    """A folder of three good bags and one .mcap file cut in half."""
    folder = work / "inputs"
    for index, name in enumerate(GOOD):
        import_rgbd(frames_folder(sevenscenes_dir, work / f"seq_{name}", index * 30), folder / name, fps=10.0)
    mcap = next((folder / GOOD[0]).glob("*.mcap"))
    (folder / "corrupt.mcap").write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    return folder


@pytest.fixture(scope="module")
def params():
    return load_params(share_file("config/fleet.yaml"), FAST)


@pytest.fixture(scope="module")
def serial(inputs: Path, params, work: Path) -> dict[str, Path]:
    """`bag process` of each good bag, one after the other, on one torch thread like a fleet worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    engine, _ = engine_from_params(params.model)
    outputs = {name: work / "serial" / name for name in GOOD}
    for name, out in outputs.items():
        BagProcessor(params, engine).run(inputs / name, out, progress=False)
    torch.set_num_threads(before)
    return outputs


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def fleet(inputs: Path, params, out: Path):
    return run_fleet(find_jobs([inputs]), out, to_flat(params), checkpoint_sha256(params.model),
                     FleetOptions(workers=2))


def read_report(out: Path) -> dict[str, dict]:
    return {Path(path).name: record for path, record in json.loads((out / REPORT_NAME).read_text())["inputs"].items()}


@pytest.fixture(scope="module")
def first_run(inputs, params, work, local_ray):
    """The fleet over all four inputs; the worker that takes the second good bag first dies before committing it."""
    out = work / "fleet"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CRASH_HOOK_ENV, GOOD[1])
        fleet(inputs, params, out)
    return out


def test_fleet_equals_serial_and_corrupt_bag_fails_alone(first_run, serial):
    report = read_report(first_run)
    expected = {**dict.fromkeys(GOOD, "done"), "corrupt.mcap": "failed"}
    assert {name: r["status"] for name, r in report.items()} == expected
    assert "corrupt.mcap" in report["corrupt.mcap"]["error"]
    for name in GOOD:
        record = report[name]
        assert (record["frames"], record["windows"], record["published"]) == (FRAMES, 2, FRAMES)
        assert bag_differences(serial[name], record["outputs"]["bag"]) == []
        assert Path(record["outputs"]["ply"]).is_file() and Path(record["outputs"]["sheet"]).is_file()
    files = {f"{name}{suffix}" for name in GOOD for suffix in (".ply", ".png", ".fleet.json")}
    assert {p.name for p in first_run.iterdir()} == {REPORT_NAME, *GOOD, *files}


def test_rerun_skips_complete_outputs_and_not_changed_parameters(first_run, inputs, params, work):
    copy = work / "rerun"
    shutil.copytree(first_run, copy, symlinks=True)
    before = {name: Outputs.of(copy, name).stamp.stat().st_mtime_ns for name in GOOD}
    report = fleet(inputs, params, copy)
    assert {Path(p).name: r["status"] for p, r in report.records.items()} == {**dict.fromkeys(GOOD, "skipped"),
                                                                              "corrupt.mcap": "failed"}
    assert {name: Outputs.of(copy, name).stamp.stat().st_mtime_ns for name in GOOD} == before
    assert read_report(copy)[GOOD[0]]["frames"] == FRAMES

    digests = {"params_sha256": params_sha256(to_flat(params)), "checkpoint_sha256": checkpoint_sha256(params.model)}
    assert complete_record(Outputs.of(copy, GOOD[0]), digests)["status"] == "done"
    changed = load_params(share_file("config/fleet.yaml"), {**FAST, "fusion.pixel_stride": "4"})
    assert complete_record(Outputs.of(copy, GOOD[0]), {**digests, "params_sha256": params_sha256(to_flat(changed))}) \
        is None
    assert complete_record(Outputs.of(copy, GOOD[0]), {**digests, "checkpoint_sha256": "0" * 64}) is None


def test_dead_worker_has_its_bag_retried_and_leaves_nothing_half_written(first_run):
    report = read_report(first_run)
    assert [report[name]["attempts"] for name in GOOD] == [1, 2, 1]
    assert report[GOOD[1]]["status"] == "done"
    assert not (first_run / PARTIAL_DIR).exists()


def test_cli_reports_bad_input_and_resumes(first_run, inputs, work, capsys):
    assert main(["fleet", "process", str(work / "missing"), str(work / "cli")]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["fleet", "process", str(inputs / "corrupt.mcap"), str(work / "cli"), "--set", "window.size=x"]) == 2
    copy = work / "cli"
    shutil.copytree(first_run, copy, symlinks=True)
    flags = [f"--set={k}={v}" for k, v in FAST.items()]
    assert main(["fleet", "process", *(str(inputs / n) for n in GOOD), str(copy), "--workers", "1", *flags]) == 0
    assert {r["status"] for r in read_report(copy).values()} == {"skipped"}
