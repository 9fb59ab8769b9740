"""Quantisation through torchao: what it covers, checkpoints that restore the quantised model
bit for bit without pickling a class, refusals, and the measured cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from video_interpreter.checkpoint import load_model, read_metadata, save_model
from video_interpreter.checkpoint._save import write_checkpoint
from video_interpreter.cli import main
from video_interpreter.compress import (
    SCHEMES,
    agreement,
    check_clips,
    compress_checkpoint,
    coverage,
    load_quantized,
    quantization_scheme,
    quantize,
    save_quantized,
)
from video_interpreter.errors import CheckpointError, CompressionError
from video_interpreter.model import VideoInterpreter, build_model

from . import conftest
from .test_checkpoint import tiny_model

ROOT = Path(__file__).resolve().parent.parent


def transformer() -> VideoInterpreter:
    torch.manual_seed(0)
    return build_model("tiny_transformer").eval()


def logits(model: nn.Module, clips: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        out: dict[str, torch.Tensor] = model.eval()(clips)
    return out


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_quantised_model_saves_and_loads_back_with_bit_identical_outputs(
    tmp_path: Path, scheme: str, suffix: str
) -> None:
    model = transformer()
    quantized = quantize(model, scheme)
    clips = check_clips(model, 2)
    saved = save_quantized(quantized, tmp_path / f"q{suffix}")
    restored = load_quantized(saved.path, verify=saved.sha256)
    assert quantization_scheme(restored) == scheme
    assert_identical(logits(restored, clips), logits(quantized, clips))
    # Close to the float model, and not the float model itself.
    torch.testing.assert_close(
        logits(quantized, clips)["action"], logits(model, clips)["action"], atol=0.02, rtol=0
    )
    assert quantization_scheme(model) is None


def test_quantised_checkpoint_loads_in_a_fresh_process_with_bit_identical_outputs(
    tmp_path: Path,
) -> None:
    quantized = quantize(transformer(), "int8_weight_only")
    clips = check_clips(quantized, 2)
    saved = save_quantized(quantized, tmp_path / "q.safetensors")
    torch.save({"clips": clips, **logits(quantized, clips)}, tmp_path / "expected.pt")
    script = f"""
import sys, torch
sys.path.insert(0, {str(ROOT)!r})
from video_interpreter.compress import load_quantized
expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
model = load_quantized({str(saved.path)!r}).eval()
with torch.inference_mode():
    out = model(expected["clips"])
sys.exit(0 if torch.equal(out["action"], expected["action"]) else 3)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]


def test_quantised_pth_is_a_dict_of_plain_tensors_and_values(tmp_path: Path) -> None:
    saved = save_quantized(quantize(transformer(), "int8_dynamic"), tmp_path / "q.pth")
    payload = torch.load(saved.path, weights_only=True)
    state = payload["model_state_dict"]
    assert all(type(tensor) is torch.Tensor for tensor in state.values())
    assert state["heads.action.fc.weight::qdata"].dtype == torch.int8
    assert "heads.action.fc.weight" not in state
    record = payload["quantization"]
    assert record["scheme"] == "int8_dynamic"
    assert record["library"] == "torchao"
    assert record["library_version"] == read_metadata(saved.path).quantization["library_version"]  # type: ignore[index]
    entry = record["tensors"]["heads.action.fc.weight"]
    assert entry["layout"] == "Int8Tensor"
    assert entry["shape"] == [4, 32]
    json.dumps(record)  # plain values only


def test_int8_schemes_quantise_linear_layers_and_leave_3d_convolutions_float() -> None:
    quantized = quantize(transformer(), "int8_weight_only")
    counts = coverage(quantized)
    done, total = counts["Linear"]
    assert total - done == sum(
        m.bias.numel()
        for m in quantized.modules()
        if isinstance(m, nn.Linear) and m.bias is not None
    )  # every Linear weight, no bias
    assert counts["Conv3d"][0] == 0
    assert counts["LayerNorm"][0] == 0
    conv = quantize(tiny_model(), "int8_weight_only")
    assert coverage(conv)["Conv3d"] == (0, conv.get_parameter("backbone.0.weight").numel() + 4)
    assert coverage(conv)["Linear"][0] == conv.get_parameter("heads.action.fc.weight").numel()


