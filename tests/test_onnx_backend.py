"""model.backend: onnxruntime gives the torch backend's maps, through the streaming engine and `bag process`.

Exports the bundled small weights once (the `export onnx` CLI) at a reduced long side, then runs
real 7-Scenes windows (keyframes by pose, evictions as the window slides) through both backends.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from mvinverse_ros import topics  # noqa: E402
from mvinverse_ros.bag.importer import import_rgbd  # noqa: E402
from mvinverse_ros.cli import main  # noqa: E402
from mvinverse_ros.conversions.images import float_image_to_array, image_to_rgb  # noqa: E402
from mvinverse_ros.engine.export import ExportError, file_sha256  # noqa: E402
from mvinverse_ros.engine.windowing import WindowPolicy  # noqa: E402
from mvinverse_ros.model.checkpoint import DEFAULT_WEIGHTS  # noqa: E402
from mvinverse_ros.params import load_params  # noqa: E402
from mvinverse_ros.pipeline import engine_from_params  # noqa: E402
from mvinverse_ros.types import MAP_NAMES  # noqa: E402
from test_bag_process import read_all  # noqa: E402
from test_engine_streaming import kitchen_frames  # noqa: E402,F401
from test_import_rgbd import few_frames  # noqa: E402

LONG_SIDE = 126
TOLERANCE = 1e-4
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "small"
    assert main(["export", "onnx", str(out), "--long-side", str(LONG_SIDE), "--image-size", "640x480"]) == 0
    return out


def model_params(**changes):
    base = load_params(None, {"model.long_side": str(LONG_SIDE), "model.device": "cpu"}).model
    return dataclasses.replace(base, **changes)


def test_manifest_records_what_the_export_was_made_for(onnx_dir):
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    assert (manifest["preset"], manifest["long_side"], manifest["input_size"]) == ("small", LONG_SIDE, [84, 126])
    assert manifest["checkpoint_sha256"] == file_sha256(DEFAULT_WEIGHTS)
    assert manifest["graphs"]["window"]["inputs"] == ["after_block0", "first_attention", "publish"]
    assert manifest["graphs"]["heads"]["outputs"] == ["albedo", "metallic", "roughness", "normal", "shading"]
    assert sorted(p.name for p in onnx_dir.glob("*.onnx")) == ["frame.onnx", "heads.onnx", "window.onnx"]


def test_streaming_through_onnxruntime_equals_torch_with_evictions(onnx_dir, kitchen_frames):  # noqa: F811
    torch_engine, _ = engine_from_params(model_params())
    ort_engine, _ = engine_from_params(model_params(backend="onnxruntime", onnx_dir=str(onnx_dir)))
    policy = WindowPolicy(dataclasses.replace(load_params().window, size=3, min_translation=0.01,
                                              min_rotation_deg=1.0))
    worst, windows = 0.0, 0
    for frame in kitchen_frames[:10]:
        window = policy.push(frame)
        if window is None:
            continue
        expected, actual = torch_engine.run(window).maps, ort_engine.run(window).maps
        worst = max(worst, max(float(np.abs(getattr(a, n) - getattr(b, n)).max())
                               for a, b in zip(expected, actual) for n in MAP_NAMES))
        windows += 1
    assert windows >= 4 and ort_engine.counters["evicted"] > 0
    # Same cache work as torch; one-frame batches ran through the frame graph (exported with 2 frames).
    assert ort_engine.counters == torch_engine.counters
    assert ort_engine.counters["frames_encoded"] < 3 * windows
    assert worst <= TOLERANCE


def test_bag_process_with_the_onnxruntime_backend_matches_torch(onnx_dir, sevenscenes_dir, tmp_path):
    bag = tmp_path / "in"
    import_rgbd(few_frames(sevenscenes_dir, tmp_path / "seq", 4), bag, fps=10.0)
    common = ["--long-side", str(LONG_SIDE), "--set", "model.device=cpu", "--set", "window.size=2",
              "--set", "window.min_translation=0", "--set", "window.min_rotation_deg=0",
              "--set", "bag.map_encoding=raw"]  # the float maps themselves, to compare at 1e-4
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        assert main(["bag", "process", str(bag), str(out), *common, "--set", f"model.backend={backend}",
                     "--set", f"model.onnx_dir={onnx_dir}"]) == 0
        outputs[backend] = read_all(out)
    for topic in (topics.ROUGHNESS, topics.METALLIC, topics.NORMAL, topics.SHADING):
        pairs = list(zip(outputs["torch"][topic], outputs["onnxruntime"][topic], strict=True))
        assert len(pairs) >= 3
        assert max(np.abs(float_image_to_array(a.message) - float_image_to_array(b.message)).max()
                   for a, b in pairs) <= TOLERANCE
    albedo = zip(outputs["torch"][topics.ALBEDO], outputs["onnxruntime"][topics.ALBEDO], strict=True)
    assert max(np.abs(image_to_rgb(a.message).astype(int) - image_to_rgb(b.message).astype(int)).max()
               for a, b in albedo) <= 1  # rgb8: a 1e-4 difference may cross a rounding edge


def test_unusable_exports_are_one_clear_error_at_configure_time(onnx_dir, tmp_path):
    with pytest.raises(ExportError, match="not a folder.*export onnx"):
        engine_from_params(model_params(backend="onnxruntime", onnx_dir=str(tmp_path / "none")))
    with pytest.raises(ExportError, match="long side 126, not 'small' at 252"):
        engine_from_params(model_params(backend="onnxruntime", onnx_dir=str(onnx_dir), long_side=252))
    with pytest.raises(ExportError, match="CUDAExecutionProvider.*not available"):
        engine_from_params(model_params(backend="onnxruntime", onnx_dir=str(onnx_dir),
                                        onnx_providers=["CUDAExecutionProvider"]))
    with pytest.raises(ExportError, match="model.dtype bf16"):
        engine_from_params(model_params(backend="onnxruntime", onnx_dir=str(onnx_dir), dtype="bf16"))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "manifest.json").write_text((onnx_dir / "manifest.json").read_text())
    with pytest.raises(ExportError, match="heads.onnx is missing|frame.onnx is missing"):
        engine_from_params(model_params(backend="onnxruntime", onnx_dir=str(partial)))
    assert main(["bag", "process", str(tmp_path / "no_bag"), str(tmp_path / "o"), "--set", "model.backend=onnxruntime",
                 "--set", f"model.onnx_dir={tmp_path / 'none'}"]) == 1
