"""Which parameter changes a running node takes, checked by the schema before ROS stores them.

ROS-free: the node's on-set-parameters callback asks `decide_change` and answers `ros2 param set`
with its refusal reason, or applies the accepted parameters at once (PerceptionPipeline.update_params).
Most parameters shape what configure builds (model, subscriptions, voxel map, queues); changing them
while active would leave the node running with values it does not use, so that is refused with the
way to change them instead.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mvinverse_ros.params import ParameterError, PerceptionParams, build_params, coerce, parameter_specs

# Parameters read again at every use, so a change takes effect on the next frame or window.
LIVE_PARAMETERS = frozenset({
    "window.stride", "window.publish", "window.min_translation", "window.min_rotation_deg", "window.min_interval",
    "fusion.max_depth", "fusion.pixel_stride", "fusion.save_map", "execution.publish_cloud_every",
    "tf.lookup_timeout",
})


@dataclass(frozen=True)
class ParameterChange:
    """The answer to a set of parameter changes.

    Attributes:
        params: the complete parameters with the changes applied, when the node is active and accepts
            them (None otherwise: nothing to apply now).
        refusal: why the changes are refused ('' when accepted); ROS reports it to the caller.
    """

    params: PerceptionParams | None = None
    refusal: str = ""

    @property
    def accepted(self) -> bool:
        """Whether the changes may be stored."""
        return not self.refusal


def decide_change(current: Mapping[str, Any], changes: Mapping[str, Any], active: bool,
                  source: str = "ros2 param set") -> ParameterChange:
    """Accept or refuse `changes` to the schema's parameters.

    Names outside the schema (use_sim_time, qos_overrides.*) are not this function's business and pass.
    While inactive each value is checked alone (several related parameters may be set one at a time);
    configure checks them together. While active only LIVE_PARAMETERS may change, and the result must
    pass the whole schema (e.g. window.stride <= window.size).

    Args:
        current: every schema parameter's current value, flat (`section.field` -> value).
        changes: the new values, flat; may hold names outside the schema.
        active: whether the node is active (configured and running).
        source: where the values come from, for the refusal message.

    Returns:
        The accepted parameters (when active) or the refusal reason.
    """
    specs = {one.name: one for one in parameter_specs()}
    ours = {name: value for name, value in changes.items() if name in specs}
    if not ours:
        return ParameterChange()
    try:
        if not active:
            for name, value in ours.items():
                checked = coerce(specs[name], value, source)
                if not isinstance(checked, list):
                    specs[name].check(checked, source)
            return ParameterChange()
        fixed = sorted(set(ours) - LIVE_PARAMETERS)
        if fixed:
            return ParameterChange(refusal=(
                f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} read on configure: deactivate, cleanup, "
                f"set, configure and activate to change {'it' if len(fixed) == 1 else 'them'} "
                f"(live while active: {', '.join(sorted(LIVE_PARAMETERS))})"))
        values = {**current, **ours}
        sources = {name: source for name in ours}
        return ParameterChange(params=build_params(values, sources))
    except ParameterError as err:
        return ParameterChange(refusal=str(err))
