"""Every message one window publishes, built once for the node and `mvinverse-ros bag process`.

Both publish the same graph (mvinverse_ros.topics); building the messages here keeps their
stamps, frame ids and order identical, so a bag written offline replays like the live node.

Map encodings (`bag.map_encoding`; the node publishes `raw+png`):
- raw: sensor_msgs/Image on each map topic: albedo and the *_visual renderings rgb8, roughness and
  metallic 32FC1, normal and shading 32FC3 (exact float32).
- png: sensor_msgs/CompressedImage PNG on each map topic's image_transport name `<topic>/compressed`,
  which RViz and Foxglove decode: albedo and the *_visual renderings as rgb8 PNG (lossless: the
  same bytes as raw), roughness and metallic as mono16 PNG, shading as rgb16 PNG (each within
  1/65535 of the float map), normal as rgb16 PNG of n * 0.5 + 0.5 (within 2/65535 per component);
  see conversions.encoding.
- raw+png: both; the node's policy: the raw float topics for reliable subscribers, the compact PNG
  streams (tens of kB, where a raw float map is 1-4 MB) for best-effort ones such as RViz's displays.
"""
from __future__ import annotations

from typing import Any

from mvinverse_ros import topics
from mvinverse_ros.conversions.encoding import png_bytes_many, png_map_msg, unit16_pixels
from mvinverse_ros.conversions.factory import MessageFactory, header_msg
from mvinverse_ros.conversions.images import rgb_image_msg
from mvinverse_ros.conversions.materials import material_maps_msg
from mvinverse_ros.conversions.pointcloud import cloud_msg
from mvinverse_ros.types import MaterialCloud, MaterialMaps, WindowResult
from mvinverse_ros.visualize import normal_to_rgb8, unit_to_uint8


def _image_topic_msgs(factory: MessageFactory, materials: Any, maps: MaterialMaps) -> list[tuple[str, Any]]:
    """(topic, Image) for every per-pixel output topic of one frame.

    The float topics carry the MaterialMaps message's own images; the visual topics add rgb8
    renderings for RViz, which cannot display 32FC3.
    """
    return [
        (topics.ALBEDO, materials.albedo),
        (topics.ROUGHNESS, materials.roughness),
        (topics.METALLIC, materials.metallic),
        (topics.NORMAL, materials.normal),
        (topics.NORMAL_VISUAL, rgb_image_msg(factory, normal_to_rgb8(maps.normal), materials.header)),
        (topics.SHADING, materials.shading),
        (topics.SHADING_VISUAL, rgb_image_msg(factory, unit_to_uint8(maps.shading), materials.header)),
    ]


MAP_ENCODINGS = ("raw", "png", "raw+png")


def _png_topic_msgs(factory: MessageFactory, header: Any, maps: MaterialMaps) -> list[tuple[str, Any]]:
    """(`<topic>/compressed`, CompressedImage PNG) for every per-pixel output topic of one frame."""
    planes = [
        (topics.ALBEDO, "rgb8", unit_to_uint8(maps.albedo)),
        (topics.ROUGHNESS, "mono16", unit16_pixels(maps.roughness)),
        (topics.METALLIC, "mono16", unit16_pixels(maps.metallic)),
        (topics.NORMAL, "rgb16", unit16_pixels(maps.normal * 0.5 + 0.5)),
        (topics.NORMAL_VISUAL, "rgb8", normal_to_rgb8(maps.normal)),
        (topics.SHADING, "rgb16", unit16_pixels(maps.shading)),
        (topics.SHADING_VISUAL, "rgb8", unit_to_uint8(maps.shading)),
    ]
    encoded = png_bytes_many([pixels for _, _, pixels in planes])
    return [(topics.compressed(topic), png_map_msg(factory, png, encoding, header))
            for (topic, encoding, _), png in zip(planes, encoded)]


def cloud_output_msg(factory: MessageFactory, cloud: MaterialCloud, fixed_frame: str, stamp_ns: int) -> tuple[str, Any]:
    """(topic, PointCloud2) of the fused cloud in `fixed_frame` at `stamp_ns`."""
    return topics.CLOUD, cloud_msg(factory, cloud, header_msg(factory, stamp_ns, fixed_frame))


def window_output_msgs(factory: MessageFactory, result: WindowResult, cloud: MaterialCloud | None = None,
                       fixed_frame: str = "", with_inference_time: bool = True, map_encoding: str = "raw",
                       with_materials: bool = True) -> list[tuple[str, Any]]:
    """(topic, message) pairs of everything a window publishes, in publish order.

    For each published frame: its image topics, then its MaterialMaps, all stamped with the
    frame's stamp and frame_id. Then, when `cloud` is given and not empty, the fused cloud in
    `fixed_frame`, stamped with the window's newest frame (which both publish policies publish):
    the cloud then shares its stamp with the newest maps that went into it, and tf knows the
    fixed frame at that stamp (the frame's pose was looked up there).

    Args:
        factory: builds the messages (rosbags or rclpy).
        result: the engine's answer for the window.
        cloud: the fused map to publish with this window, or None.
        fixed_frame: the cloud's frame_id (tf.fixed_frame).
        with_inference_time: MaterialMaps.inference_time carries the window's network time; False
            writes 0, the only wall-clock field, so that offline output is reproducible byte for byte.
        map_encoding: 'raw', 'png' or 'raw+png' (see the module docstring).
        with_materials: also the MaterialMaps message (every map once more, as raw Images).

    Returns:
        (topic, message) pairs; each topic's message type is topics.output_type(topic).

    Raises:
        ValueError: an unknown map_encoding.
    """
    if map_encoding not in MAP_ENCODINGS:
        raise ValueError(f"map_encoding must be one of {', '.join(MAP_ENCODINGS)}, got {map_encoding!r}")
    stamps = [frame.stamp_ns for frame in result.window.frames]
    inference_seconds = result.inference_seconds if with_inference_time else 0.0
    outputs: list[tuple[str, Any]] = []
    for index, maps in zip(result.window.publish, result.maps):
        frame = result.window.frames[index]
        materials = material_maps_msg(factory, frame, maps, stamps, index, inference_seconds)
        if "raw" in map_encoding:
            outputs.extend(_image_topic_msgs(factory, materials, maps))
        if "png" in map_encoding:
            outputs.extend(_png_topic_msgs(factory, header_msg(factory, frame.stamp_ns, frame.frame_id), maps))
        if with_materials:
            outputs.append((topics.MATERIALS, materials))
    if cloud is not None and len(cloud) > 0:
        outputs.append(cloud_output_msg(factory, cloud, fixed_frame, max(stamps)))
    return outputs