def conv_head_model() -> VideoInterpreter:
    """Conv3d, BatchNorm3d, ReLU, S3D's neck (AvgPool3d, which has no bfloat16 CPU kernel)
    and its convolutional head: no Linear layer."""
    spec = conftest.tiny_spec()
    spec["neck"] = {"type": "AvgPool3d", "kernel_size": [4, 16, 16], "stride": 1}
    spec["heads"] = {"action": {"type": "ConvClassificationHead", "num_classes": 3}}
    torch.manual_seed(0)
    return build_model(spec)


def test_a_model_without_linear_layers_is_refused_and_pointed_to_bfloat16_storage() -> None:
    with pytest.raises(CompressionError, match=r"no layer that int8_dynamic quantises.*bfloat16"):
        quantize(conv_head_model(), "int8_dynamic")


def test_a_check_the_cpu_cannot_run_in_bfloat16_is_measured_in_float32_and_says_so(
    tmp_path: Path,
) -> None:
    source = save_model(conv_head_model(), tmp_path / "f.pth").path
    result = compress_checkpoint(
        source, tmp_path / "h.pth", dtype=torch.bfloat16, check=True, clips=1, repeats=1
    )
    assert result.note is not None
    assert "cannot compute in bfloat16 on cpu" in result.note
    assert result.note.endswith("measured as loaded in float32")
    assert result.agreement == result.float32_agreement


def test_unknown_scheme_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        CompressionError, match=r"unknown quantisation scheme 'int4'.*int8_weight_only"
    ):
        quantize(transformer(), "int4")


def test_missing_torchao_is_reported_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save_quantized(quantize(transformer(), "int8_weight_only"), tmp_path / "q.pth")
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao now raises ImportError
    with pytest.raises(
        CompressionError,
        match=r"loading .*q\.pth \(quantised with torchao .*, scheme int8_weight_only\) needs "
        r"torchao, which is not installed: pip install 'video-interpreter\[compress\]'",
    ):
        load_quantized(saved.path)
    with pytest.raises(CompressionError, match=r"quantize\(.*\) needs torchao"):
        quantize(transformer(), "int8_dynamic")


def test_plain_load_model_of_a_quantised_checkpoint_points_to_load_quantized(
    tmp_path: Path,
) -> None:
    saved = save_quantized(quantize(transformer(), "int8_weight_only"), tmp_path / "q.pth")
    with pytest.raises(CheckpointError, match=r"quantised model.*compress\.load_quantized"):
        load_model(saved.path)


def _rewrite(path: Path, out: Path, **changes: object) -> None:
    """Re-write a quantised checkpoint with a valid digest but a changed record."""
    from video_interpreter.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    record = dict(checkpoint.metadata.quantization or {})
    record.update(changes)
    assert checkpoint.spec is not None
    write_checkpoint(
        out, spec=checkpoint.spec, state_dict=checkpoint.state_dict, quantization=record
    )


