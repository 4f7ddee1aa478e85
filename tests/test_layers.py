"""The package's layers, read from the source: a module imports only its own room or lower layers.

A room is a top-level module or subpackage of mvinverse_ros (`geometry`, `params`, `bag`, ...). Every
import counts, at module level or inside a function: a late import is still a dependency, only a later one.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "mvinverse_ros"
PACKAGE_DIR = REPO / PACKAGE

# Low -> high. A module may import its own room and the rooms of lower layers, nothing else; two rooms of
# one layer do not import each other. README.md's layout section lists the same order.
LAYERS: list[tuple[str, ...]] = [
    ("types", "topics", "resources"),    # L0 records, topic names, shared files
    ("geometry", "model", "visualize"),  # L1 pure numpy/torch building blocks
    ("engine", "conversions", "rendering"),  # L2 windowed inference; ROS message <-> numpy via a MessageFactory
    ("params", "datasets"),              # L3 the parameter schema; dataset readers
    ("pipeline", "runtime"),             # L4 params -> pipeline; ROS-free logic of the node
    ("bag", "inference"),                # L5 the offline rosbags path; one-shot inference
    ("eval", "train", "fleet"),          # L6
    ("ros",),                            # L7 the rclpy message factory
    ("cli", "node"),                     # L8 entry points: the console script and the rclpy node
]
LAYER_OF = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}
# The core: knows nothing of ROS client libraries or rosbags (README: "The core (L0-L4) ...").
CORE_ROOMS = [room for rooms in LAYERS[:5] for room in rooms]
# Third-party ROS libraries and the only rooms that may import them.
ROS_LIBRARIES = {
    "rosbags": {"bag"},
    "rclpy": {"node", "ros"},
    "rcl_interfaces": {"node", "ros"},
    "rosidl_runtime_py": {"node", "ros"},
    "message_filters": {"node", "ros"},
    "tf2_ros": {"node", "ros"},
}
MESSAGE_PACKAGE_SUFFIX = "_msgs"  # sensor_msgs, diagnostic_msgs, ...: rclpy message classes


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is imported and by which room."""

    module: str      # absolute dotted name: mvinverse_ros.geometry.camera, numpy, ...
    path: Path       # the importing file
    line: int
    room: str        # the importing module's room

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def _module_parts(path: Path) -> tuple[list[str], list[str]]:
    """(dotted name of the module, dotted name of the package its relative imports start from) as lists."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return parts, parts
    return parts, parts[:-1]


def _imports_of(path: Path) -> list[Import]:
    """Every import in `path`, at any depth, with relative imports made absolute."""
    parts, package = _module_parts(path)
    room = parts[1] if len(parts) > 1 else ""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] if node.level else [])
            module = ".".join(p for p in (base, node.module or "") if p)
            # `from mvinverse_ros import params` imports the room `params`
            names = [f"{module}.{alias.name}" for alias in node.names] if module == PACKAGE else [module]
        else:
            continue
        found += [Import(name, path, node.lineno, room) for name in names]
    return found


def _room(module: str) -> str | None:
    """The room of an mvinverse_ros module name, None for anything else."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [found for path in sorted(PACKAGE_DIR.rglob("*.py")) for found in _imports_of(path)]


def _rooms_on_disk() -> set[str]:
    return {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"} | \
        {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}


def test_every_room_has_exactly_one_layer():
    listed = [room for rooms in LAYERS for room in rooms]
    assert len(listed) == len(set(listed)), "a room is listed in two layers"
    unplaced = sorted(_rooms_on_disk() - set(listed))
    assert not unplaced, f"rooms without a layer in LAYERS: {unplaced}"
    stale = sorted(set(listed) - _rooms_on_disk())
    assert not stale, f"LAYERS names rooms that no longer exist: {stale}"


def test_package_root_imports_nothing_of_its_own(imports):
    # mvinverse_ros/__init__.py runs before every module of the package: what it imports, every room gets.
    assert not [i.where() for i in imports if i.room == "" and _room(i.module)]


def test_modules_import_only_their_room_or_lower_layers(imports):
    violations = []
    for found in imports:
        target = _room(found.module)
        if target is None or target == found.room or found.room not in LAYER_OF or target not in LAYER_OF:
            continue  # rooms without a layer fail test_every_room_has_exactly_one_layer
        if LAYER_OF[target] >= LAYER_OF[found.room]:
            violations.append(f"{found.where()}: {found.room} (L{LAYER_OF[found.room]}) imports {found.module} "
                              f"(L{LAYER_OF[target]})")
    assert not violations, "\n".join(violations)


def test_geometry_and_engine_never_see_the_parameter_schema(imports):
    # They take explicit arguments and configs; pipeline.py maps parameters onto them.
    readers = [i.where() for i in imports if i.room in ("geometry", "engine") and _room(i.module) == "params"]
    assert not readers


def test_eval_and_train_do_not_import_each_other(imports):
    crossings = [i.where() for i in imports if {i.room, _room(i.module)} == {"eval", "train"}]
    assert not crossings


def test_ros_libraries_are_imported_only_at_the_edges(imports):
    misplaced = []
    for found in imports:
        top = found.module.split(".")[0]
        allowed = ROS_LIBRARIES.get(top, {"node", "ros"} if top.endswith(MESSAGE_PACKAGE_SUFFIX) else None)
        if allowed is not None and found.room not in allowed:
            misplaced.append(f"{found.where()}: {found.module}")
    assert not misplaced, "\n".join(misplaced)


_FIRST_TO_LOAD_ROSBAGS = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    if any(m == "rosbags" or m.startswith("rosbags.") for m in sys.modules):
        print(name)
        break
"""


def test_core_modules_load_without_rosbags():
    # The node imports the core under rclpy; loading rosbags there would pull a second message stack into the
    # robot's process. One fresh interpreter imports the core module by module and names the first that does.
    modules = []
    for room in CORE_ROOMS:
        single = PACKAGE_DIR / f"{room}.py"
        paths = [single] if single.is_file() else sorted((PACKAGE_DIR / room).rglob("*.py"))
        modules += [".".join(_module_parts(path)[0]) for path in paths]
    assert "mvinverse_ros.pipeline" in modules and "mvinverse_ros.conversions.frames" in modules
    done = subprocess.run([sys.executable, "-c", _FIRST_TO_LOAD_ROSBAGS, json.dumps(modules)], capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", f"importing {done.stdout.strip()} loads rosbags"
