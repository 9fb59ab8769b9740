"""Checkpoints under hostile or unusual input: dtypes checked like shapes, bit-exact
``.safetensors`` round trips, architecture changes declared only by ``allow_spec_change``,
helpful errors for sharded directories and foreign state dicts, a short ``Checkpoint`` repr,
and a bounded fuzz of headers and ``.pth`` contents that finds nothing but ``CheckpointError``."""

from __future__ import annotations

import contextlib
import json
import struct
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_interpreter.checkpoint import (
    DtypeMismatch,
    LoadError,
    load_checkpoint,
    load_model,
    load_weights,
    read_metadata,
    save_model,
)
from video_interpreter.checkpoint._format import MAX_NESTING, content_digest
from video_interpreter.checkpoint._safetensors import ALIGNMENT, read_header
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError
from video_interpreter.model import VideoInterpreter, build_model

from .conftest import tiny_spec


def tiny_model(seed: int = 0, **changes: Any) -> VideoInterpreter:
    torch.manual_seed(seed)
    return build_model(tiny_spec(**changes))


# -- 8: a .safetensors round trip reproduces outputs exactly -----------------------------------
@pytest.mark.parametrize(
    ("spec", "clip", "suffix"),
    [
        (tiny_spec(out_channels=3, bias=True, num_classes=7), (2, 3, 4, 16, 16), ".safetensors"),
        (tiny_spec(out_channels=3, bias=True, num_classes=7), (2, 3, 4, 16, 16), ".pth"),
        ("v1", (1, 3, 4, 32, 32), ".safetensors"),  # differed by 3e-8 when mapped unaligned
    ],
    ids=["tiny-odd-sizes-safetensors", "tiny-odd-sizes-pth", "v1-safetensors"],
)
def test_a_saved_model_reproduces_its_outputs_exactly(
    tmp_path: Path, spec: Any, clip: tuple[int, ...], suffix: str
) -> None:
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = torch.randn(*clip)
    with torch.no_grad():
        expected = model(x)["action"]
    saved = save_model(model, tmp_path / f"m{suffix}")
    loaded = load_model(saved.path).eval()
    assert all(t.data_ptr() % ALIGNMENT == 0 for t in loaded.state_dict().values())
    with torch.no_grad():
        assert torch.equal(loaded(x)["action"], expected)


