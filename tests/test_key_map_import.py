"""Importing through a user's key map: ``import_state_dict(..., key_map=...)`` and
``video-interpreter convert --key-map FILE``: strict, reported transform by transform, and
reversible back to the source library's keys."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from video_interpreter.checkpoint import LoadError, import_state_dict, load_model, load_weights
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError
from video_interpreter.model import build_model
from video_interpreter.zoo import export_state_dict, read_key_map

from .test_checkpoint import tiny_model, tiny_spec

# A made-up library that stores the tiny model's tensors in other layouts: the conv kernel
# flattened, its bias in two halves, the BatchNorm statistics in one tensor, and a version
# counter the model does not have.
KEY_MAP = r"""
source: otherlib
transforms:
  - reshape: {from: '^conv\.weight$', to: backbone.0.weight, shape: [4, 3, 3, 3, 3],
              source_shape: [4, 81]}
  - concat: {from: ['^conv\.bias_lo$', conv.bias_hi], to: backbone.0.bias, dim: 0}
  - split: {from: '^bn\.stats$', to: [backbone.1.running_mean, backbone.1.running_var], dim: 0,
            parts: 2}
  - fill: {to: backbone.1.num_batches_tracked, shape: [], dtype: int64, value: 0}
  - drop: {from: '^version$', shape: [], dtype: int64, value: 2}
rules:
  - {match: '^bn\.(weight|bias)$', replace: 'backbone.1.\1'}
  - {match: '^fc\.(.*)$', replace: 'heads.action.fc.\1'}
"""


def otherlib_state_dict() -> dict[str, torch.Tensor]:
    ours = tiny_model().state_dict()
    return {
        "conv.weight": ours["backbone.0.weight"].reshape(4, 81),
        "conv.bias_lo": ours["backbone.0.bias"][:2].clone(),
        "conv.bias_hi": ours["backbone.0.bias"][2:].clone(),
        "bn.stats": torch.cat([ours["backbone.1.running_mean"], ours["backbone.1.running_var"]]),
        "bn.weight": ours["backbone.1.weight"],
        "bn.bias": ours["backbone.1.bias"],
        "fc.weight": ours["heads.action.fc.weight"],
        "fc.bias": ours["heads.action.fc.bias"],
        "version": torch.tensor(2),
    }


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec()), encoding="utf-8")
    key_map = tmp_path / "otherlib.yaml"
    key_map.write_text(KEY_MAP, encoding="utf-8")
    source = tmp_path / "otherlib.pth"
    torch.save(otherlib_state_dict(), source)
    return {"spec": spec, "key_map": key_map, "source": source, "out": tmp_path / "tiny.pth"}


def edited_key_map(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text
    edited = path.with_name("edited.yaml")
    edited.write_text(text.replace(old, new), encoding="utf-8")
    return edited


def test_import_fills_every_tensor_and_reports_each_transform(files: dict[str, Path]) -> None:
    saved, report = import_state_dict(
        files["spec"], files["source"], files["out"], key_map=files["key_map"]
    )
    assert report.ok
    assert [t.op for t in report.transformed] == ["reshape", "concat", "split", "fill", "drop"]
    assert str(report.transformed[0]) == (
        "reshape (transforms[0]): conv.weight (4, 81) -> backbone.0.weight (4, 3, 3, 3, 3)"
    )
    text = str(report)
    assert (
        "transformed     split (transforms[2]): bn.stats (8,) -> backbone.1.running_mean (4,)"
        in text
    )
    assert "5 transformed" in report.summary()
    expected = tiny_model().state_dict()
    loaded = load_model(saved.path).state_dict()
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(loaded[key], tensor), key


def test_a_model_exports_back_to_the_source_librarys_tensors(files: dict[str, Path]) -> None:
    saved, _ = import_state_dict(
        files["spec"], files["source"], files["out"], key_map=files["key_map"]
    )
    exported = export_state_dict(load_model(saved.path), read_key_map(files["key_map"]))
    source = otherlib_state_dict()
    assert exported.keys() == source.keys()
    for key, tensor in source.items():
        assert exported[key].dtype == tensor.dtype, key
        assert torch.equal(exported[key], tensor), key


def test_an_import_leaving_tensors_over_names_them_with_hints(files: dict[str, Path]) -> None:
    key_map = edited_key_map(files["key_map"], "heads.action.fc.", "heads.action.fcc.")
    key_map = edited_key_map(key_map, "  - split:", "  # - split:")
    key_map = edited_key_map(key_map, "            parts: 2}", "  #")
    with pytest.raises(LoadError) as caught:
        import_state_dict(files["spec"], files["source"], files["out"], key_map=key_map)
    report = caught.value.report
    assert report.unmapped == ("bn.stats",)
    assert set(report.missing) == {
        "backbone.1.running_mean",
        "backbone.1.running_var",
        "heads.action.fc.weight",
        "heads.action.fc.bias",
    }
    message = str(caught.value)
    assert message.startswith(
        "weights do not fit the model (the key map leaves tensors over or shapes that differ)"
    )
    assert (
        "missing         heads.action.fc.weight (5, 4) "
        "(closest produced key: heads.action.fcc.weight)" in message
    )
    assert "unexpected      heads.action.fcc.weight (5, 4)" in message
    assert "unmapped        bn.stats (8,)" in message
    assert not files["out"].exists()


def test_a_shape_that_differs_after_a_transform_names_both_shapes(files: dict[str, Path]) -> None:
    key_map = edited_key_map(files["key_map"], "shape: [4, 3, 3, 3, 3]", "shape: [4, 3, 27]")
    with pytest.raises(
        LoadError, match=r"backbone\.0\.weight: checkpoint \(4, 3, 27\), model \(4, 3, 3, 3, 3\)"
    ):
        import_state_dict(files["spec"], files["source"], files["out"], key_map=key_map)


def test_the_key_map_may_name_the_spec_and_be_given_as_an_object(files: dict[str, Path]) -> None:
    named = files["key_map"].with_name("named.yaml")
    named.write_text("architecture: tiny.yaml\n" + KEY_MAP, encoding="utf-8")  # beside it
    _, report = import_state_dict(None, files["source"], files["out"], key_map=read_key_map(named))
    assert report.ok
    with pytest.raises(
        CheckpointError, match="names no architecture; pass the spec to import into"
    ):
        import_state_dict(None, files["source"], files["out"], key_map=files["key_map"])
    with pytest.raises(CheckpointError, match="give a key map or a library"):
        import_state_dict(
            files["spec"], files["source"], files["out"], key_map=named, library="torchvision"
        )
    with pytest.raises(CheckpointError, match="the zoo's key maps are found by spec name"):
        import_state_dict(files["spec"], files["source"], files["out"])


def test_the_source_may_be_a_state_dict_in_memory(files: dict[str, Path]) -> None:
    saved, report = import_state_dict(
        files["spec"], otherlib_state_dict(), files["out"], key_map=files["key_map"]
    )
    assert report.summary().startswith("state dict (otherlib) -> tiny/t1: 9 loaded, 0 missing")
    assert load_model(saved.path).spec.name == "tiny"
    not_tensors: dict[str, Any] = {"x": 1.0}
    with pytest.raises(CheckpointError, match=r"1 entries that are not str -> tensor, e\.g\. 'x'"):
        import_state_dict(files["spec"], not_tensors, files["out"], key_map=files["key_map"])


def test_load_weights_takes_a_key_map_and_reinitialises_a_new_head(files: dict[str, Path]) -> None:
    """Fine-tuning from another library's weights: its key map, and a head for 3 classes."""
    torch.manual_seed(1)
    model = build_model(tiny_spec(num_classes=3))
    report = load_weights(
        model, otherlib_state_dict(), key_map=read_key_map(files["key_map"]), reinit=["heads.*"]
    )
    assert [t.op for t in report.transformed] == ["reshape", "concat", "split", "fill", "drop"]
    assert set(report.reinitialized) == {"heads.action.fc.weight", "heads.action.fc.bias"}
    expected = tiny_model().state_dict()
    assert torch.equal(model.state_dict()["backbone.0.weight"], expected["backbone.0.weight"])
    with pytest.raises(LoadError, match=r"unexpected      extra\.w \(2,\)"):
        load_weights(
            build_model(tiny_spec()),
            {**otherlib_state_dict(), "extra.w": torch.zeros(2)},
            key_map=read_key_map(files["key_map"]),
        )


