"""Storage precision: parameters saved in bfloat16 or float16, buffers kept, the precision
recorded, restored by default, and every cast reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from video_interpreter.checkpoint import (
    convert_checkpoint,
    load_checkpoint,
    load_model,
    read_metadata,
    save_model,
)
from video_interpreter.checkpoint._save import write_checkpoint
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError

from .test_checkpoint import clip, outputs, tiny_model

BUFFERS = ("backbone.1.running_mean", "backbone.1.running_var", "backbone.1.num_batches_tracked")
HALF = [torch.bfloat16, torch.float16]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_checkpoint_stores_parameters_in_it_and_keeps_buffers(
    tmp_path: Path, suffix: str, dtype: torch.dtype
) -> None:
    model = tiny_model()
    full = save_model(model, tmp_path / f"full{suffix}")
    half = save_model(model, tmp_path / f"half{suffix}", dtype=dtype)
    state = load_checkpoint(half.path).state_dict
    parameters = dict(model.named_parameters())
    assert {state[key].dtype for key in parameters} == {dtype}
    assert state["backbone.1.running_mean"].dtype == torch.float32
    assert state["backbone.1.num_batches_tracked"].dtype == torch.int64
    assert read_metadata(half.path).precision == str(dtype).removeprefix("torch.")
    assert read_metadata(full.path).precision is None
    # The tensors take half the bytes, less the float32 buffers.
    expected = read_metadata(full.path).tensor_bytes - sum(
        p.numel() * 2 for p in parameters.values()
    )
    assert read_metadata(half.path).tensor_bytes == expected


def test_saving_in_half_precision_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    model = tiny_model()
    save_model(model, tmp_path / "half.pth", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_half_precision_checkpoint_loads_in_its_precision_with_the_buffer_casts_reported(
    tmp_path: Path,
) -> None:
    saved = save_model(tiny_model(), tmp_path / "half.safetensors", dtype=torch.bfloat16)
    model, report = load_model(saved.path, return_report=True)
    assert {t.dtype for t in model.state_dict().values() if t.is_floating_point()} == {
        torch.bfloat16
    }
    assert set(report.cast) == {"backbone.1.running_mean", "backbone.1.running_var"}
    assert report.dtypes["backbone.1.running_var"] == ("torch.float32", "torch.bfloat16")
    assert "cast            backbone.1.running_var float32 -> bfloat16" in str(report)
    with torch.no_grad():
        logits = model.eval()(clip().to(torch.bfloat16))["action"]
    torch.testing.assert_close(logits.float(), outputs(tiny_model()), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_checkpoint_loads_as_float32_close_to_the_original(
    tmp_path: Path, dtype: torch.dtype
) -> None:
    original = tiny_model()
    saved = save_model(original, tmp_path / "half.pth", dtype=dtype)
    model, report = load_model(saved.path, dtype=torch.float32, return_report=True)
    assert {t.dtype for t in model.state_dict().values() if t.is_floating_point()} == {
        torch.float32
    }
    assert set(report.cast) == {name for name, _ in original.named_parameters()}
    torch.testing.assert_close(outputs(model), outputs(original), atol=1e-2, rtol=0)


def test_float16_save_of_a_weight_beyond_its_range_is_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    model = tiny_model()
    with torch.no_grad():
        model.get_parameter("backbone.0.weight")[0, 0, 0, 0, 0] = 1e5
    with pytest.raises(CheckpointError, match=r"float16.*infinite.*backbone\.0\.weight.*1e\+05"):
        save_model(model, tmp_path / "half.pth", dtype=torch.float16)
    assert not (tmp_path / "half.pth").exists()
    saved = save_model(model, tmp_path / "half.pth", dtype=torch.bfloat16)  # float32's range
    assert torch.isfinite(load_checkpoint(saved.path).state_dict["backbone.0.weight"]).all()


def test_a_storage_dtype_that_is_not_a_floating_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"torch\.int8 is not a storage precision.*bfloat16"):
        save_model(tiny_model(), tmp_path / "x.pth", dtype=torch.int8)


def test_float32_storage_dtype_records_no_precision(tmp_path: Path) -> None:
    saved = save_model(tiny_model(), tmp_path / "x.pth", dtype=torch.float32)
    assert read_metadata(saved.path).precision is None


@pytest.mark.parametrize(("source", "target"), [(".pth", ".safetensors"), (".safetensors", ".pth")])
def test_converting_a_half_precision_checkpoint_keeps_every_tensor_and_the_precision(
    tmp_path: Path, source: str, target: str
) -> None:
    saved = save_model(tiny_model(), tmp_path / f"half{source}", dtype=torch.bfloat16)
    converted = convert_checkpoint(saved.path, tmp_path / f"converted{target}")
    before = load_checkpoint(saved.path).state_dict
    after = load_checkpoint(converted.path).state_dict
    assert set(after) == set(before)
    for key, tensor in before.items():
        assert after[key].dtype == tensor.dtype, key
        assert torch.equal(after[key], tensor), key
    assert read_metadata(converted.path).precision == "bfloat16"


def test_an_unknown_recorded_precision_is_refused_by_name(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "odd.safetensors"
    write_checkpoint(path, spec=model.spec, state_dict=model.state_dict(), precision="float8")
    with pytest.raises(CheckpointError, match=r"field 'precision' is 'float8'.*bfloat16, float16"):
        load_model(path)


def test_inspect_shows_the_storage_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = save_model(tiny_model(), tmp_path / "half.pth", dtype=torch.float16)
    assert main(["inspect", str(saved.path)]) == 0
    assert "precision       parameters stored in float16" in capsys.readouterr().out