def test_safetensors_data_is_64_byte_aligned_in_the_file(tmp_path: Path) -> None:
    saved = save_model(
        build_model("v1", device="meta").to_empty(device="cpu"), tmp_path / "v.safetensors"
    )
    header = read_header(saved.path)
    assert header.data_start % ALIGNMENT == 0
    aligned = [e for e in header.tensors.values() if e.nbytes % ALIGNMENT == 0]
    assert len(aligned) > len(header.tensors) // 2
    assert all(e.start % ALIGNMENT == 0 for e in aligned)
    for entry in header.tensors.values():  # every tensor at least at a multiple of its item size
        assert entry.start % max(1, entry.nbytes // max(1, _numel(entry.shape))) == 0


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


# -- 7: dtypes are checked and reported like shapes ---------------------------------------------
def test_a_float64_weight_in_a_plain_state_dict_loads_as_float32_and_runs(tmp_path: Path) -> None:
    state = tiny_model().state_dict()
    state["backbone.0.weight"] = state["backbone.0.weight"].double()
    torch.save(state, tmp_path / "plain.pth")
    model = load_model(tmp_path / "plain.pth", spec=tiny_spec())
    assert model.get_parameter("backbone.0.weight").dtype == torch.float32
    assert model(torch.randn(1, 3, 4, 16, 16))["action"].shape == (1, 5)
    report = load_weights(tiny_model(seed=1), state)
    assert report.cast == ("backbone.0.weight",)
    assert "cast            backbone.0.weight float64 -> float32" in str(report)


def test_a_state_dict_in_one_other_floating_dtype_keeps_it(tmp_path: Path) -> None:
    state = {
        k: v.double() if v.is_floating_point() else v for k, v in tiny_model().state_dict().items()
    }
    torch.save(state, tmp_path / "double.pth")
    model = load_model(tmp_path / "double.pth", spec=tiny_spec())
    assert model.get_parameter("backbone.0.weight").dtype == torch.float64
    assert model(torch.randn(1, 3, 4, 16, 16, dtype=torch.float64))["action"].dtype == torch.float64


@pytest.mark.parametrize(
    ("key", "dtype", "shown"),
    [
        ("backbone.0.weight", torch.int64, "checkpoint int64, model float32"),
        ("heads.action.fc.bias", torch.bool, "checkpoint bool, model float32"),
        ("backbone.1.num_batches_tracked", torch.float32, "checkpoint float32, model int64"),
    ],
)
def test_a_non_floating_dtype_mismatch_is_refused_and_reported(
    tmp_path: Path, key: str, dtype: torch.dtype, shown: str
) -> None:
    state = tiny_model().state_dict()
    state[key] = state[key].to(dtype)
    target = tiny_model(seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(LoadError, match="1 dtype mismatch") as caught:
        load_weights(target, state)
    assert caught.value.report.dtype_mismatched == (
        DtypeMismatch(key, str(dtype), str(before[key].dtype)),
    )
    assert f"{key}: {shown}" in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    torch.save(state, tmp_path / "plain.pth")
    with pytest.raises(LoadError, match="dtype mismatch"):
        load_model(tmp_path / "plain.pth", spec=tiny_spec())


def test_convert_of_a_state_dict_with_an_integer_weight_exits_1_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tiny_model().state_dict()
    state["backbone.0.weight"] = state["backbone.0.weight"].to(torch.int64)
    torch.save(state, tmp_path / "plain.pth")
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec()))
    code = main(
        ["convert", str(tmp_path / "plain.pth"), str(tmp_path / "out.pth"), "--spec", str(spec)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "backbone.0.weight: checkpoint int64, model float32" in err
    assert "Traceback" not in err


# -- 9: another architecture needs allow_spec_change, whatever reinit says ---------------------
@pytest.mark.parametrize("reinit", [["heads.action.*"], ["*"]])
def test_reinit_alone_does_not_allow_another_architecture(
    tmp_path: Path, reinit: list[str]
) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.pth")
    target = tiny_model(num_classes=7)
    with pytest.raises(CheckpointError, match="pass allow_spec_change=True"):
        load_weights(target, saved.path, reinit=reinit)
    with pytest.raises(CheckpointError, match="refusing to load weights of a different"):
        load_weights(target, saved.path, inflate=True)
    report = load_weights(target, saved.path, reinit=reinit, allow_spec_change=True)
    assert "heads.action.fc.weight" in report.reinitialized


# -- CLI and repr: sharded directories, foreign state dicts, printing a checkpoint -------------
def test_a_checkpoint_prints_in_one_short_line(tmp_path: Path) -> None:
    saved = save_model(build_model("v1", device="meta").to_empty(device="cpu"), tmp_path / "v.pth")
    text = repr(load_checkpoint(saved.path))
    assert "\n" not in text
    assert len(text) < 300
    assert text.startswith(f"Checkpoint('{saved.path}', pth, kind='video_interpreter'")
    assert "architecture='video_interpreter/v1'" in text


def test_a_sharded_directory_points_to_consolidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from video_interpreter.distributed import save_sharded

    directory = tmp_path / "run"
    save_sharded(tiny_model(), directory)
    for command in ("inspect", "summary"):
        assert main([command, str(directory)]) == 1
        err = capsys.readouterr().err
        assert f"video-interpreter consolidate {directory} OUT.pth" in err
        assert "Is a directory" not in err
    with pytest.raises(CheckpointError, match=r"is a sharded checkpoint .* consolidate"):
        load_model(directory)
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        load_model(tmp_path)


def test_a_torchvision_state_dict_gets_a_hint_to_convert_it(tmp_path: Path) -> None:
    # torchvision's video ResNet key names (tiny shapes): stem, layers, fc.
    state = {
        "stem.0.weight": torch.zeros(4, 3, 3, 3, 3),
        "stem.1.weight": torch.zeros(4),
        "layer1.0.conv1.0.weight": torch.zeros(4, 4, 3, 3, 3),
        "fc.weight": torch.zeros(5, 4),
        "fc.bias": torch.zeros(5),
    }
    with pytest.raises(LoadError, match=r"^weights do not fit the model \(the keys are those of a"):
        load_weights(tiny_model(), state)
    with pytest.raises(LoadError, match="convert --from torchvision ARCH IN OUT") as caught:
        load_weights(tiny_model(), state)
    assert "one of mc3_18, r2plus1d_18, r3d_18" in str(caught.value)
    with pytest.raises(LoadError) as plain:  # a state dict of this package's keys: no hint
        load_weights(tiny_model(), {"backbone.0.weight": torch.zeros(8, 3, 3, 3, 3)})
    assert "torchvision" not in str(plain.value)


# -- a bounded fuzz of checkpoint headers and .pth contents ------------------------------------
def _nested(depth: int, leaf: Any = "x") -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def _safetensors(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pristine")
    model = tiny_model()
    st_path = save_model(model, folder / "m.safetensors").path
    pth_path = save_model(model, folder / "m.pth").path
    payload = torch.load(pth_path, weights_only=True)
    raw = st_path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return {
        "payload": payload,
        "header": json.loads(raw[8 : 8 + length]),
        "data": raw[8 + length :],
    }


class _Pristine(dict[str, Any]):
    def __repr__(self) -> str:
        return "<pristine checkpoint>"


def _open_all_ways(path: Path) -> None:
    """Every reader: only a CheckpointError may come out, and quickly."""
    for read in (read_metadata, load_checkpoint, lambda p: load_model(p, spec=tiny_spec())):
        with contextlib.suppress(CheckpointError):
            read(path)


_DEPTHS = st.sampled_from([MAX_NESTING - 5, MAX_NESTING + 5, 3_000, 100_000])


@settings(
    max_examples=40,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_safetensors_headers_raise_nothing_but_checkpoint_error(
    tmp_path: Path, pristine: dict[str, Any], data: st.DataObject
) -> None:
    header = json.loads(json.dumps(pristine["header"]))
    tensors = pristine["data"]
    kind = data.draw(
        st.sampled_from(["deep-header", "deep-metadata", "deep-spec", "field", "bytes"])
    )
    depth = data.draw(_DEPTHS)
    if kind == "deep-header":
        raw = ("[" * depth + "]" * depth).encode()
    else:
        meta = header["__metadata__"]
        if kind == "deep-metadata":
            meta[data.draw(st.sampled_from(sorted(meta)))] = "[" * depth + "]" * depth
        elif kind == "deep-spec":
            spec = json.loads(meta["spec"])
            spec["backbone"][0]["kernel_size"] = _nested(min(depth, 500), 3)
            meta["spec"] = json.dumps(spec)
        elif kind == "field":
            name = data.draw(st.sampled_from(sorted(meta)))
            value = data.draw(
                st.one_of(
                    st.just(10**400),
                    st.floats(allow_nan=True),
                    st.text(max_size=5),
                    st.lists(st.integers(), max_size=3),
                    st.just({"metric": "acc", "mode": "sideways"}),
                )
            )
            meta[name] = json.dumps(value)
        raw = json.dumps(header, separators=(",", ":")).encode()
        if kind == "bytes":
            at = data.draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=4)) + raw[at + 1 :]
    path = tmp_path / f"fuzz-{kind}.safetensors"
    path.write_bytes(_safetensors(raw + b" " * (-len(raw) % 8), tensors))
    _open_all_ways(path)


@settings(
    max_examples=30,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from(["notes", "spec", "metrics", "loss", "epoch", "monitor", "rng_state"]),
    depth=_DEPTHS,
    redigest=st.booleans(),
)
def test_fuzzed_pth_contents_raise_nothing_but_checkpoint_error(
    tmp_path: Path, pristine: dict[str, Any], field: str, depth: int, redigest: bool
) -> None:
    payload = dict(pristine["payload"])
    depth = min(depth, 3_000)  # deeper than this torch.save itself cannot pickle
    if field == "spec":
        spec = json.loads(json.dumps(payload["spec"]))
        spec["backbone"][0]["kernel_size"] = _nested(depth, 3)
        payload["spec"] = spec
    elif field in ("loss", "epoch"):
        payload[field] = 10**400 if depth > MAX_NESTING else -(10**30)
    else:
        payload[field] = _nested(depth)
    if redigest:  # a digest that matches, so the reader gets past it
        with contextlib.suppress(CheckpointError):
            payload["digest"] = content_digest({k: v for k, v in payload.items() if k != "digest"})
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * depth + 1_000))
    try:
        torch.save(payload, tmp_path / "fuzz.pth")
    finally:
        sys.setrecursionlimit(limit)
    _open_all_ways(tmp_path / "fuzz.pth")


def test_a_deeply_nested_value_cannot_be_saved(tmp_path: Path) -> None:
    model = tiny_model()

    class Deep:
        def state_dict(self) -> Any:
            return {"state": _nested(MAX_NESTING + 10)}

        def load_state_dict(self, state: Any, /) -> None:
            return None

    with pytest.raises(CheckpointError, match=f"nested more than {MAX_NESTING} levels"):
        save_model(model, tmp_path / "deep.pth", scheduler=Deep())
