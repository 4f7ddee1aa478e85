"""Checkpoint I/O: official-size .pt/.safetensors, key errors, convert, default weights, offline Hub.

Strict loading of official-size files, clear key errors, the convert command, the bundled default
and the offline Hugging Face error.
"""
from __future__ import annotations

import dataclasses
import gc

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mvinverse_ros.cli import main as cli_main
from mvinverse_ros.model import (
    LoadedModel,
    ModelError,
    build_model,
    load_model,
    load_official_state_dict,
    save_checkpoint,
)
from mvinverse_ros.model.checkpoint import DEFAULT_WEIGHTS, LONG_SIDE_KEY, OFFICIAL_HUB_ID
from mvinverse_ros.model.parity import official_synthetic_model


@pytest.fixture(scope="module")
def official(parity_dir):
    model, _ = official_synthetic_model(str(parity_dir / "manifest.json"))
    return model


def assert_same_weights(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    ours, theirs = loaded.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    different = [name for name in ours if not torch.equal(ours[name], theirs[name])]
    assert not different, f"weights differ after the round trip: {different[:10]}"


def test_official_pt_and_safetensors_load_strictly(official, tmp_path):
    """Official-size .pt and .safetensors files both load strictly, bit for bit.

    The 4 GB .pt holds the state dict under "model" with the stale mask_token; its preset comes from
    the shapes, the safetensors one from the metadata.
    """
    state = dict(official.state_dict())
    state["encoder.mask_token"] = torch.zeros(1, 1024)
    pt_path = tmp_path / "official.pt"
    torch.save({"model": state, "epoch": 3}, pt_path)
    del state
    loaded = load_model(str(pt_path), preset="small")
    assert (loaded.preset, loaded.trained, loaded.source) == ("official", True, str(pt_path))
    assert not loaded.model.training
    assert_same_weights(loaded.model, official)
    del loaded
    gc.collect()
    pt_path.unlink()

    st_path = tmp_path / "official.safetensors"
    save_checkpoint(official, st_path, "official", {"note": "synthetic parity weights"})
    with safe_open(str(st_path), framework="pt") as handle:
        assert handle.metadata() == {"preset": "official", "note": "synthetic parity weights"}
    loaded = load_model(str(st_path), preset="tiny")
    assert loaded.preset == "official"
    assert_same_weights(loaded.model, official)
    del loaded
    gc.collect()
    st_path.unlink()


def test_missing_unexpected_and_ignorable_keys(official):
    state = dict(official.state_dict())
    with torch.device("meta"):
        target = build_model("official")

    without = {name: t for name, t in state.items() if name != "decoder.17.attn.k_norm.bias"}
    with pytest.raises(ModelError, match=r"missing keys: decoder\.17\.attn\.k_norm\.bias$"):
        load_official_state_dict(target, without)

    with pytest.raises(ModelError, match=r"unexpected keys: head\.fc\.weight"):
        load_official_state_dict(target, {**state, "head.fc.weight": torch.zeros(2, 2)})

    load_official_state_dict(target, {**state, "encoder.mask_token": torch.zeros(1, 1024)})
    assert target.state_dict()["decoder.35.ls2.gamma"].data_ptr() == state["decoder.35.ls2.gamma"].data_ptr()


def test_shape_mismatch_and_preset_mismatch_are_named(tmp_path):
    tiny = build_model("tiny")
    state = tiny.state_dict()
    state["register_token"] = torch.zeros(1, 1, 4, 48)
    with pytest.raises(ModelError, match=r"register_token \(1, 1, 4, 48\) != \(1, 1, 5, 48\)"):
        load_official_state_dict(build_model("tiny"), state)

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny, path, "tiny")
    with pytest.raises(ModelError, match="unknown model preset 'huge'"):
        save_checkpoint(tiny, path, "huge")
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(path), metadata={"preset": "small"})
    with pytest.raises(ModelError, match=rf"{path}.*preset 'small'.*missing keys"):
        load_model(str(path))


def test_convert_command_writes_a_checked_safetensors(tmp_path, capsys):
    tiny = build_model("tiny")
    source = tmp_path / "tiny.pth"
    torch.save(tiny.state_dict(), source)  # a bare state dict
    output = tmp_path / "tiny.safetensors"
    assert cli_main(["convert", str(source), str(output)]) == 0
    assert "preset tiny" in capsys.readouterr().out
    loaded = load_model(str(output))
    assert loaded.preset == "tiny"
    assert_same_weights(loaded.model, tiny)
    with safe_open(str(output), framework="pt") as handle:
        assert handle.metadata()["converted_from"] == str(source)

    broken = tmp_path / "broken.pt"
    torch.save({"model": {"encoder.cls_token": torch.zeros(1, 1, 7)}}, broken)
    assert cli_main(["convert", str(broken), str(tmp_path / "x.safetensors")]) == 1
    assert "match no preset" in capsys.readouterr().err
    assert cli_main(["convert", str(broken), str(tmp_path / "x.safetensors"), "--preset", "tiny"]) == 1
    assert "missing keys" in capsys.readouterr().err


