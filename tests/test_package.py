"""The ROS 2 package as colcon, rosdep and the ament linters see it, checked with their real tools.

catkin_pkg, rosidl and the ament linters are Debian's packages for the system Python
(/usr/bin/python3), so they run in a subprocess there.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
# Everything colcon installs or runs from the source tree.
PYTHON_SOURCES = ["mvinverse_ros", "launch", "scripts", "tests", "benchmarks"]

# Top-level module -> the rosdep key that provides it.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "scipy": "python3-scipy",
    "yaml": "python3-yaml",
    "torch": "python3-torch",
    "tqdm": "python3-tqdm",
    "rosbags": "python3-rosbags-pip",
    "huggingface_hub": "python3-huggingface-hub-pip",
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "message_filters": "message_filters",
    "tf2_ros": "tf2_ros_py",
    "diagnostic_msgs": "diagnostic_msgs",
    "sensor_msgs": "sensor_msgs",
    "geometry_msgs": "geometry_msgs",
    "std_msgs": "std_msgs",
    "builtin_interfaces": "builtin_interfaces",
    "rosidl_runtime_py": "rosidl_runtime_py",
    "ament_index_python": "ament_index_python",
    "launch": "launch",
    "launch_ros": "launch_ros",
}
# Imported by the package but deliberately not a rosdep dependency, and why.
NOT_ROSDEP = {
    "safetensors": "no rosdep key exists; README: pip install safetensors",
    "mitsuba": "training data generator only (pip extra 'train')",
    "drjit": "comes with mitsuba (pip extra 'train')",
}
# Imported only by tests (test_depend or the pip 'test' extra).
TEST_ONLY = {"pytest", "launch_testing", "launch_testing_ros", "catkin_pkg"}


def system_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` under Debian's python3 (where the ROS tooling is installed)."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} not found: `make ros-tools` installs Debian's ROS tooling")
    return subprocess.run([SYSTEM_PYTHON, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def manifest() -> dict:
    """package.xml as catkin_pkg parses (and validates) it."""
    code = (
        "import json, sys\n"
        "from catkin_pkg.package import parse_package\n"
        "p = parse_package(sys.argv[1])\n"
        "p.validate()\n"
        "deps = lambda attr: sorted(d.name for d in getattr(p, attr))\n"
        "print(json.dumps({'name': p.name, 'format': p.package_format, 'version': p.version,\n"
        "  'build_type': p.get_build_type(), 'groups': [g.name for g in p.member_of_groups],\n"
        "  **{a: deps(a) for a in ('buildtool_depends', 'build_depends', 'exec_depends', 'test_depends')}}))\n"
    )
    done = system_python(code, str(REPO / "package.xml"))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_manifest_is_a_format3_ament_cmake_interface_package(manifest):
    assert manifest["name"] == "mvinverse_ros"
    assert manifest["format"] == 3
    assert manifest["build_type"] == "ament_cmake"
    assert "rosidl_interface_packages" in manifest["groups"]
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= set(manifest["buildtool_depends"])
    assert "rosidl_default_runtime" in manifest["exec_depends"]
    linters = {"ament_lint_auto", "ament_cmake_flake8", "ament_cmake_pep257", "ament_cmake_xmllint"}
    assert linters | {"launch_testing", "launch_testing_ament_cmake"} <= set(manifest["test_depends"])


def test_manifest_version_matches_setup_py(manifest):
    version = re.search(r'version="([^"]+)"', (REPO / "setup.py").read_text())
    assert version and version.group(1) == manifest["version"]


def _imported_modules(paths: list[Path]) -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _python_files(*roots: str) -> list[Path]:
    files = []
    for root in roots:
        base = REPO / root
        files += sorted(base.rglob("*.py")) if base.is_dir() else []
    files.append(REPO / "scripts" / "perception_node")
    return files


def test_every_imported_module_is_a_declared_dependency(manifest):
    declared = set(manifest["exec_depends"]) | set(manifest["build_depends"])
    imported = _imported_modules(_python_files("mvinverse_ros", "launch"))
    third_party = {m: files for m, files in imported.items()
                   if m not in sys.stdlib_module_names and m != "mvinverse_ros" and m not in NOT_ROSDEP}
    unmapped = {m: sorted(f) for m, f in third_party.items() if m not in ROSDEP_KEYS}
    assert not unmapped, f"imports without a rosdep key in tests/test_package.py: {unmapped}"
    missing = {ROSDEP_KEYS[m]: sorted(f) for m, f in third_party.items() if ROSDEP_KEYS[m] not in declared}
    assert not missing, f"package.xml lacks these dependencies: {missing}"


def test_test_imports_are_test_dependencies(manifest):
    declared = set(manifest["test_depends"]) | set(manifest["exec_depends"])
    imported = _imported_modules(sorted((REPO / "tests").glob("*.py")))
    ros_test_tools = {m for m in imported if m in TEST_ONLY and m not in ("pytest", "catkin_pkg")}
    assert ros_test_tools <= declared


def test_cmake_installs_what_ros2_run_and_launch_need():
    cmake = (REPO / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"(msg/[^"]+\.msg)"', cmake))
    assert listed == {str(p.relative_to(REPO)) for p in (REPO / "msg").glob("*.msg")}
    assert "install(PROGRAMS scripts/perception_node DESTINATION lib/${PROJECT_NAME})" in cmake
    assert re.search(r"install\(DIRECTORY config launch msg DESTINATION share/\$\{PROJECT_NAME\}\)", cmake)
    # rosidl owns <python dir>/mvinverse_ros: the modules are copied in, not ament_python_install_package'd
    assert "ament_python_install_package(" not in re.sub(r"#.*", "", cmake)
    assert (REPO / "mvinverse_ros" / "__init__.py").read_text().strip() == ""
    entry = REPO / "scripts" / "perception_node"
    assert entry.stat().st_mode & 0o111, "scripts/perception_node must be executable"
    assert entry.read_text().startswith("#!/usr/bin/env python3")


def test_colcon_sees_one_ament_cmake_package():
    if not Path("/usr/bin/colcon").exists():
        pytest.fail("/usr/bin/colcon not found: Debian's colcon belongs to `make ros-tools`")
    done = subprocess.run(["/usr/bin/colcon", "list", "--base-paths", str(REPO)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert [(r[0], r[2]) for r in rows] == [("mvinverse_ros", "(ros.ament_cmake)")]


def _linter(module: str, *args: str) -> subprocess.CompletedProcess:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} not found: `make ros-tools` installs Debian's ament linters")
    return subprocess.run([SYSTEM_PYTHON, "-m", module, *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


LINTED_FILES = [str(p.relative_to(REPO)) for p in _python_files(*PYTHON_SOURCES)]


def _findings_by_file(output: str) -> dict[str, list[str]]:
    """Linter report lines grouped by the file they start with ('path:line...')."""
    findings: dict[str, list[str]] = {}
    for line in output.splitlines():
        path = line.split(":", 1)[0].removeprefix("./")
        if path in LINTED_FILES:
            findings.setdefault(path, []).append(line)
    return findings


@pytest.fixture(scope="module")
def flake8_findings() -> dict[str, list[str]]:
    """One ament_flake8 run over every linted file (setup.cfg: the ament defaults at 120 columns)."""
    done = _linter("ament_flake8.main", "--config", "setup.cfg", *LINTED_FILES)
    findings = _findings_by_file(done.stdout + done.stderr)
    assert done.returncode == 0 or findings, done.stdout[-3000:] + done.stderr[-3000:]
    return findings


@pytest.fixture(scope="module")
def pep257_findings() -> dict[str, list[str]]:
    """One ament_pep257 run over every linted file.

    Google-style sections (Args:/Raises:) as the code base writes them; missing docstrings and
    lower-case first words (HxW, CameraModel) are fine; the rest of PEP 257 holds.
    """
    done = _linter("ament_pep257.main", "--convention", "google", *LINTED_FILES,
                   "--add-ignore", "D100", "D101", "D102", "D103", "D104", "D105", "D106", "D107", "D403")
    findings = _findings_by_file(done.stdout + done.stderr)
    assert done.returncode == 0 or findings, done.stdout[-3000:] + done.stderr[-3000:]
    return findings


@pytest.mark.parametrize("path", LINTED_FILES)
def test_ament_flake8(path, flake8_findings):
    assert not flake8_findings.get(path), "\n".join(flake8_findings[path])


@pytest.mark.parametrize("path", LINTED_FILES)
def test_ament_pep257(path, pep257_findings):
    assert not pep257_findings.get(path), "\n".join(pep257_findings[path])


def test_ament_xmllint_validates_package_xml_against_its_schema():
    done = _linter("ament_xmllint.main", "package.xml")
    assert done.returncode == 0, done.stdout + done.stderr
