"""Checkpoints: both formats round-trip, carry their spec and metadata, load safely and fast,
and are written atomically."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from video_interpreter.checkpoint import (
    FORMAT_VERSION,
    CheckpointMetadata,
    SavedCheckpoint,
    _atomic,
    _safetensors,
    _weights,
    load_checkpoint,
    load_model,
    read_metadata,
    save_model,
    sha256_file,
)
from video_interpreter.errors import CheckpointError
from video_interpreter.model import VideoInterpreter, build_model
from video_interpreter.spec import known_spec_names

from . import conftest


def tiny_spec(num_classes: int = 5, dropout: float = 0.0) -> dict[str, Any]:
    """The shared tiny spec, as this module's checkpoints name it."""
    return conftest.tiny_spec(
        version="t1", out_channels=4, bias=True, num_classes=num_classes, dropout=dropout
    )


def tiny_model(seed: int = 0, **changes: Any) -> VideoInterpreter:
    torch.manual_seed(seed)
    model = build_model(tiny_spec(**changes))
    with torch.no_grad():  # non-trivial running statistics, so they must round-trip too
        model.get_buffer("backbone.1.running_mean").uniform_(-1, 1)
        model.get_buffer("backbone.1.running_var").uniform_(0.5, 2)
    return model


def clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 4, 16, 16, generator=torch.Generator().manual_seed(7))


def outputs(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model.eval()(clip())["action"]
    return out


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_saved_model_loads_back_with_identical_outputs(tmp_path: Path, suffix: str) -> None:
    model = tiny_model()
    saved = save_model(model, tmp_path / f"tiny{suffix}")
    loaded = load_model(saved.path)
    assert isinstance(loaded, VideoInterpreter)
    assert loaded.spec == model.spec
    torch.testing.assert_close(outputs(loaded), outputs(model))
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], tensor, rtol=0, atol=0)


_TINY_ZOO = [name for name in known_spec_names() if name.startswith("tiny_")] or ["tiny_resnet"]


@pytest.mark.parametrize("name", _TINY_ZOO)
def test_every_small_zoo_architecture_round_trips_in_both_formats(
    tmp_path: Path, name: str
) -> None:
    model = build_model(name).eval()
    clip = torch.randn(1, *model.spec.input)
    for suffix in (".pth", ".safetensors"):
        loaded = load_model(save_model(model, tmp_path / f"{name}{suffix}").path).eval()
        expected, actual = model.state_dict(), loaded.state_dict()
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[k], actual[k]) for k in expected)
        with torch.no_grad():
            for head, output in model(clip).items():
                torch.testing.assert_close(loaded(clip)[head], output)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_returns_the_sha256_of_the_bytes_written(tmp_path: Path, suffix: str) -> None:
    saved = save_model(tiny_model(), tmp_path / f"tiny{suffix}")
    assert isinstance(saved, SavedCheckpoint)
    assert saved.sha256 == sha256_file(saved.path)
    assert saved.size_bytes == saved.path.stat().st_size
    assert saved.fingerprint == tiny_model().spec.fingerprint


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loaded_model_can_be_trained_and_saved_again(tmp_path: Path, suffix: str) -> None:
    saved = save_model(tiny_model(), tmp_path / f"tiny{suffix}")
    model = load_model(saved.path).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(clip())["action"].sum().backward()
    optimizer.step()  # mapped weights are private copy-on-write pages: the file stays as it was
    assert sha256_file(saved.path) == saved.sha256
    again = save_model(model, saved.path)
    torch.testing.assert_close(outputs(load_model(again.path)), outputs(model))


