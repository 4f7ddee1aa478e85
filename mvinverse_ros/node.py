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
import threading
import time
from collections import Counter
from typing import Any

import message_filters
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_ros import Buffer, TransformException, TransformListener

from mvinverse_ros import topics
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.conversions.materials import image_topic_msgs, window_result_msgs
from mvinverse_ros.conversions.pointcloud import cloud_msg
from mvinverse_ros.geometry.transforms import TransformError, matrix_from_translation_quaternion
from mvinverse_ros.params import (
    ParameterError, PerceptionParams, build_params, coerce, default_params_file, parameter_specs, read_params_file,
)
from mvinverse_ros.pipeline import PerceptionPipeline
from mvinverse_ros.conversions.frames import NO_TRANSFORM, frame_from_messages
from mvinverse_ros.runtime.latest_queue import LatestQueue
from mvinverse_ros.ros.messages import RclpyMessageFactory
from mvinverse_ros.runtime.stats import RecentSamples
from mvinverse_ros.types import Window, WindowResult

NODE_NAME = "mvinverse"
NO_INPUT_HINT_SECONDS = 5.0   # silence after activation before the node explains what it waits for
DIAGNOSTICS_PERIOD = 1.0      # s between /diagnostics messages
LOG_THROTTLE = 5.0            # s between repeats of one warning

_PARAMETER_TYPES = {
    str: ParameterType.PARAMETER_STRING,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    bool: ParameterType.PARAMETER_BOOL,
    list[str]: ParameterType.PARAMETER_STRING_ARRAY,
}

