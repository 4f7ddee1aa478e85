"""The `mvinverse-ros` process as a user meets it: exit codes and one-line errors, parameters through the schema.

Each command runs as a real subprocess (`python -m mvinverse_ros.cli`); parameter errors come
before any input is opened or any model is loaded, so these runs take well under a second.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvinverse_ros.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def error_line(done: subprocess.CompletedProcess, code: int) -> str:
    """The one stderr line of a failed run, after checking its exit code and that nothing else was said."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    ["bag", "process", "IN", "OUT"],
    ["infer", "DIR", "--out", "OUT"],
    ["eval"],
    ["finetune", "SRC", "--out", "OUT"],
])
def test_a_value_outside_its_range_is_exit_2_with_one_line(command, tmp_path):
    args = [str(tmp_path / a) if a.isupper() else a for a in command]
    line = error_line(run_cli(*args, "--set", "window.size=20"), 2)
    assert line == "error: window.size=20 (--set) is not allowed: expected 2..16"
    assert not (tmp_path / "OUT").exists()


def test_an_alias_flag_is_named_as_the_source(tmp_path):
    line = error_line(run_cli("infer", tmp_path, "--out", tmp_path / "out", "--window", "20"), 2)
    assert line == "error: window.size=20 (--window) is not allowed: expected 2..16"
    line = error_line(run_cli("infer", tmp_path, "--out", tmp_path / "out", "--dtype", "fp64"), 2)
    assert "model.dtype='fp64' (--dtype)" in line and "one of fp32, bf16, fp16" in line
    # the flag wins over --set and names itself
    line = error_line(run_cli("infer", tmp_path, "--out", tmp_path / "out", "--set", "window.size=3",
                              "--window", "1"), 2)
    assert "window.size=1 (--window)" in line


def test_a_params_file_value_names_the_file_and_reaches_every_command(tmp_path):
    params_file = tmp_path / "robot.yaml"
    params_file.write_text(yaml.safe_dump({"/robot/mvinverse": {"ros__parameters": {"model": {"preset": "huge"}}}}))
    out = tmp_path / "out"
    for command in (["infer", tmp_path, "--out", out], ["eval"], ["finetune", tmp_path, "--out", out],
                    ["bag", "process", tmp_path / "in", out]):
        line = error_line(run_cli(*command, "--params-file", params_file), 2)
        assert f"model.preset='huge' ({params_file})" in line


def test_values_inside_the_range_pass_the_schema(tmp_path):
    # accepted: the run goes on to the (empty) input folder, which is unusable input: exit 1
    line = error_line(run_cli("infer", tmp_path, "--out", tmp_path / "out", "--set", "fusion.voxel_size=1e-3"), 1)
    assert "no images" in line
    line = error_line(run_cli("infer", tmp_path, "--out", tmp_path / "out", "--set", "fusion.voxel_size=1e-4"), 2)
    assert "fusion.voxel_size=0.0001 (--set)" in line and "0.001..10" in line


def test_a_missing_checkpoint_is_exit_1_with_one_line(room_dir, tmp_path):
    missing = tmp_path / "missing.safetensors"
    # the model is loaded before anything is written or the bag is opened
    for command in (["infer", room_dir, "--out", tmp_path / "out"], ["bag", "process", room_dir, tmp_path / "bag_out"]):
        line = error_line(run_cli(*command, "--checkpoint", missing, "--device", "cpu"), 1)
        assert line == f"error: checkpoint {missing} does not exist"
    assert not (tmp_path / "out").exists() and not (tmp_path / "bag_out").exists()


def test_help_states_the_exit_codes():
    for command in ([], ["infer"], ["bag", "process"], ["convert"], ["train"]):
        done = run_cli(*command, "--help")
        assert done.returncode == 0
        assert "exit codes: 0 done; 1 unusable input" in " ".join(done.stdout.split())
