"""StreamingEngine: cached per-frame work gives the same maps as recomputing every window in full.

Runs the small preset at a reduced long side over real 7-Scenes frames, windowed by the real
WindowPolicy (keyframes by pose, evictions as the window slides, a reset when the clock jumps back).
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mvinverse_ros.datasets.rgbd import load_7scenes
from mvinverse_ros.engine.preprocess import InferenceError, network_size
from mvinverse_ros.engine.streaming import StreamingEngine, full_recompute
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.engine.windowing import WindowPolicy
from mvinverse_ros.inference import predict
from mvinverse_ros.model import MVInverse, build_model, load_model, preset_config, save_checkpoint
from mvinverse_ros.model.checkpoint import LONG_SIDE_KEY
from mvinverse_ros.params import load_params
from mvinverse_ros.types import MAP_NAMES, Frame, Window

LONG_SIDE = 126  # 9x6 patches at 640x480: fast, still a multi-patch grid with detail features


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def with_active_blocks(model):
    """Give the residual branches weight, so decoder mistakes show above the 1e-5 tolerance.

    Freshly built LayerScales (1e-5) make every block nearly the identity, which would hide a
    decoder that mixes the wrong frames or tokens.
    """
    with torch.no_grad():
        for block in model.decoder:
            block.ls1.gamma.normal_(0, 0.5)
            block.ls2.gamma.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return with_active_blocks(build_model("small").eval())


@pytest.fixture(scope="module")
def kitchen_frames(sevenscenes_dir):
    """First 30 real 7-Scenes frames (10 Hz) with their poses."""
    sequence = load_7scenes(sevenscenes_dir, fps=10.0)
    poses = dict(sequence.poses)
    frames = []
    for sample in sequence.samples[:30]:
        image = cv2.cvtColor(cv2.imread(str(sample.color_path)), cv2.COLOR_BGR2RGB)
        frames.append(Frame(sample.stamp_ns, "kitchen_optical", image, camera_to_fixed=poses[sample.stamp_ns]))
    return frames


def max_abs_diff(maps_a, maps_b) -> float:
    return max(float(np.abs(getattr(a, n) - getattr(b, n)).max()) for a, b in zip(maps_a, maps_b) for n in MAP_NAMES)


class TokensThroughBlocks:
    """Counts the frames decoder block 0 processes and the tokens the last block outputs, per engine run."""

    def __init__(self, model):
        self.first_frames = self.last_tokens = 0
        self._handles = [
            model.decoder[0].register_forward_hook(self._first), model.decoder[-1].register_forward_hook(self._last)
        ]

    def _first(self, module, inputs, output):
        self.first_frames += output.shape[0]

    def _last(self, module, inputs, output):
        self.last_tokens += output.shape[0] * output.shape[1]

    def run(self, engine, window):
        self.first_frames = self.last_tokens = 0
        return engine.run(window)

    def remove(self):
        for handle in self._handles:
            handle.remove()


def test_streaming_equals_full_recompute_over_a_sliding_sequence(model, kitchen_frames):
    params = dataclasses.replace(load_params().window, size=3, min_translation=0.01, min_rotation_deg=1.0)
    policy = WindowPolicy(params)
    engine = StreamingEngine(model, device="cpu", dtype="fp32", long_side=LONG_SIDE)
    height, width = network_size(480, 640, LONG_SIDE)
    tokens_per_frame = model.config.decoder_registers + (height // 14) * (width // 14)
    # The real sequence, then the same frames again from the start (a bag loop: backwards clock).
    stream = kitchen_frames[:12] + kitchen_frames[:5]
    windows, worst, counted = [], 0.0, TokensThroughBlocks(model)
    for frame in stream:
        window = policy.push(frame)
        if window is None:
            continue
        encoded_before = engine.counters["frames_encoded"]
        result = counted.run(engine, window)
        # Block 0 ran for the newly encoded frames only; the last block output the published frame's tokens only.
        assert counted.first_frames == engine.counters["frames_encoded"] - encoded_before
        assert counted.last_tokens == tokens_per_frame
        assert len(result.maps) == 1 and result.maps[0].albedo.shape == (480, 640, 3)
        worst = max(worst, max_abs_diff(result.maps, full_recompute(model, window, LONG_SIDE)))
        assert engine.cached_frames == len(window.frames)
        windows.append(window)
    counted.remove()
    assert policy.counters["resets"] == 1
    assert len(windows) >= 6
    assert worst <= 1e-5
    # Per-frame work ran once per stay in the window: a frame is encoded when the previous window lacked it.
    expected, previous = 0, set()
    for window in windows:
        current = {f.stamp_ns for f in window.frames}
        expected += len(current - previous)
        previous = current
    assert engine.counters["frames_encoded"] == expected < sum(len(w.frames) for w in windows)
    assert engine.counters["evicted"] > 0
    # Block 1's attention ran for the frame pairs the previous window lacked: N^2 - (frames kept)^2.
    pairs, previous = 0, set()
    for window in windows:
        current = {f.stamp_ns for f in window.frames}
        pairs += len(current) ** 2 - len(current & previous) ** 2
        previous = current
    assert engine.counters["frame_pairs_attended"] == pairs < sum(len(w.frames) ** 2 for w in windows)


def test_publish_all_and_multiple_sources_keep_their_caches(model, kitchen_frames):
    engine = StreamingEngine(model, long_side=LONG_SIDE)
    left = tuple(dataclasses.replace(f, source="left") for f in kitchen_frames[0:9:3])
    right = tuple(dataclasses.replace(f, source="right") for f in kitchen_frames[1:10:3])
    for window in (Window(0, left, (0, 1, 2)), Window(1, right, (0, 1, 2))):
        result = engine.run(window)
        assert max_abs_diff(result.maps, full_recompute(model, window, LONG_SIDE)) <= 1e-5
    assert engine.cached_frames == 6  # the right camera's window evicted none of the left's frames
    per_frame = engine.cache_bytes / 6
    assert per_frame >= (5 + 9 * 6) * 128 * 4  # at least the block-0 output: 5 + 9x6 tokens of width 128, float32
    slid = Window(2, left[1:] + (dataclasses.replace(kitchen_frames[12], source="left"),), (2, 0))
    result = engine.run(slid)
    assert engine.counters["frames_encoded"] == 7 and engine.counters["evicted"] == 1
    assert max_abs_diff(result.maps, full_recompute(model, slid, LONG_SIDE)) <= 1e-5


def test_decode_of_some_frames_equals_the_rows_of_the_full_decode():
    """output_frames and stopping after the last read pair change no value (here pair 3 of 4 is never read)."""
    torch.manual_seed(3)
    model = with_active_blocks(MVInverse(dataclasses.replace(preset_config("tiny"), read_pairs=(0, 2, 1, 2))).eval())
    tokens = torch.randn(2, 4, 15, 48)
    with torch.inference_mode():
        every = model.decode(tokens, (3, 5), all_pairs=True)
        read = model.decode(tokens, (3, 5))
        some = model.decode_rest(model.decode_start(tokens, (3, 5)), (3, 5), output_frames=[3, 1])
    assert len(every) == 4 and [p.shape for p in some] == [(2, 2, 20, 96)] * 4
    for index, mine, selected in zip((0, 2, 1, 2), read, some):
        assert torch.equal(mine, every[index])
        assert torch.allclose(selected, every[index][:, [3, 1]], atol=1e-6, rtol=0)


def test_reset_and_release_recompute(model, kitchen_frames):
    engine = StreamingEngine(model, long_side=LONG_SIDE)
    window = Window(0, tuple(kitchen_frames[:2]), (1,))
    first = engine.run(window)
    engine.reset()
    assert engine.cached_frames == 0 and engine.cache_bytes == 0
    engine.release()
    again = engine.run(window)
    assert engine.counters["frames_encoded"] == 4
    assert max_abs_diff(first.maps, again.maps) == 0.0


def test_reduced_precision_stays_close(model, kitchen_frames):
    window = Window(0, tuple(kitchen_frames[:3]), (2,))
    reference = StreamingEngine(model, long_side=LONG_SIDE).run(window).maps
    for dtype in ("bf16", "fp16"):
        maps = StreamingEngine(model, dtype=dtype, long_side=LONG_SIDE).run(window).maps
        assert all(np.isfinite(getattr(maps[0], n)).all() for n in MAP_NAMES)
        assert max_abs_diff(maps, reference) < 0.1  # a few bf16 ulps through the network, not garbage


def test_bad_windows_are_clear_errors(model, kitchen_frames):
    engine = StreamingEngine(model, long_side=LONG_SIDE)
    with pytest.raises(InferenceError, match="no frames"):
        engine.run(Window(0, (), ()))
    with pytest.raises(InferenceError, match="same source and stamp"):
        engine.run(Window(0, (kitchen_frames[0], kitchen_frames[0]), (1,)))
    with pytest.raises(InferenceError, match="dtype"):
        StreamingEngine(model, long_side=LONG_SIDE, dtype="int8")


def test_predict_matches_the_model_on_real_photos(model, room_dir):
    paths = sorted(room_dir.glob("*.JPG")) + sorted(room_dir.glob("*.jpg"))
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths[:3]]
    maps = predict(images, model, long_side=LONG_SIDE)
    assert len(maps) == 3
    for image, frame_maps in zip(images, maps):
        assert frame_maps.albedo.shape == image.shape and frame_maps.roughness.shape == image.shape[:2]
        assert np.linalg.norm(frame_maps.normal, axis=-1) == pytest.approx(1.0, abs=1e-4)
    frames = tuple(Frame(i, "image", image) for i, image in enumerate(images))
    assert max_abs_diff(maps, full_recompute(model, Window(0, frames, (0, 1, 2)), LONG_SIDE)) <= 1e-5


def test_engine_from_params_builds_the_configured_model():
    params = dataclasses.replace(load_params().model, preset="tiny", long_side=LONG_SIDE, device="auto")
    engine, loaded = engine_from_params(params)
    assert engine.long_side == LONG_SIDE and engine.model is loaded.model
    assert engine.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_long_side_zero_runs_the_weights_at_their_training_size(tmp_path):
    small = build_model("small")
    save_checkpoint(small, tmp_path / "w.safetensors", "small", {LONG_SIDE_KEY: 224})
    params = dataclasses.replace(load_params().model, checkpoint=str(tmp_path / "w.safetensors"), long_side=0,
                                 normal_convention="opengl", device="cpu")
    engine, loaded = engine_from_params(params)
    assert loaded.native_long_side == 224 and engine.long_side == 224
    assert engine.normal_convention == "opengl"
    engine, _ = engine_from_params(dataclasses.replace(params, long_side=LONG_SIDE))
    assert engine.long_side == LONG_SIDE


def test_benchmark_smoke_run_reports_its_json_line(shared):
    """benchmarks/streaming.py --quick runs end to end and ends with the JSON the README quotes (no timing asserted)."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "streaming.py"
    run = subprocess.run([sys.executable, str(script), "--quick", "--threads", "1", "--shared", str(shared)],
                         capture_output=True, text=True, timeout=600, check=True)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"device", "dtype", "speedup_w4", "speedup_w8", "max_abs_diff", "rows"} <= summary.keys()
    assert summary["max_abs_diff"] <= 1e-5
    assert [(row["preset"], row["window"]) for row in summary["rows"]] == [("small", 4), ("small", 8)]
    for row in summary["rows"]:
        assert row["full_ms_per_frame"] > 0 and row["stream_ms_per_frame"] > 0 and row["cache_mib"] > 0
        # Per-frame work ran once per frame: the timed windows slide by one keyframe each.
        assert row["frames_encoded"] == row["window"] + row["windows_timed"]


def test_predict_runs_a_loaded_model_at_its_trained_size(model, room_dir, tmp_path):
    """long_side 0 means the size recorded in the weights; a bare network must be told a size."""
    path = tmp_path / "trained_at_56.safetensors"
    save_checkpoint(model, path, "small", {LONG_SIDE_KEY: "56"})
    loaded = load_model(str(path))
    image = cv2.cvtColor(cv2.imread(str(sorted(room_dir.glob("*.[jJ][pP][gG]"))[0])), cv2.COLOR_BGR2RGB)
    (default,) = predict([image], loaded)
    (explicit,) = predict([image], loaded.model, long_side=56)
    (other,) = predict([image], loaded.model, long_side=112)
    assert np.array_equal(default.albedo, explicit.albedo) and not np.array_equal(default.albedo, other.albedo)
    with pytest.raises(InferenceError, match="trained size"):
        predict([image], loaded.model)