# Output topic (relative to the node, i.e. ~/albedo) of every published stream.
_OUTPUTS = {name: "~/" + name.removeprefix(topics.NAMESPACE + "/") for name in topics.OUTPUT_TYPES}


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
        self.params: PerceptionParams | None = None
        self.pipeline: PerceptionPipeline | None = None
        self.counters: Counter[str] = Counter()
        self._inputs = RecentSamples()
        self._latency = RecentSamples()       # image stamp -> maps published, seconds
        self._inference = RecentSamples()     # network time per window, seconds
        self._queue: LatestQueue[Window] | None = None
        self._worker: threading.Thread | None = None
        self._pipeline_lock = threading.Lock()  # process() vs reset() (time jumps)
        self._busy = threading.Event()          # set while the worker runs a window
        self._outputs: dict[str, Any] = {}
        self._filters: list[Any] = []
        self._synchronizers: list[Any] = []
        self._topic_counts: Counter[str] = Counter()
        self._last_stamp_ns: dict[str, int] = {}
        self._tf_buffer: Buffer | None = None
        self._tf_listener: TransformListener | None = None
        self._timers_group = MutuallyExclusiveCallbackGroup()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self._publish_diagnostics,
                                                    callback_group=self._timers_group)
        self._hint_timer = None
        self._jump_handler = None
        self._active_since = 0.0
        self._core_log = _ForwardToRosLogger(self.get_logger())
        logging.getLogger("mvinverse_ros").addHandler(self._core_log)

    # ----------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        """Declare every parameter of the schema; defaults come from the package's perception.yaml."""
        defaults = read_params_file(default_params_file())
        for spec in parameter_specs():
            descriptor = ParameterDescriptor(
                name=spec.name, type=_PARAMETER_TYPES[spec.type], description=spec.description,
                additional_constraints="read on configure")
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
        return build_params(values)

    # ----------------------------------------------------------------- lifecycle
    @_logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = self.read_params()
            self._check_inputs(self.params)
        except ParameterError as err:
            self.get_logger().error(f"bad parameters: {err}")
            return TransitionCallbackReturn.FAILURE
        from mvinverse_ros.pipeline import engine_from_params

        try:
            engine, loaded = engine_from_params(self.params.model)
        except Exception as err:  # any loading failure leaves the node unconfigured, with the reason
            self.get_logger().error(f"could not load the model: {err}")
            return TransitionCallbackReturn.FAILURE
        if not loaded.trained:
            self.get_logger().warning(f"model '{loaded.preset}' has random weights ({loaded.source}): "
                                      "maps are meaningless; set model.checkpoint")
        self.get_logger().info(f"model {loaded.preset} from {loaded.source} on {engine.device}")
        self.pipeline = PerceptionPipeline(self.params, engine)
        for name, msg_type in topics.OUTPUT_TYPES.items():
            cls = self.factory.message_class(msg_type)
            self._outputs[name] = self.create_publisher(cls, _OUTPUTS[name], 5)
        self._tf_buffer = Buffer(cache_time=Duration(seconds=max(10.0, 4 * self.params.window.reset_gap)), node=self)
        self._tf_listener = TransformListener(self._tf_buffer, self)
        return TransitionCallbackReturn.SUCCESS

    def _check_inputs(self, params: PerceptionParams) -> None:
        inputs = params.inputs
        counts = {len(inputs.cameras), len(inputs.image_topics), len(inputs.camera_info_topics)}
        if len(counts) != 1 or len(inputs.depth_topics) not in (0, len(inputs.cameras)):
            raise ParameterError("inputs.cameras, image_topics, camera_info_topics (and depth_topics, if given) "
                                 "need one entry per camera")
        if inputs.transport not in ("raw", "compressed"):
            raise ParameterError(f"inputs.transport must be raw or compressed, got {inputs.transport!r}")
        if inputs.reliability not in ("best_effort", "reliable"):
            raise ParameterError(f"inputs.reliability must be best_effort or reliable, got {inputs.reliability!r}")

    @_logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._queue = LatestQueue(max(1, self.params.execution.queue_size))
        self._worker = threading.Thread(target=self._work, args=(self._queue,), name="mvinverse-worker", daemon=True)
        self._worker.start()
        self._subscribe(self.params)
        self._jump_handler = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1), on_clock_change=False),
            post_callback=self._on_time_jump)
        self._active_since = time.monotonic()
        self._hint_timer = self.create_timer(NO_INPUT_HINT_SECONDS, self._hint_if_silent,
                                             callback_group=self._timers_group)
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        if self._hint_timer is not None:
            self.destroy_timer(self._hint_timer)
            self._hint_timer = None
        if self._jump_handler is not None:
            self._jump_handler.unregister()
            self._jump_handler = None
        self.pipeline.reset()
        self.pipeline.engine.release()  # frees GPU memory until the next activation
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_configuration()
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        self._release_configuration()
        return TransitionCallbackReturn.SUCCESS

    def _release_configuration(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs.clear()
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
                subscriber = message_filters.Subscriber(self, msg_type, topic, qos_profile=qos)
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

    def _hint_if_silent(self) -> None:
        """Explain, once per silence, why no synchronized frame has arrived yet."""
        if self.counters["frames_in"] > 0:
            return
        lines = []
        best_effort_publishers = False
        for subscriber in self._filters:
            publishers = self.get_publishers_info_by_topic(subscriber.topic)
            kinds = sorted({p.qos_profile.reliability.name.lower() for p in publishers})
            best_effort_publishers |= "best_effort" in kinds
            lines.append(f"{subscriber.topic}: {len(publishers)} publisher(s) {kinds or ''}, "
                         f"{self._topic_counts[subscriber.topic]} message(s) received")
        if self.params.inputs.reliability == "reliable" and best_effort_publishers:
            hint = "inputs.reliability is 'reliable', which hears no best_effort publisher: set it to best_effort"
        elif not any(self._topic_counts.values()):
            hint = "nothing received: check the topic names (namespace, remappings) and that a publisher runs"
        else:
            hint = ("messages arrive but never pair: check that their stamps agree within inputs.sync_slop and "
                    "that every listed topic publishes (set an unused depth topic to '')")
        self.get_logger().warning(f"no synchronized frame yet. {hint}.\n  " + "\n  ".join(lines),
                                  throttle_duration_sec=30.0)

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

    def _on_synchronized(self, camera: str, image: Any, camera_info: Any, depth: Any = None) -> None:
        """Decode one synchronized set and hand a completed window to the worker; never raises."""
        try:
            self._accept(camera, image, camera_info, depth)
        except Exception as err:  # a bad frame must not take the node down; it is counted and logged
            self.counters["frame_errors"] += 1
            self.get_logger().error(f"{camera}: frame dropped: {type(err).__name__}: {err}",
                                    throttle_duration_sec=LOG_THROTTLE)

    def _accept(self, camera: str, image: Any, camera_info: Any, depth: Any) -> None:
        stamp_ns = Time.from_msg(image.header.stamp).nanoseconds
        if stamp_ns < self._last_stamp_ns.get(camera, -1):
            self._on_time_jump(None)  # a replayed bag restarting without a /clock jump
        self._last_stamp_ns[camera] = stamp_ns
        self.counters["frames_in"] += 1
        self._inputs.add(time.monotonic())
        frame, reasons = frame_from_messages(image, camera_info, depth, camera, self._lookup_pose)
        self.counters.update(reasons)
        if NO_TRANSFORM in reasons:
            self.get_logger().warning(
                f"{camera}: no transform {self.params.tf.fixed_frame} <- {image.header.frame_id} at the image stamp "
                "(maps still published, no cloud). Replaying a bag? Play /tf_static as transient_local "
                "(ros2 bag play --qos-profile-overrides-path) and use --clock with use_sim_time:=true",
                throttle_duration_sec=30.0)
        if frame is None:
            return
        window = self.pipeline.submit(frame)
        if window is not None and self._queue.put(window):
            self.get_logger().info("inference is slower than input: dropped the oldest waiting window",
                                   throttle_duration_sec=LOG_THROTTLE)

    def _on_time_jump(self, _jump: Any) -> None:
        """Time went backwards (bag loop): forget TF, waiting windows, the window frames and the map."""
        self.counters["time_resets"] += 1
        self.get_logger().warning("time jumped backwards: clearing TF buffer, windows and the fused map",
                                  throttle_duration_sec=LOG_THROTTLE)
        self._last_stamp_ns.clear()
        if self._tf_buffer is not None:
            self._tf_buffer.clear()
        if self._queue is not None:
            self._queue.clear()
        if self.pipeline is not None:
            with self._pipeline_lock:
                self.pipeline.reset()

    # ----------------------------------------------------------------- worker
    def _stop_worker(self) -> None:
        if self._queue is not None:
            self._queue.close()
        if self._worker is not None:
            self._worker.join()
        self._worker = self._queue = None

    def _work(self, queue: LatestQueue[Window]) -> None:
        """Run windows until the queue closes; one failing window is counted and logged, never fatal."""
        while (window := queue.get()) is not None:
            self._busy.set()
            try:
                with self._pipeline_lock:
                    output = self.pipeline.process(window)
                self._inference.add(time.monotonic(), float(output.result.inference_seconds))
                self._publish_maps(output.result)
                if output.cloud_due:
                    self._publish_cloud(window)
            except Exception as err:  # keep serving later windows
                self.counters["window_errors"] += 1
                self.get_logger().error(f"window {window.window_id} failed: {type(err).__name__}: {err}",
                                        throttle_duration_sec=LOG_THROTTLE)
            finally:
                self._busy.clear()

    @property
    def queued_windows(self) -> int:
        """Windows waiting for the worker (never more than execution.queue_size)."""
        return len(self._queue) if self._queue is not None else 0

    @property
    def dropped_windows(self) -> int:
        """Windows dropped because the worker was behind, or discarded by a time jump."""
        return self._queue.dropped if self._queue is not None else 0

    @property
    def busy(self) -> bool:
        """Whether the worker is running a window right now."""
        return self._busy.is_set()

    def _publish_maps(self, result: WindowResult) -> None:
        """Each published frame's maps; the image topics carry the MaterialMaps' own images."""
        for (frame, maps), materials in zip(result.published(), window_result_msgs(self.factory, result)):
            for name, image in image_topic_msgs(self.factory, materials, maps).items():
                self._outputs[name].publish(image)
            self._outputs[topics.MATERIALS].publish(materials)
            self.counters["frames_published"] += 1
            self._latency.add(time.monotonic(), (self.get_clock().now().nanoseconds - frame.stamp_ns) * 1e-9)

    def _publish_cloud(self, window: Window) -> None:
        cloud = self.pipeline.cloud()
        if cloud is None or len(cloud) == 0:
            return
        header = header_msg(self.factory, window.frames[-1].stamp_ns, self.params.tf.fixed_frame)
        self._outputs[topics.CLOUD].publish(cloud_msg(self.factory, cloud, header))
        self.counters["clouds_published"] += 1

    # ----------------------------------------------------------------- diagnostics
    def diagnostic_values(self) -> dict[str, str]:
        """What /diagnostics reports, as strings (also handy in tests)."""
        now = time.monotonic()

        def ms(value: float | None) -> str:
            return "n/a" if value is None else f"{value * 1000.0:.1f}"

        values = {
            "input rate (Hz)": f"{self._inputs.rate(now):.2f}",
            "inference per window mean (ms)": ms(self._inference.mean(now)),
            "latency stamp->publish mean (ms)": ms(self._latency.mean(now)),
            "latency stamp->publish max (ms)": ms(self._latency.maximum(now)),
            "windows dropped (worker behind)": str(self.dropped_windows),
            "tf failures": str(self.counters["no_transform"]),
        }
        values.update({name: str(count) for name, count in sorted(self.counters.items())})
        if self.pipeline is not None:
            values.update({f"pipeline {k}": str(v) for k, v in sorted(self.pipeline.counters.items())})
            values.update({f"window {k}": str(v) for k, v in sorted(self.pipeline.window_counters().items())})
        return values

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: perception",
                                  hardware_id=self.get_fully_qualified_name())
        active = self._worker is not None
        silent = active and self._inputs.rate(time.monotonic()) == 0.0
        if not active:
            status.level, status.message = DiagnosticStatus.WARN, "inactive"
        elif self._worker is not None and not self._worker.is_alive():
            status.level, status.message = DiagnosticStatus.ERROR, "inference worker stopped"
        elif silent:
            status.level, status.message = DiagnosticStatus.WARN, "no input"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [KeyValue(key=k, value=v) for k, v in self.diagnostic_values().items()]
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
