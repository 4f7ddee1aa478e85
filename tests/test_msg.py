"""msg/ and srv/ files as ROS's own generator reads them (rosidl_adapter -> IDL, rosidl_parser) and as rosbags does.

Both must accept every file and agree on every field. rosbags has no .srv parser, so each half of
a service (request, response) goes through its msg parser.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from rosbags.typesys import get_types_from_msg

from mvinverse_ros.types import MAP_NAMES

REPO = Path(__file__).resolve().parent.parent
MSG_FILES = sorted((REPO / "msg").glob("*.msg"))
SRV_FILES = sorted((REPO / "srv").glob("*.srv"))
DEPENDENCIES = {"std_msgs", "sensor_msgs", "builtin_interfaces", "geometry_msgs"}  # package.xml / CMakeLists
SYSTEM_PYTHON = "/usr/bin/python3"

# msg -> IDL with rosidl_adapter, then the IDL through rosidl_parser: what rosidl_generate_interfaces runs.
ROSIDL_FIELDS = """
import json, sys, tempfile
from pathlib import Path
from rosidl_adapter.msg import convert_msg_to_idl
from rosidl_parser.definition import IdlLocator, Message
from rosidl_parser.parser import parse_idl_file

msg = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as out:
    idl = convert_msg_to_idl(msg.parent.parent, 'mvinverse_ros', Path('msg') / msg.name, Path(out))
    message = parse_idl_file(IdlLocator(Path(out), idl.relative_to(out))).content.get_elements_of_type(Message)[0]
fields = []
for member in message.structure.members:
    inner = getattr(member.type, 'value_type', member.type)
    ref = '/'.join(inner.namespaced_name()) if hasattr(inner, 'namespaced_name') else inner.typename
    fields.append([member.name, type(member.type).__name__, ref])
print(json.dumps(fields))
"""


@pytest.mark.parametrize("msg", MSG_FILES, ids=lambda p: p.name)
def test_rosidl_and_rosbags_read_the_same_fields(msg):
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} not found: `make ros-tools` installs Debian's python3-rosidl")
    done = subprocess.run([SYSTEM_PYTHON, "-c", ROSIDL_FIELDS, str(msg)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rosidl_fields = json.loads(done.stdout.splitlines()[-1])  # the adapter prints progress first
    type_name = f"mvinverse_ros/msg/{msg.stem}"
    rosbags_fields = get_types_from_msg(msg.read_text(), type_name)[type_name][1]
    assert [f[0] for f in rosidl_fields] == [f[0] for f in rosbags_fields]
    nested = {name: ref for name, kind, ref in rosidl_fields if "/" in ref}
    # every nested message is one the package depends on (package.xml / CMakeLists DEPENDENCIES)
    assert {ref.split("/")[0] for ref in nested.values()} <= DEPENDENCIES


# srv -> IDL with rosidl_adapter, then rosidl_parser: the request and response members.
ROSIDL_SERVICE_FIELDS = """
import json, sys, tempfile
from pathlib import Path
from rosidl_adapter.srv import convert_srv_to_idl
from rosidl_parser.definition import IdlLocator, Service
from rosidl_parser.parser import parse_idl_file

srv = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as out:
    idl = convert_srv_to_idl(srv.parent.parent, 'mvinverse_ros', Path('srv') / srv.name, Path(out))
    service = parse_idl_file(IdlLocator(Path(out), idl.relative_to(out))).content.get_elements_of_type(Service)[0]
halves = {}
for half, message in (('request', service.request_message), ('response', service.response_message)):
    fields = []
    for member in message.structure.members:
        inner = getattr(member.type, 'value_type', member.type)
        ref = ('/'.join(inner.namespaced_name()) if hasattr(inner, 'namespaced_name')
               else getattr(inner, 'typename', type(inner).__name__))  # strings have no typename
        fields.append([member.name, type(member.type).__name__, ref])
    halves[half] = fields
print(json.dumps(halves))
"""


def rosidl_service_fields(srv: Path) -> dict:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} not found: `make ros-tools` installs Debian's python3-rosidl")
    done = subprocess.run([SYSTEM_PYTHON, "-c", ROSIDL_SERVICE_FIELDS, str(srv)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("srv", SRV_FILES, ids=lambda p: p.name)
def test_services_read_the_same_in_rosidl_and_rosbags(srv):
    halves = rosidl_service_fields(srv)
    request, response = srv.read_text().split("\n---\n")
    for half, text in (("request", request), ("response", response)):
        type_name = f"mvinverse_ros/msg/{srv.stem}_{half.capitalize()}"
        rosbags_fields = get_types_from_msg(text, type_name)[type_name][1]
        assert [f[0] for f in halves[half]] == [f[0] for f in rosbags_fields], half
        assert {ref.split("/")[0] for _, _, ref in halves[half] if "/" in ref} <= DEPENDENCIES


def test_query_materials_layout():
    """The request and response fields conversions.query and the README promise, with ROS's own types."""
    halves = rosidl_service_fields(REPO / "srv" / "QueryMaterials.srv")
    request = {name: (kind, ref) for name, kind, ref in halves["request"]}
    assert request == {"header": ("NamespacedType", "std_msgs/msg/Header"),
                       "points": ("UnboundedSequence", "geometry_msgs/msg/Point"),
                       "radius": ("BasicType", "double")}
    response = {name: (kind, ref) for name, kind, ref in halves["response"]}
    assert response["success"] == ("BasicType", "boolean")
    assert response["message"] == ("UnboundedString", "UnboundedString")
    assert response["found"] == ("UnboundedSequence", "boolean")
    assert response["distance"] == ("UnboundedSequence", "double")
    for name in ("albedo", "albedo_std"):
        assert response[name] == ("UnboundedSequence", "std_msgs/msg/ColorRGBA")
    for name in ("roughness", "roughness_std", "metallic", "metallic_std", "specular"):
        assert response[name] == ("UnboundedSequence", "float"), name
    assert response["normal"] == ("UnboundedSequence", "geometry_msgs/msg/Vector3")
    assert response["view_count"] == ("UnboundedSequence", "uint32")


def test_material_maps_layout():
    """The fields the converters and README promise, in order, with ROS's own types."""
    msg = REPO / "msg" / "MaterialMaps.msg"
    done = subprocess.run([SYSTEM_PYTHON, "-c", ROSIDL_FIELDS, str(msg)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fields = {name: (kind, ref) for name, kind, ref in json.loads(done.stdout.splitlines()[-1])}
    assert fields["header"] == ("NamespacedType", "std_msgs/msg/Header")
    for image in MAP_NAMES:
        assert fields[image] == ("NamespacedType", "sensor_msgs/msg/Image")
    assert fields["camera_info"] == ("NamespacedType", "sensor_msgs/msg/CameraInfo")
    assert fields["window_stamps"] == ("UnboundedSequence", "builtin_interfaces/msg/Time")
    assert fields["frame_index"] == ("BasicType", "uint32")
    assert fields["inference_time"] == ("BasicType", "float")
