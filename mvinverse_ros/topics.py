"""Output topic names and message types, shared by the ROS node and `mvinverse-ros bag process`.

One place so that a bag written offline and a live robot publish exactly the same graph.
Names are relative to the node's namespace (`mvinverse/...`); the offline writer uses them with a
leading slash, as a node started in the root namespace would.
"""
from __future__ import annotations

NAMESPACE = "/mvinverse"

ALBEDO = f"{NAMESPACE}/albedo"                 # sensor_msgs/Image rgb8
ROUGHNESS = f"{NAMESPACE}/roughness"           # sensor_msgs/Image 32FC1
METALLIC = f"{NAMESPACE}/metallic"             # sensor_msgs/Image 32FC1
NORMAL = f"{NAMESPACE}/normal"                 # sensor_msgs/Image 32FC3, optical frame
NORMAL_VISUAL = f"{NAMESPACE}/normal/visual"   # sensor_msgs/Image rgb8, n * 0.5 + 0.5
SHADING = f"{NAMESPACE}/shading"               # sensor_msgs/Image 32FC3
SHADING_VISUAL = f"{NAMESPACE}/shading/visual"  # sensor_msgs/Image rgb8, for RViz (no 32FC3 display)
MATERIALS = f"{NAMESPACE}/materials"           # mvinverse_ros/msg/MaterialMaps
CLOUD = f"{NAMESPACE}/cloud"                   # sensor_msgs/PointCloud2 in tf.fixed_frame

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
MATERIALS_TYPE = "mvinverse_ros/msg/MaterialMaps"

# topic -> message type of everything the node and the offline path publish, in a stable order.
OUTPUT_TYPES: dict[str, str] = {
    ALBEDO: IMAGE_TYPE,
    ROUGHNESS: IMAGE_TYPE,
    METALLIC: IMAGE_TYPE,
    NORMAL: IMAGE_TYPE,
    NORMAL_VISUAL: IMAGE_TYPE,
    SHADING: IMAGE_TYPE,
    SHADING_VISUAL: IMAGE_TYPE,
    MATERIALS: MATERIALS_TYPE,
    CLOUD: CLOUD_TYPE,
}

# The per-pixel image topics and the encoding each carries.
IMAGE_ENCODINGS: dict[str, str] = {
    ALBEDO: "rgb8",
    ROUGHNESS: "32FC1",
    METALLIC: "32FC1",
    NORMAL: "32FC3",
    NORMAL_VISUAL: "rgb8",
    SHADING: "32FC3",
    SHADING_VISUAL: "rgb8",
}

TF = "/tf"
TF_STATIC = "/tf_static"


def compressed(topic: str) -> str:
    """The image_transport name of the compressed stream of a raw image topic."""
    return f"{topic}/compressed"


def output_type(topic: str) -> str:
    """Message type of an output topic: OUTPUT_TYPES, or CompressedImage for a map's `<topic>/compressed`.

    Raises:
        KeyError: a topic this package does not publish.
    """
    if topic in OUTPUT_TYPES:
        return OUTPUT_TYPES[topic]
    if topic.endswith("/compressed") and topic.removesuffix("/compressed") in IMAGE_ENCODINGS:
        return COMPRESSED_IMAGE_TYPE
    raise KeyError(f"{topic} is not an output topic of mvinverse_ros")
