"""The ROS 2 perception node: a thin rclpy adapter over PerceptionPipeline.

Subscription callbacks only decode a synchronized set of messages into a Frame (with its tf2 pose
at the image stamp) and hand any window it completes to a bounded queue; one worker thread runs
the network and publishes. A slow network therefore drops stale windows (counted) instead of
letting latency grow. It is a lifecycle node: configure loads the model, activate subscribes,
deactivate unsubscribes and frees GPU memory, cleanup drops the model.
"""
from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections import Counter
from typing import Any

import message_filters
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType, JumpThreshold
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from tf2_ros import Buffer, TransformException, TransformListener

from mvinverse_ros.srv import QueryMaterials

from mvinverse_ros import topics
from mvinverse_ros.conversions.factory import header_msg, stamp_to_ns
from mvinverse_ros.conversions.frames import NO_TRANSFORM, RESIZED_CAMERA_INFO, RESIZED_DEPTH, frame_from_messages
from mvinverse_ros.conversions.outputs import window_output_msgs
from mvinverse_ros.conversions.query import query_response_fields, request_points
from mvinverse_ros.geometry.query import query_materials
from mvinverse_ros.geometry.transforms import TransformError, matrix_from_translation_quaternion
from mvinverse_ros.params import (
    ParameterError, ParameterSpec, PerceptionParams, build_params, coerce, default_params_file, parameter_specs,
    read_params_file, to_flat,
)
from mvinverse_ros.pipeline import PerceptionPipeline
from mvinverse_ros.ros.images import CvBridgeImageDecoder
from mvinverse_ros.ros.messages import RclpyMessageFactory
from mvinverse_ros.runtime.diagnostics import RunFigures, SilenceWatch, TopicActivity, health, silence_hint
from mvinverse_ros.runtime.parameters import LIVE_PARAMETERS, decide_change
from mvinverse_ros.runtime.time_jumps import BackwardsStamps
from mvinverse_ros.runtime.worker import Worker
from mvinverse_ros.types import Window

NODE_NAME = "mvinverse"
DEFAULT_MAP_FILE = "mvinverse_map.ply"  # what ~/save_map writes when fusion.save_map is ''

NO_INPUT_HINT_SECONDS = 5.0   # steady-clock silence after activation before the node explains what it waits for
HINT_CHECK_PERIOD = 1.0       # s between checks whether that hint is due
DIAGNOSTICS_PERIOD = 1.0      # s between /diagnostics messages
LOG_THROTTLE = 5.0            # s between repeats of one warning

_PARAMETER_TYPES = {
    str: ParameterType.PARAMETER_STRING,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    bool: ParameterType.PARAMETER_BOOL,
    list[str]: ParameterType.PARAMETER_STRING_ARRAY,
}

# Where a parameter's value came from, as ParameterError names it.
_PARAMETER_SOURCE = "node parameter"


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The schema's type, description and allowed values as `ros2 param describe` shows them.

    Numeric ranges become integer_range / floating_point_range, so `ros2 param set` refuses a value
    outside them; choices and patterns are named in additional_constraints, with whether the value
    changes live or is read on configure, and checked when set (runtime.parameters).
    """
    allowed = spec.allowed()
    when = "changes live" if spec.name in LIVE_PARAMETERS else "read on configure (refused while active)"
    descriptor = ParameterDescriptor(
        name=spec.name, type=_PARAMETER_TYPES[spec.type], description=spec.description,
        additional_constraints=f"{allowed}; {when}" if allowed else when)
    if spec.low is not None and spec.high is not None:
        if spec.type is int:
            descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        elif spec.type is float:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                                  to_value=float(spec.high), step=0.0)]
    return descriptor


# What the node publishes (conversions.outputs): every map raw (float, for reliable subscribers) and as PNG
# on <topic>/compressed (small enough for best-effort ones such as RViz); MaterialMaps on request.
MAP_ENCODING = "raw+png"
_PUBLISHED = [*topics.OUTPUT_TYPES, *(topics.compressed(name) for name in topics.IMAGE_ENCODINGS)]


def _node_relative(topic: str) -> str:
    """An output topic relative to the node (~/albedo), so the node's namespace applies."""
    return "~/" + topic.removeprefix(topics.NAMESPACE + "/")


