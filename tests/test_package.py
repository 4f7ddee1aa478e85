"""The ROS 2 package as colcon, rosdep and the ament linters see it, checked with their real tools.

catkin_pkg, rosidl and the ament linters are Debian's packages for the system Python
(/usr/bin/python3), so they run in a subprocess there.
"""
from __future__ import annotations

import ast
import fnmatch
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
    "PIL": "python3-pil",
    "rosbags": "python3-rosbags-pip",
    "huggingface_hub": "python3-huggingface-hub-pip",
    "rclpy": "rclpy",
    "cv_bridge": "cv_bridge",
    "rcl_interfaces": "rcl_interfaces",
    "message_filters": "message_filters",
    "tf2_ros": "tf2_ros_py",
    "diagnostic_msgs": "diagnostic_msgs",
    "std_srvs": "std_srvs",
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
    "ray": "fleet processing only (pip extra 'fleet')",
    "apsw": "comes with rosbags (its sqlite3 reader); imported for its error types",
    "onnxruntime": "model.backend onnxruntime only (pip extra 'deploy'; onnxruntime-gpu on a GPU)",
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


_CMAKE_TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<quoted>"(?:\\.|[^"\\])*")
  | (?P<open>\()
  | (?P<close>\))
  | (?P<unquoted>[^\s()#"]+)
  | (?P<space>\s+)
""", re.VERBOSE)


def cmake_commands(text: str) -> list[tuple[str, list[str]]]:
    """Every command invocation of a CMake file: (lower-case name, arguments with ${PROJECT_NAME} expanded).

    Enough of the CMake language for CMakeLists.txt: line comments, quoted and unquoted arguments,
    nested parentheses. Bracket arguments and comments (`[[...]]`, `#[[...]]`) are not used there.
    """
    commands: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    depth = 0
    pending_name = None
    for match in _CMAKE_TOKEN.finditer(text):
        kind, token = match.lastgroup, match.group()
        if kind in ("comment", "space"):
            continue
        if current is None:  # between commands: a name, then its opening parenthesis
            if kind == "open" and pending_name:
                current, depth = [], 1
                commands.append((pending_name.lower(), current))
            pending_name = token if kind == "unquoted" else None
            continue
        depth += {"open": 1, "close": -1}.get(kind, 0)
        if depth == 0:
            current, pending_name = None, None
        elif kind == "quoted":
            current.append(token[1:-1])
        else:
            current.append(token)
    assert current is None, "unbalanced parentheses in CMakeLists.txt"
    project = next(args[0] for name, args in commands if name == "project")
    return [(name, [a.replace("${PROJECT_NAME}", project) for a in args]) for name, args in commands]


# install() keywords that end a list of files or directories.
_INSTALL_KEYWORDS = {"DESTINATION", "PATTERN", "REGEX", "EXCLUDE", "PERMISSIONS", "FILE_PERMISSIONS",
                     "DIRECTORY_PERMISSIONS", "USE_SOURCE_PERMISSIONS", "OPTIONAL", "MESSAGE_NEVER", "FILES_MATCHING",
                     "COMPONENT", "RENAME", "CONFIGURATIONS"}


def cmake_installed_files(commands: list[tuple[str, list[str]]]) -> dict[str, tuple[str, str]]:
    """Source file (relative to the repository) -> (install() mode, path under the install prefix).

    Covers the install() forms CMakeLists.txt uses: FILES, PROGRAMS and DIRECTORY with `PATTERN ... EXCLUDE`;
    a DIRECTORY ending in '/' installs its contents, one without it the directory itself, as in CMake.
    """
    installed: dict[str, tuple[str, str]] = {}
    for name, args in commands:
        if name != "install":
            continue
        mode = args[0]
        assert mode in ("FILES", "PROGRAMS", "DIRECTORY"), f"install({mode} ...) is not understood here"
        first_keyword = next(i for i, a in enumerate(args) if a in _INSTALL_KEYWORDS)
        sources, options = args[1:first_keyword], args[first_keyword:]
        destination = options[options.index("DESTINATION") + 1]
        patterns = [i for i, a in enumerate(options) if a == "PATTERN"]
        assert all(options[i + 2:i + 3] == ["EXCLUDE"] for i in patterns), "only PATTERN ... EXCLUDE is understood"
        excluded = [options[i + 1] for i in patterns]
        for source in sources:
            path = REPO / source
            if mode != "DIRECTORY":
                installed[source] = (mode, f"{destination}/{path.name}")
                continue
            target = destination if source.endswith("/") else f"{destination}/{path.name}"
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = file.relative_to(path)
                if not any(fnmatch.fnmatchcase(part, pattern) for part in relative.parts for pattern in excluded):
                    installed[str(file.relative_to(REPO))] = (mode, f"{target}/{relative.as_posix()}")
    return installed


@pytest.fixture(scope="module")
def cmake() -> list[tuple[str, list[str]]]:
    return cmake_commands((REPO / "CMakeLists.txt").read_text())


def test_cmake_generates_every_interface(cmake):
    interfaces = next(args for name, args in cmake if name == "rosidl_generate_interfaces")
    listed = set(interfaces[1:interfaces.index("DEPENDENCIES")])
    on_disk = {str(p.relative_to(REPO)) for folder in ("msg", "srv") for p in (REPO / folder).glob("*.*")}
    assert listed == on_disk


def test_cmake_installs_what_ros2_run_and_launch_need(cmake):
    installed = cmake_installed_files(cmake)
    python_dir = next(args[0] for name, args in cmake if name == "ament_get_python_install_dir")
    share = "share/mvinverse_ros"
    needed = {"scripts/perception_node": ("PROGRAMS", "lib/mvinverse_ros/perception_node")}
    for pattern in ("config/*.yaml", "config/*.rviz", "launch/*.py", "msg/*.msg", "srv/*.srv"):
        needed.update({str(p.relative_to(REPO)): ("DIRECTORY", f"{share}/{p.relative_to(REPO)}")
                       for p in REPO.glob(pattern)})
    # The Python package with its data (weights, py.typed), without byte code.
    needed.update({str(p.relative_to(REPO)): ("DIRECTORY", f"${{{python_dir}}}/{p.relative_to(REPO)}")
                   for p in (REPO / "mvinverse_ros").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"})
    assert "mvinverse_ros/model/weights/default.safetensors" in needed
    wrong = {source: (installed.get(source), want) for source, want in needed.items() if installed.get(source) != want}
    assert not wrong, f"source: (installed as, needed as): {wrong}"
    assert not [source for source in installed if "__pycache__" in source or source.endswith(".pyc")]


def test_python_package_is_copied_into_the_rosidl_package_directory(cmake):
    # rosidl owns <python dir>/mvinverse_ros: the modules are copied in, not ament_python_install_package'd
    assert "ament_python_install_package" not in {name for name, _ in cmake}
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


def _findings(done: subprocess.CompletedProcess) -> list[str]:
    """The report lines of a linter run that name a linted file ('path:line: ...')."""
    output = done.stdout + done.stderr
    findings = [line for line in output.splitlines() if line.split(":", 1)[0].removeprefix("./") in LINTED_FILES]
    # A failing run that names no file means the linter itself broke: show what it said.
    assert done.returncode == 0 or findings, output[-3000:]
    return findings


def test_ament_flake8_over_every_python_file():
    # setup.cfg: the ament defaults at 120 columns
    findings = _findings(_linter("ament_flake8.main", "--config", "setup.cfg", *LINTED_FILES))
    assert not findings, f"{len(findings)} flake8 findings:\n" + "\n".join(findings)


def test_ament_pep257_over_every_python_file():
    # Google-style sections (Args:/Raises:) as the code base writes them; missing docstrings and lower-case
    # first words (HxW, CameraModel) are fine; the rest of PEP 257 holds.
    findings = _findings(_linter("ament_pep257.main", "--convention", "google", *LINTED_FILES, "--add-ignore",
                                 "D100", "D101", "D102", "D103", "D104", "D105", "D106", "D107", "D403"))
    assert not findings, f"{len(findings)} pep257 findings:\n" + "\n".join(findings)


def test_ament_xmllint_validates_package_xml_against_its_schema():
    done = _linter("ament_xmllint.main", "package.xml")
    assert done.returncode == 0, done.stdout + done.stderr