def test_load_model_places_weights_on_the_requested_dtype(tmp_path: Path) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.pth")
    model = load_model(saved.path, dtype=torch.float64, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.get_buffer("backbone.1.num_batches_tracked").dtype == torch.int64


def test_load_model_never_initialises_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.pth")
    expected = outputs(tiny_model())

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a weight was initialised during load_model")

    monkeypatch.setattr(_weights, "_init_module", refuse)
    monkeypatch.setattr("video_interpreter.model._factory.initialize", refuse)
    monkeypatch.setattr("video_interpreter.model._factory.materialize", refuse)
    torch.testing.assert_close(outputs(load_model(saved.path)), expected)


# -- what a checkpoint carries ----------------------------------------------------------------


def test_pth_checkpoint_is_a_plain_dict_that_weights_only_torch_load_opens(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(clip())["action"].sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    saved = save_model(
        model, tmp_path / "run.pth", optimizer=optimizer, scheduler=scheduler, epoch=3, loss=0.25
    )
    raw = torch.load(saved.path, weights_only=True)
    assert {"epoch", "model_state_dict", "optimizer_state_dict", "loss"} <= set(raw)
    assert raw["epoch"] == 3
    assert raw["loss"] == 0.25
    assert raw["spec"] == model.spec.to_dict()
    assert raw["fingerprint"] == model.spec.fingerprint
    assert raw["format_version"] == FORMAT_VERSION
    assert raw["scheduler_state_dict"]["step_size"] == 2
    assert set(raw["rng_state"]) >= {"torch", "python"}


def test_metadata_describes_the_checkpoint_without_its_tensors(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = save_model(
        model,
        tmp_path / "run.pth",
        optimizer=optimizer,
        epoch=2,
        step=40,
        loss=torch.tensor(0.5),
        metrics={"acc": 0.75, "top5": torch.tensor(0.5)},
        notes="first try",
    )
    meta = read_metadata(saved.path)
    assert isinstance(meta, CheckpointMetadata)
    assert (meta.name, meta.version, meta.fingerprint) == ("tiny", "t1", model.spec.fingerprint)
    assert (meta.epoch, meta.step, meta.loss, meta.notes) == (2, 40, 0.5, "first try")
    assert dict(meta.metrics) == {"acc": 0.75, "top5": 0.5}
    assert meta.created is not None
    assert meta.created.endswith("+00:00")  # UTC
    assert meta.package_version
    assert meta.torch_version == str(torch.__version__)
    assert meta.training_state == ("optimizer", "rng")
    assert meta.tensor_count == len(model.state_dict())
    assert meta.tensor_bytes == sum(
        t.numel() * t.element_size() for t in model.state_dict().values()
    )
    json.dumps(meta.to_dict())  # JSON-ready


def test_safetensors_metadata_is_read_from_the_header_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.safetensors", metrics={"acc": 0.5})

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(_safetensors, "read_tensors", refuse)
    monkeypatch.setattr("video_interpreter.checkpoint._read.read_tensors", refuse)
    meta = read_metadata(saved.path)
    assert meta.format == "safetensors"
    assert dict(meta.metrics) == {"acc": 0.5}
    assert meta.training_state == ()


def test_safetensors_header_keeps_metadata_as_json_strings(tmp_path: Path) -> None:
    from safetensors import safe_open

    model = tiny_model()
    saved = save_model(model, tmp_path / "tiny.safetensors", epoch=1, notes="n")
    with safe_open(str(saved.path), framework="pt") as handle:
        header = handle.metadata()
    assert json.loads(header["spec"]) == model.spec.to_dict()
    assert json.loads(header["fingerprint"]) == model.spec.fingerprint
    assert json.loads(header["epoch"]) == 1


def test_safetensors_refuses_training_state(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="holds weights only, not optimizer state"):
        save_model(model, tmp_path / "tiny.safetensors", optimizer=optimizer)


def test_unknown_suffix_lists_the_formats(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"use one of \.pth, \.pt, \.safetensors"):
        save_model(tiny_model(), tmp_path / "tiny.ckpt")


def test_a_module_without_a_spec_cannot_be_saved_as_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="has none"):
        save_model(nn.Linear(2, 2), tmp_path / "linear.pth")


def test_values_weights_only_loading_would_refuse_are_refused_at_save(tmp_path: Path) -> None:
    class Schedule:
        def state_dict(self) -> dict[str, Any]:
            return {"warmup": lambda step: step}

        def load_state_dict(self, state: Any) -> None:
            pass

    with pytest.raises(CheckpointError, match=r"scheduler_state_dict\['warmup'\] holds a"):
        save_model(tiny_model(), tmp_path / "run.pth", scheduler=Schedule())
    assert not (tmp_path / "run.pth").exists()


# -- other inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_plain_state_dict_needs_a_spec_and_loads_with_one(tmp_path: Path, suffix: str) -> None:
    model = tiny_model()
    path = tmp_path / f"plain{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_file(model.state_dict(), str(path))
    with pytest.raises(CheckpointError, match="without an architecture; pass spec="):
        load_model(path)
    loaded = load_model(path, spec=tiny_spec())
    torch.testing.assert_close(outputs(loaded), outputs(model))
    assert read_metadata(path).kind == "state_dict"


def test_training_dict_of_the_seed_layout_is_read(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(clip())["action"].sum().backward()
    optimizer.step()
    path = tmp_path / "seed.pth"
    torch.save(
        {
            "epoch": 4,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "loss": 0.125,
        },
        path,
    )
    checkpoint = load_checkpoint(path)
    assert (checkpoint.epoch, checkpoint.loss, checkpoint.spec) == (4, 0.125, None)
    assert checkpoint.metadata.kind == "training"
    assert checkpoint.optimizer_state_dict is not None
    torch.testing.assert_close(outputs(load_model(path, spec=tiny_spec())), outputs(model))


def test_spec_given_for_a_checkpoint_of_another_architecture_is_refused_with_a_diff(
    tmp_path: Path,
) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match="Spec diff") as caught:
        load_model(saved.path, spec=tiny_spec(num_classes=7))
    message = str(caught.value)
    assert "-  action: {type: ClassificationHead, num_classes: 5" in message
    assert "+  action: {type: ClassificationHead, num_classes: 7" in message


# -- safety ----------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _malicious_files(tmp_path: Path, marker: Path) -> list[Path]:
    state = tiny_model().state_dict()
    zipped = tmp_path / "malicious.pth"
    torch.save({"model_state_dict": state, "extra": _Payload(marker)}, zipped)
    legacy = tmp_path / "malicious_legacy.pth"
    torch.save({"model_state_dict": state, "extra": _Payload(marker)}, legacy,
               _use_new_zipfile_serialization=False)  # fmt: skip
    raw = tmp_path / "malicious.pkl"
    raw.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    return [zipped, legacy, raw]


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    for path in _malicious_files(tmp_path, marker):
        for load in (
            lambda p: load_model(p, spec=tiny_spec()),
            load_checkpoint,
            read_metadata,
            lambda p: _weights.load_weights(tiny_model(), p),
        ):
            with pytest.raises(CheckpointError, match=r"refused to unpickle.*arbitrary code"):
                load(path)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused_unless_trusted(tmp_path: Path) -> None:
    model = tiny_model()
    whole = nn.Module()  # a picklable stand-in with the same modules (and state-dict keys)
    whole.backbone, whole.neck, whole.heads = model.backbone, model.neck, model.heads
    path = tmp_path / "whole.pth"
    torch.save(whole, path)
    with pytest.raises(CheckpointError, match=r"trust_pickle=True"):
        load_model(path, spec=tiny_spec())
    loaded = load_model(path, spec=tiny_spec(), trust_pickle=True)
    torch.testing.assert_close(outputs(loaded), outputs(model))
    assert load_checkpoint(path, trust_pickle=True).metadata.kind == "pickled_model"


# -- verification ----------------------------------------------------------------------------


def test_verify_accepts_the_recorded_sha256_and_refuses_another(tmp_path: Path) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.pth")
    load_model(saved.path, verify=saved.sha256.upper())
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_model(saved.path, verify="0" * 64)
    with pytest.raises(CheckpointError, match="is not a sha256"):
        load_checkpoint(saved.path, verify="abc")


def test_missing_and_empty_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "absent.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth is empty"):
        read_metadata(tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match=r"neither a torch \.pth"):
        read_metadata(tmp_path / "text.pth")


# -- atomic writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_failed_rename_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"tiny{suffix}"
    before = save_model(tiny_model(seed=0), path)

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(CheckpointError, match="previous file, if any, is untouched"):
        save_model(tiny_model(seed=1), path)
    assert sha256_file(path) == before.sha256
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_crash_in_the_middle_of_writing_keeps_the_previous_file(
    tmp_path: Path, suffix: str, error: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"tiny{suffix}"
    before = save_model(tiny_model(seed=0), path)
    write = _atomic.HashingWriter.write

    def write_then_crash(self: _atomic.HashingWriter, data: bytes) -> int:
        if self.size > 64:
            raise error("simulated crash")
        return write(self, data)

    monkeypatch.setattr(_atomic.HashingWriter, "write", write_then_crash)
    with pytest.raises(error, match="simulated crash"):
        save_model(tiny_model(seed=1), path)
    assert sha256_file(path) == before.sha256
    assert os.listdir(tmp_path) == [path.name]


def test_process_killed_mid_write_never_leaves_a_partial_file_under_the_final_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tiny.pth"
    before = save_model(tiny_model(seed=0), path)
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from tests.test_checkpoint import tiny_model
from video_interpreter.checkpoint import _atomic, save_model
write = _atomic.HashingWriter.write
def die(self, data):
    if self.size > 1000:
        os._exit(9)  # no cleanup, no exception: as if the power went out
    return write(self, data)
_atomic.HashingWriter.write = die
save_model(tiny_model(seed=1), {str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 9, result.stderr.decode()
    assert sha256_file(path) == before.sha256
    torch.testing.assert_close(outputs(load_model(path)), outputs(tiny_model(seed=0)))
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert all(name.startswith(".tiny.pth.") and name.endswith(".tmp") for name in leftovers)