class _ForwardToRosLogger(logging.Handler):
    """Routes the ROS-free core's Python logging to the node's logger, throttled per message."""

    def __init__(self, logger: Any) -> None:
        super().__init__(logging.INFO)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        log = self._logger.warning if record.levelno >= logging.WARNING else self._logger.debug
        log(record.getMessage(), throttle_duration_sec=LOG_THROTTLE)


def _logged_transition(callback):
    """Log the exception behind a failed transition (rclpy turns it into a silent ERROR)."""

    @functools.wraps(callback)
    def transition(self, state):
        try:
            return callback(self, state)
        except Exception as err:
            self.get_logger().error(f"{callback.__name__} failed: {type(err).__name__}: {err}")
            raise

    return transition


class PerceptionNode(LifecycleNode):
    """MVInverse material maps and a fused material cloud from synchronized camera streams."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._declare_parameters()
        self.factory = RclpyMessageFactory()
        self.decoder = CvBridgeImageDecoder(self.factory)
        self.params: PerceptionParams | None = None
        self.pipeline: PerceptionPipeline | None = None
        self.figures = RunFigures()
        self.worker: Worker[Window] = Worker(self._run_window, self._window_failed, name="mvinverse-worker")
        self._outputs: dict[str, Any] = {}
        # Not `_services`: that is rclpy.Node's own list, which the executor serves (parameter and lifecycle services).
        self._map_services: list[Any] = []
        self._filters: list[Any] = []
        self._synchronizers: list[Any] = []
        self._topic_counts: Counter[str] = Counter()
        self._stamps = BackwardsStamps()
        self._tf_buffer: Buffer | None = None
        self._tf_listener: TransformListener | None = None
        self._timers_group = MutuallyExclusiveCallbackGroup()
        # Wall-clock timers: with use_sim_time, ROS time stands still until /clock arrives.
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self._publish_diagnostics,
                                                    callback_group=self._timers_group, clock=self._steady_clock)
        self._silence = SilenceWatch(NO_INPUT_HINT_SECONDS)
        self._hint_timer = self.create_timer(HINT_CHECK_PERIOD, self._hint_if_silent,
                                             callback_group=self._timers_group, clock=self._steady_clock)
        self._active = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._jump_handler = None
        self._core_log = _ForwardToRosLogger(self.get_logger())
        logging.getLogger("mvinverse_ros").addHandler(self._core_log)

    # ----------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        """Declare every parameter of the schema; defaults come from the package's perception.yaml."""
        defaults = read_params_file(default_params_file())
        for spec in parameter_specs():
            descriptor = _descriptor(spec)
            value = coerce(spec, defaults[spec.name]) if spec.name in defaults else None
            if value is None or value == []:  # an empty list would be typed as a byte array
                self.declare_parameter(spec.name, Parameter.Type(descriptor.type), descriptor)
            else:
                self.declare_parameter(spec.name, value, descriptor)

    def read_params(self) -> PerceptionParams:
        """The typed parameters as currently set (checked against the schema).

        Raises:
            ParameterError: a value outside the schema.
        """
        values = {}
        for spec in parameter_specs():
            param = self.get_parameter_or(spec.name, Parameter(spec.name, value=[]))
            values[spec.name] = [] if param.value is None else param.value
        return build_params(values, dict.fromkeys(values, _PARAMETER_SOURCE))

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse, with the reason, what the schema refuses or what cannot change while active; apply live ones."""
        changes = {p.name: [] if p.value is None else p.value for p in parameters}
        active = self._active and self.params is not None
        decision = decide_change(to_flat(self.params) if active else {}, changes, active)
        if decision.params is not None:
            self.params = decision.params
            self.pipeline.update_params(decision.params)
            self.get_logger().info(f"applied {', '.join(sorted(changes))}")
        return SetParametersResult(successful=decision.accepted, reason=decision.refusal)

    # ----------------------------------------------------------------- lifecycle
    @_logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = self.read_params()
        except ParameterError as err:
            self.get_logger().error(f"error: {err}")
            return TransitionCallbackReturn.FAILURE
        from mvinverse_ros.pipeline import engine_from_params

        try:
            engine, loaded = engine_from_params(self.params.model)
        except Exception as err:  # any loading failure leaves the node unconfigured, with the reason
            self.get_logger().error(f"could not load the model: {err}")
            return TransitionCallbackReturn.FAILURE
        untrained = loaded.untrained_warning()
        if untrained:
            self.get_logger().warning(untrained)
        self.get_logger().info(f"model {loaded.preset} from {loaded.source} on {engine.device}")
        try:
            self.pipeline = PerceptionPipeline(self.params, engine)
        except (ValueError, OSError) as err:  # fusion.load_map names a PLY that cannot be read or used
            self.get_logger().error(f"error: fusion.load_map: {err}")
            return TransitionCallbackReturn.FAILURE
        for name in _PUBLISHED:
            if name == topics.MATERIALS and not self.params.execution.publish_materials:
                continue
            cls = self.factory.message_class(topics.output_type(name))
            self._outputs[name] = self.create_lifecycle_publisher(cls, _node_relative(name), 5)
        self._map_services = [
            self.create_service(QueryMaterials, "~/query_materials", self._query_materials),
            self.create_service(Trigger, "~/clear_map", self._clear_map),
            self.create_service(Trigger, "~/save_map", self._save_map),
        ]
        self._tf_buffer = Buffer(cache_time=Duration(seconds=max(10.0, 4 * self.params.window.reset_gap)), node=self)
        self._tf_listener = TransformListener(self._tf_buffer, self)
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.worker.start(self.params.execution.queue_size)
        self._subscribe(self.params)
        self._jump_handler = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1), on_clock_change=False),
            post_callback=self._on_time_jump)
        self._silence.start(time.monotonic())
        self._active = True
        return super().on_activate(state)  # enables the lifecycle publishers

    @_logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._silence.stop()
        self._unsubscribe()
        self.worker.stop()
        if self._jump_handler is not None:
            self._jump_handler.unregister()
            self._jump_handler = None
        self.pipeline.reset()
        self.pipeline.engine.release()  # frees GPU memory until the next activation
        return super().on_deactivate(state)  # disables the lifecycle publishers

    @_logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_configuration()
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._silence.stop()
        self._unsubscribe()
        self.worker.stop()
        self._release_configuration()
        return TransitionCallbackReturn.SUCCESS

    def _release_configuration(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs.clear()
        for service in self._map_services:
            self.destroy_service(service)
        self._map_services.clear()
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        self._tf_listener = self._tf_buffer = None
        if self.pipeline is not None:
            self.pipeline.engine.release()
        self.pipeline = None

    # ----------------------------------------------------------------- inputs
    def _input_qos(self, params: PerceptionParams) -> QoSProfile:
        if params.inputs.reliability == "reliable":
            return QoSProfile(depth=max(5, params.inputs.sync_queue_size), reliability=ReliabilityPolicy.RELIABLE)
        return qos_profile_sensor_data

    def _subscribe(self, params: PerceptionParams) -> None:
        inputs = params.inputs
        qos = self._input_qos(params)
        compressed = inputs.transport == "compressed"
        for index, camera in enumerate(inputs.cameras):
            image_topic = inputs.image_topics[index]
            streams = [(CompressedImage, topics.compressed(image_topic)) if compressed else (Image, image_topic),
                       (CameraInfo, inputs.camera_info_topics[index])]
            depth_topic = inputs.depth_topics[index] if inputs.depth_topics else ""
            if depth_topic:
                streams.append((Image, depth_topic))
            subscribers = []
            for msg_type, topic in streams:
                # qos_overrides.<topic>.subscription.* parameters (given at start) override the profile
                subscriber = message_filters.Subscriber(
                    self, msg_type, topic, qos_profile=qos,
                    qos_overriding_options=QoSOverridingOptions.with_default_policies())
                subscriber.registerCallback(functools.partial(self._count_topic, subscriber.topic))
                subscribers.append(subscriber)
            sync = message_filters.ApproximateTimeSynchronizer(subscribers, inputs.sync_queue_size, inputs.sync_slop)
            sync.registerCallback(functools.partial(self._on_synchronized, camera))
            self._filters.extend(subscribers)
            self._synchronizers.append(sync)
            self.get_logger().info(f"camera '{camera}': {', '.join(s.topic for s in subscribers)} "
                                   f"({inputs.reliability}, slop {inputs.sync_slop} s)")

    def _unsubscribe(self) -> None:
        for subscriber in self._filters:
            self.destroy_subscription(subscriber.sub)
        self._filters.clear()
        self._synchronizers.clear()

    def _count_topic(self, topic: str, _msg: Any) -> None:
        self._topic_counts[topic] += 1
        self._silence.message(time.monotonic())

    def _hint_if_silent(self) -> None:
        """Explain why no synchronized frame has arrived after NO_INPUT_HINT_SECONDS of wall time."""
        if not self._silence.due(time.monotonic()):
            return
        activity = []
        for subscriber in self._filters:
            publishers = self.get_publishers_info_by_topic(subscriber.topic)
            reliabilities = frozenset(p.qos_profile.reliability.name.lower() for p in publishers)
            activity.append(TopicActivity(subscriber.topic, len(publishers), reliabilities,
                                          self._topic_counts[subscriber.topic]))
        self.get_logger().warning(silence_hint(activity, self.params.inputs.reliability), throttle_duration_sec=30.0)

    def _lookup_pose(self, frame_id: str, stamp_ns: int) -> np.ndarray:
        """4x4 pose of `frame_id` in the fixed frame at `stamp_ns` (tf2, waiting up to tf.lookup_timeout).

        Raises:
            TransformError: tf2 could not give it (the frame then gets maps but no cloud).
        """
        try:
            stamped = self._tf_buffer.lookup_transform(
                self.params.tf.fixed_frame, frame_id, Time(nanoseconds=stamp_ns),
                timeout=Duration(seconds=self.params.tf.lookup_timeout))
        except TransformException as err:
            raise TransformError(f"{self.params.tf.fixed_frame} <- {frame_id}: {err}") from err
        t, q = stamped.transform.translation, stamped.transform.rotation
        return matrix_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    # ----------------------------------------------------------------- map services
    def _query_materials(self, request: Any, response: Any) -> Any:
        """Materials of the fused map at the request's points, normals in the request's frame."""
        cloud = self.pipeline.cloud() if self.pipeline is not None else None
        if cloud is None:
            response.success, response.message = False, "no map: fusion.enabled is false"
            return response
        try:
            request_to_fixed = self._lookup_pose(request.header.frame_id, stamp_to_ns(request.header.stamp))
            answer = query_materials(cloud, request_points(request), request.radius, request_to_fixed)
        except (TransformError, ValueError) as err:
            response.success, response.message = False, str(err)
            return response
        for name, value in query_response_fields(self.factory, answer).items():
            setattr(response, name, value)
        return response

    def _clear_map(self, _request: Any, response: Any) -> Any:
        if self.pipeline is None:
            response.success, response.message = False, "not configured"
            return response
        self.pipeline.clear_map()
        response.success, response.message = True, "map cleared"
        return response

    def _save_map(self, _request: Any, response: Any) -> Any:
        path = self.params.fusion.save_map or DEFAULT_MAP_FILE
        try:
            saved = self.pipeline is not None and self.pipeline.save_map(path)
        except (ValueError, OSError) as err:
            response.success, response.message = False, f"could not write {path}: {err}"
            return response
        response.success = bool(saved)
        response.message = f"wrote {path}" if saved else "no map: fusion is disabled or the node is not configured"
        return response

    def _on_synchronized(self, camera: str, image: Any, camera_info: Any, depth: Any = None) -> None:
        """Decode one synchronized set and hand a completed window to the worker; never raises."""
        try:
            self._accept(camera, image, camera_info, depth)
        except Exception as err:  # a bad frame must not take the node down; it is counted and logged
            self.figures.counters["frame_errors"] += 1
            self.get_logger().error(f"{camera}: frame dropped: {type(err).__name__}: {err}",
                                    throttle_duration_sec=LOG_THROTTLE)

    def _accept(self, camera: str, image: Any, camera_info: Any, depth: Any) -> None:
        if self._stamps.observe(camera, stamp_to_ns(image.header.stamp)):
            self._reset_after_time_jump()  # a replayed bag restarting without a /clock jump
        self.figures.counters["frames_in"] += 1
        self.figures.inputs.add(time.monotonic())
        self._silence.frame()
        frame, reasons = frame_from_messages(image, camera_info, depth, camera, self._lookup_pose, self.decoder,
                                             max_pixels=self.params.inputs.max_pixels)
        self.figures.counters.update(reasons)
        if NO_TRANSFORM in reasons:
            self.get_logger().warning(
                f"{camera}: no transform {self.params.tf.fixed_frame} <- {image.header.frame_id} at the image stamp "
                "(maps still published, no cloud). Replaying a bag? Play /tf_static as transient_local "
                "(ros2 bag play --qos-profile-overrides-path) and use --clock with use_sim_time:=true",
                throttle_duration_sec=30.0)
        for reason in {RESIZED_CAMERA_INFO, RESIZED_DEPTH} & set(reasons):
            self.get_logger().warning(
                f"{camera}: {'camera_info' if reason == RESIZED_CAMERA_INFO else 'depth'} has another size than "
                f"the image (same aspect): used scaled, counted as {reason}; check the driver's resolution settings",
                throttle_duration_sec=30.0)
        if frame is None:
            return
        window = self.pipeline.submit(frame)
        if window is not None and self.worker.put(window):
            self.get_logger().info("inference is slower than input: dropped the oldest waiting window",
                                   throttle_duration_sec=LOG_THROTTLE)

    def _on_time_jump(self, _jump: Any) -> None:
        """The clock went backwards (bag loop with --clock, sim reset): no earlier stamp is comparable."""
        self._stamps.forget()
        self._reset_after_time_jump()

    def _reset_after_time_jump(self) -> None:
        """Forget TF, waiting windows, the window frames and the map."""
        self.figures.counters["time_resets"] += 1
        self.get_logger().warning("time jumped backwards: clearing TF buffer, windows and the fused map",
                                  throttle_duration_sec=LOG_THROTTLE)
        if self._tf_buffer is not None:
            self._tf_buffer.clear()
        self.worker.clear()
        if self.pipeline is not None:
            self.pipeline.reset()

    # ----------------------------------------------------------------- worker
    def _run_window(self, window: Window) -> None:
        """The worker's job: run the network on `window` and publish its maps (and the cloud when due)."""
        output = self.pipeline.process(window)
        self.figures.inference.add(time.monotonic(), float(output.result.inference_seconds))
        cloud = self.pipeline.cloud() if output.cloud_due else None
        params = self.params
        for topic, message in window_output_msgs(self.factory, output.result, cloud, params.tf.fixed_frame,
                                                 map_encoding=MAP_ENCODING,
                                                 with_materials=params.execution.publish_materials):
            self._outputs[topic].publish(message)
            if topic == topics.ALBEDO:
                self.figures.counters["frames_published"] += 1
                age_ns = self.get_clock().now().nanoseconds - stamp_to_ns(message.header.stamp)
                self.figures.latency.add(time.monotonic(), age_ns * 1e-9)
            elif topic == topics.CLOUD:
                self.figures.counters["clouds_published"] += 1

    def _window_failed(self, window: Window, err: Exception) -> None:
        self.get_logger().error(f"window {window.window_id} failed: {type(err).__name__}: {err}",
                                throttle_duration_sec=LOG_THROTTLE)

    # ----------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        level, message = health(self.worker.running, self.worker.alive, self.figures.inputs.rate(now))
        pipeline = self.pipeline
        values = self.figures.values(now, self.worker.dropped, self.worker.failures,
                                     pipeline.counters if pipeline else None,
                                     pipeline.window_counters() if pipeline else None)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: perception",
                                  hardware_id=self.get_fully_qualified_name(), level=bytes([level]), message=message,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        header = header_msg(self.factory, self.get_clock().now().nanoseconds, "")
        self._diagnostics_pub.publish(DiagnosticArray(header=header, status=[status]))

    def destroy_node(self) -> None:
        logging.getLogger("mvinverse_ros").removeHandler(self._core_log)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Run `ros2 run mvinverse_ros perception_node`.

    The node configures and activates itself unless --manual-lifecycle leaves that to a lifecycle manager.
    """
    args = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-lifecycle", action="store_true",
                        help="stay unconfigured; a lifecycle manager drives configure/activate")
    options, _ = parser.parse_known_args(rclpy.utilities.remove_ros_args(args)[1:])
    rclpy.init(args=args)
    node = PerceptionNode()
    executor = MultiThreadedExecutor(num_threads=3)  # tf2 listener runs while a callback waits on lookups
    executor.add_node(node)
    try:
        if not options.manual_lifecycle:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                return 1
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