def test_unreadable_sources_are_named(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nope.safetensors"))
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"12345")
    with pytest.raises(ModelError, match="unknown suffix '.npz'"):
        load_model(str(odd))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match=f"cannot read checkpoint {corrupt}"):
        load_model(str(corrupt))
    no_tensors = tmp_path / "opt.pt"
    torch.save({"optimizer": {"lr": 0.1}}, no_tensors)
    with pytest.raises(ModelError, match="holds no state dict"):
        load_model(str(no_tensors))


def test_hub_id_offline_explains_how_to_get_the_file(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # closed port: fails at once
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    with pytest.raises(ModelError) as error:
        load_model(OFFICIAL_HUB_ID)
    message = str(error.value)
    assert "not reachable" in message
    assert f"hf download {OFFICIAL_HUB_ID} model.safetensors" in message
    assert "pass its path" in message


def test_empty_checkpoint_is_the_bundled_default_or_an_untrained_preset():
    loaded = load_model("", preset="tiny")
    if DEFAULT_WEIGHTS.is_file():
        with safe_open(str(DEFAULT_WEIGHTS), framework="pt") as handle:
            assert loaded.preset == handle.metadata()["preset"]
        assert loaded.trained and loaded.source == str(DEFAULT_WEIGHTS)
    else:
        assert (loaded.preset, loaded.trained) == ("tiny", False)
    assert not loaded.model.training


def test_integer_weights_are_one_clear_error_in_load_and_convert(tmp_path, capsys):
    tiny = build_model("tiny")
    path = tmp_path / "int32.safetensors"
    save_file({name: (t.to(torch.int32) if t.is_floating_point() else t).contiguous()
               for name, t in tiny.state_dict().items()}, str(path), metadata={"preset": "tiny"})
    with pytest.raises(ModelError, match=r"dtype mismatches \(checkpoint != model\): .*int32 != float32"):
        load_model(str(path))
    assert cli_main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "int32 != float32" in err
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("value", ["100", "0", "-14", "big"])
def test_trained_at_long_side_must_be_a_positive_multiple_of_14(value, tmp_path, capsys):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(build_model("tiny"), path, "tiny", {LONG_SIDE_KEY: value})
    with pytest.raises(ModelError, match=rf"{LONG_SIDE_KEY}='{value}' is not a positive multiple of the 14-pixel"):
        load_model(str(path))
    assert cli_main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 1
    assert "is not a positive multiple" in capsys.readouterr().err


def test_convert_keeps_the_trained_size(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(build_model("tiny"), path, "tiny", {LONG_SIDE_KEY: "112"})
    assert load_model(str(path)).native_long_side == 112
    assert cli_main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 0
    assert load_model(str(tmp_path / "out.safetensors")).native_long_side == 112


def test_legacy_torch_files_load_and_a_broken_one_says_what_it_is(tmp_path):
    tiny = build_model("tiny")
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": tiny.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    loaded = load_model(str(legacy))
    assert loaded.preset == "tiny"
    assert_same_weights(loaded.model, tiny)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(legacy.read_bytes()[:1000])
    with pytest.raises(ModelError, match=r"cannot read checkpoint .*broken\.pt \(not a zip-format torch file"):
        load_model(str(broken))


def test_a_directory_is_named_as_a_directory(tmp_path):
    with pytest.raises(ModelError, match="is a directory, not a weights file: give the file itself; it holds no "):
        load_model(str(tmp_path))
    save_checkpoint(build_model("tiny"), tmp_path / "last.safetensors", "tiny")
    with pytest.raises(ModelError, match=r"is a directory.*it holds last\.safetensors$"):
        load_model(str(tmp_path))


def test_non_finite_weights_are_refused_by_name(tmp_path):
    tiny = build_model("tiny")
    state = {name: t.clone().contiguous() for name, t in tiny.state_dict().items()}
    state["register_token"].view(-1)[3] = float("nan")
    state["decoder.0.attn.qkv.weight"].view(-1)[0] = float("inf")
    path = tmp_path / "diverged.safetensors"
    save_file(state, str(path), metadata={"preset": "tiny"})
    with pytest.raises(ModelError, match=r"NaN or infinite .* in decoder\.0\.attn\.qkv\.weight, register_token$"):
        load_model(str(path))


def test_untrained_warning_is_said_once_the_same_way():
    untrained = LoadedModel(build_model("tiny"), "tiny", "untrained tiny", trained=False)
    assert untrained.untrained_warning() == (
        "the 'tiny' model has UNTRAINED (random) weights (untrained tiny): its maps are meaningless; "
        "give trained weights with model.checkpoint (--checkpoint)")
    assert dataclasses.replace(untrained, trained=True).untrained_warning() is None
