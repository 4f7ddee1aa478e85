"""Shared test fixtures: where the real data lives (../shared beside the checkout, as in CI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """../shared beside the checkout, or $MVINVERSE_SHARED."""
    return Path(os.environ.get("MVINVERSE_SHARED", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.fail(f"shared data not found at {path}; set MVINVERSE_SHARED")
    return path


@pytest.fixture(scope="session")
def parity_dir(shared: Path) -> Path:
    return shared / "parity"


@pytest.fixture(scope="session")
def sevenscenes_dir(shared: Path) -> Path:
    return shared / "data" / "7scenes-redkitchen"


@pytest.fixture(scope="session")
def room_dir(shared: Path) -> Path:
    return shared / "data" / "mipnerf360-room"


@pytest.fixture
def one_torch_thread():
    """Run on one torch thread.

    Small models on a CPU shared with other jobs run far faster without OpenMP
    oversubscription (measured ~10x on the 2-core development machines).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_JIT_PROBE = ("from mvinverse_ros.datasets.synthetic import RenderSettings, render_scene; "
              "render_scene(0, 0, 2, RenderSettings(28, 21, spp=1, aov_spp=1))")


@pytest.fixture(scope="session")
def mitsuba_jit() -> None:
    """Fail with the reason, in this process, when Mitsuba's LLVM JIT cannot render here.

    A JIT on an unsuitable libLLVM aborts the whole interpreter, so the probe renders one tiny
    scene in a child process first.
    """
    pytest.importorskip("mitsuba")
    probe = subprocess.run([sys.executable, "-c", _JIT_PROBE], capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        tail = "\n".join((probe.stderr or probe.stdout).strip().splitlines()[-5:])
        pytest.fail(f"Mitsuba's LLVM JIT is unusable here (probe exit code {probe.returncode}); install libllvm19 "
                    f"(`make test` does) or set DRJIT_LIBLLVM_PATH. Probe said:\n{tail}", pytrace=False)
