"""What a fleet run works on: its inputs, their outputs and whether an output is already complete.

Every output is first written under OUT_DIR/.partial/ and renamed into place only when its bag is
closed; a stamp file `<name>.fleet.json` goes last and is the mark of a complete output. It holds a
digest of the flat parameters and the checkpoint's SHA-256, so a rerun skips exactly the inputs
that were processed the same way and redoes the others. Interrupted or crashed work only ever
leaves files under .partial/, which the next run clears.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvinverse_ros.model.checkpoint import DEFAULT_WEIGHTS, resolve_checkpoint
from mvinverse_ros.params import ModelParams

PARTIAL_DIR = ".partial"
STAMP_SUFFIX = ".fleet.json"
BAG_METADATA = "metadata.yaml"


class FleetError(Exception):
    """Inputs or an output folder a fleet run cannot work with; the message says which and why."""


@dataclass(frozen=True)
class Job:
    """One input bag and the name of its outputs in the output folder."""

    input_path: Path
    name: str


@dataclass(frozen=True)
class Outputs:
    """The final paths of one job's outputs: bag directory, fused-cloud PLY, contact sheet and stamp."""

    bag: Path
    ply: Path
    sheet: Path
    stamp: Path

    @classmethod
    def of(cls, out_dir: Path, name: str) -> "Outputs":
        return cls(out_dir / name, out_dir / f"{name}.ply", out_dir / f"{name}.png", out_dir / f"{name}{STAMP_SUFFIX}")

    def as_dict(self) -> dict[str, str]:
        return {"bag": str(self.bag), "ply": str(self.ply), "sheet": str(self.sheet), "stamp": str(self.stamp)}


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and (path / BAG_METADATA).is_file()


def _found_in(folder: Path) -> list[Path]:
    """Bag directories and loose .mcap files under `folder` (not the .mcap files inside a bag directory)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        here = Path(root)
        if BAG_METADATA in files:
            found.append(here)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(here / f for f in sorted(files) if f.endswith(".mcap"))
    return found


def find_jobs(inputs: list[Path]) -> list[Job]:
    """One Job per bag named by `inputs` (bag directories, .mcap files, or folders searched for them).

    Raises:
        FleetError: an input that does not exist or holds no bag, or two bags that would share an output name.
    """
    bags: list[Path] = []
    for item in inputs:
        if _is_bag_dir(item) or (item.is_file() and item.suffix == ".mcap"):
            bags.append(item)
        elif item.is_dir():
            found = _found_in(item)
            if not found:
                raise FleetError(f"{item} holds no rosbag2 directory and no .mcap file")
            bags.extend(found)
        else:
            raise FleetError(f"{item} is neither a bag, an .mcap file nor a folder")
    jobs: dict[str, Job] = {}
    for bag in dict.fromkeys(path.resolve() for path in bags):
        name = bag.stem if bag.suffix == ".mcap" else bag.name
        if name in jobs:
            raise FleetError(f"{jobs[name].input_path} and {bag} would both write the output {name}; rename one")
        jobs[name] = Job(bag, name)
    return list(jobs.values())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(model: ModelParams) -> str:
    """SHA-256 of the weights file `model.checkpoint` names (the bundled file for "").

    Untrained weights have no file; they are named `untrained-<preset>`.
    """
    if not model.checkpoint and not DEFAULT_WEIGHTS.is_file():
        return f"untrained-{model.preset}"
    return file_sha256(resolve_checkpoint(model.checkpoint or str(DEFAULT_WEIGHTS)))


def params_sha256(flat_params: dict[str, Any]) -> str:
    """A digest of the flat parameters (`section.field` -> value), independent of their order."""
    return hashlib.sha256(json.dumps(flat_params, sort_keys=True).encode()).hexdigest()


def write_json(path: Path, content: Any) -> None:
    """Write JSON under a temporary name, then rename: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def read_stamp(outputs: Outputs) -> dict[str, Any] | None:
    """The stamp of a complete output, or None when there is none (or it or its bag is missing or unreadable)."""
    try:
        stamp = json.loads(outputs.stamp.read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and _is_bag_dir(outputs.bag) else None


def complete_record(outputs: Outputs, digests: dict[str, str]) -> dict[str, Any] | None:
    """The stored record of an output complete for these digests (params and checkpoint), else None."""
    stamp = read_stamp(outputs)
    if stamp is None or any(stamp.get(key) != value for key, value in digests.items()):
        return None
    return stamp.get("record")


class PartialOutputs:
    """A private folder under OUT_DIR/.partial/ where one attempt writes; `commit` renames into place.

    Args:
        out_dir: the fleet's output folder.
        name: the job's output name.
    """

    def __init__(self, out_dir: Path, name: str) -> None:
        self.final = Outputs.of(out_dir, name)
        self.folder = out_dir / PARTIAL_DIR / f"{name}.{uuid.uuid4().hex}"
        self.folder.mkdir(parents=True)
        self.work = Outputs.of(self.folder, name)

    def commit(self, stamp: dict[str, Any]) -> None:
        """Replace any older outputs of this name with the finished ones; the stamp goes last.

        The old stamp goes first, so a crash in between leaves an output without a stamp: incomplete,
        redone by the next run.
        """
        self.final.stamp.unlink(missing_ok=True)
        for work, final in ((self.work.bag, self.final.bag), (self.work.ply, self.final.ply),
                            (self.work.sheet, self.final.sheet)):
            if final.is_dir():
                shutil.rmtree(final)
            else:
                final.unlink(missing_ok=True)
            if work.exists():
                os.replace(work, final)
        write_json(self.final.stamp, stamp)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def clear_partial(out_dir: Path) -> None:
    """Remove what interrupted or crashed attempts left (only under OUT_DIR/.partial/)."""
    shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)