def test_an_edited_scheme_field_is_refused(tmp_path: Path) -> None:
    saved = save_quantized(quantize(transformer(), "int8_weight_only"), tmp_path / "q.safetensors")
    raw = saved.path.read_bytes()
    edited = tmp_path / "edited.safetensors"
    edited.write_bytes(raw.replace(b"int8_weight_only", b"int8_weight_Only", 1))
    with pytest.raises(CheckpointError, match="does not match its digest"):
        load_quantized(edited)
    # Re-signed with another scheme: what the file holds is not what that scheme makes.
    _rewrite(saved.path, tmp_path / "swapped.pth", scheme="int8_dynamic")
    with pytest.raises(CheckpointError, match=r"recorded as .*the scheme makes"):
        load_quantized(tmp_path / "swapped.pth")
    _rewrite(saved.path, tmp_path / "unknown.pth", scheme="int3")
    with pytest.raises(CheckpointError, match=r"damaged or was edited: unknown .* 'int3'"):
        load_quantized(tmp_path / "unknown.pth")
    record = read_metadata(saved.path).quantization
    assert record is not None
    tensors = {key: dict(entry) for key, entry in record["tensors"].items()}
    tensors["heads.action.fc.weight"]["shape"] = [10**9, 32]  # never allocated
    _rewrite(saved.path, tmp_path / "shape.pth", tensors=tensors)
    with pytest.raises(CheckpointError, match=r"records shape \[1000000000, 32\], the arch"):
        load_quantized(tmp_path / "shape.pth")


def test_save_quantized_refuses_a_float_model_and_load_quantized_a_float_file(
    tmp_path: Path,
) -> None:
    with pytest.raises(CompressionError, match=r"not made by .*quantize; save a float model"):
        save_quantized(transformer(), tmp_path / "q.pth")
    saved = save_model(transformer(), tmp_path / "f.pth")
    with pytest.raises(CompressionError, match=r"not a quantised checkpoint; .*load_model"):
        load_quantized(saved.path)


def test_agreement_is_the_largest_difference_and_the_share_of_same_top1() -> None:
    reference = [{"a": torch.tensor([[0.0, 1.0]])}, {"a": torch.tensor([[2.0, 0.0]])}]
    candidate = [{"a": torch.tensor([[0.0, 1.5]])}, {"a": torch.tensor([[0.0, 1.0]])}]
    measured = agreement(reference, candidate)
    assert measured.max_abs_diff == 2.0
    assert measured.top1_agreement == 0.5
    assert str(measured) == "max abs diff 2, top-1 agreement 50% (2 clips)"


def test_compress_checkpoint_measures_the_cost_and_refuses_to_compress_twice(
    tmp_path: Path,
) -> None:
    source = save_model(transformer(), tmp_path / "f.safetensors", metrics={"acc": 0.5}).path
    result = compress_checkpoint(
        source, tmp_path / "q.pth", scheme="int8_weight_only", check=True, clips=2, repeats=1
    )
    assert result.compressed_bytes < result.source_bytes
    assert 0.5 < result.quantized_fraction < 1
    assert result.agreement is not None
    assert result.agreement.clips == 2
    assert result.latency_before_ms is not None
    assert result.latency_before_ms > 0
    assert read_metadata(result.destination).metrics == {"acc": 0.5}
    with pytest.raises(CompressionError, match=r"already compressed.*compress the float32"):
        compress_checkpoint(result.destination, tmp_path / "again.pth", dtype=torch.bfloat16)
    with pytest.raises(CompressionError, match="exactly one of dtype= or scheme="):
        compress_checkpoint(source, tmp_path / "x.pth")


def test_compress_command_prints_size_latency_and_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(save_model(transformer(), tmp_path / "f.safetensors").path)
    out = str(tmp_path / "bf16.safetensors")
    args = ["compress", source, out, "--dtype", "bf16", "--check", "--clips", "2", "--repeats", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (bfloat16)" in printed
    assert "CPU latency" in printed
    assert "batch 1 x 3x4x32x32" in printed
    assert "outputs vs SRC: max abs diff" in printed
    assert "(2 clips)" in printed
    assert "loaded as float32: max abs diff" in printed
    quantized = str(tmp_path / "q.pth")
    assert main(["compress", source, quantized, "--quantize", "int8_dynamic"]) == 0
    printed = capsys.readouterr().out
    assert "int8_dynamic, 75% of the parameters quantised" in printed
    assert "size" in printed
    assert "CPU latency" not in printed
    assert main(["inspect", quantized]) == 0
    assert "int8_dynamic (torchao" in capsys.readouterr().out