# -- the command line --------------------------------------------------------------------------


def test_convert_key_map_imports_and_prints_each_transform(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["convert", "--key-map", str(files["key_map"]), "--spec", str(files["spec"])]
    assert main([*argv, str(files["source"]), str(files["out"])]) == 0
    out = capsys.readouterr().out
    assert "9 loaded, 0 missing, 0 unexpected, 0 shape mismatches" in out
    assert (
        "  concat (transforms[1]): conv.bias_lo (2,) + conv.bias_hi (2,) -> backbone.0.bias (4,)"
        in out
    )
    assert f"wrote {files['out']}" in out
    assert load_model(files["out"]).spec.name == "tiny"


def test_convert_reports_an_invalid_key_map_at_its_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key_map = edited_key_map(files["key_map"], "parts: 2}", "parts: 3}")
    argv = ["convert", "--key-map", str(key_map), "--spec", str(files["spec"])]
    assert main([*argv, str(files["source"]), str(files["out"])]) == 2
    assert capsys.readouterr().err == (
        f"{key_map}:8:20: transforms[2].split.parts: parts 3 for 2 outputs; they must be equal\n"
    )


def test_convert_refusing_an_import_exits_1_naming_the_keys(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key_map = edited_key_map(files["key_map"], "'^fc\\.(.*)$'", "'^fc\\.(weight)$'")
    argv = ["convert", "--key-map", str(key_map), "--spec", str(files["spec"])]
    assert main([*argv, str(files["source"]), str(files["out"])]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weights do not fit the model")
    assert (
        "unmapped        fc.bias (5,) ('fc.weight' is covered, renamed to 'heads.action.fc.weight')"
        in err
    )
    assert "missing         heads.action.fc.bias (5,)" in err


def test_convert_key_map_usage_errors(files: dict[str, Path]) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["convert", "--key-map", str(files["key_map"]), "a", "b", "c"])
    with pytest.raises(SystemExit, match="2"):
        main(
            [
                "convert",
                "--key-map",
                str(files["key_map"]),
                "--from",
                "torchvision",
                "r3d_18",
                "a",
                "b",
            ]
        )


def test_convert_a_key_map_that_does_not_fit_the_tensors_exits_1(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key_map = edited_key_map(files["key_map"], "source_shape: [4, 81]", "source_shape: [81, 4]")
    argv = ["convert", "--key-map", str(key_map), "--spec", str(files["spec"])]
    assert main([*argv, str(files["source"]), str(files["out"])]) == 1
    assert textwrap.dedent(capsys.readouterr().err).startswith(
        f"error: transforms[0] (reshape) at {key_map}:4:5, applied to 'conv.weight': the tensor "
        "is (4, 81), source_shape says [81, 4]"
    )
