"""Export: every shipped spec to torch.export (.pt2) and ONNX (.onnx) with parity against eager,
torch.compile without graph breaks, dynamic frames where the architecture allows, bad input."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from torch import nn

from tests.conftest import TINY_SPEC
from video_interpreter import (
    ExportError,
    Layout,
    VideoInterpreter,
    build_model,
    check_export,
    export_model,
    register_layer,
    save_model,
)
from video_interpreter.cli import main
from video_interpreter.export import (
    ONNX_OPSET,
    TOLERANCES,
    WEAK_SPREAD,
    check_frames,
    exported_metadata,
    spec_json,
)
from video_interpreter.layers import LAYERS

CONFIGS = Path(__file__).resolve().parent.parent / "architectures" / "configs"
SPECS = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
TINY = [name for name in SPECS if name.startswith("tiny_")]

# Smaller clips where a spec allows them (the architecture, depth and widths unchanged unless
# noted).
# s3d's neck pools a fixed 2x7x7 window, which needs the full 16x224x224 clip.
_SMALL = ["input.frames=4", "input.height=32", "input.width=32"]
_SMALL_64 = ["input.frames=4", "input.height=64", "input.width=64"]
REDUCED: dict[str, list[str]] = {
    "r3d_18": _SMALL,
    "mc3_18": _SMALL,
    "r2plus1d_18": _SMALL,
    "v1": _SMALL,
    "video_transformer_s": _SMALL,
    "slow_r50": _SMALL,
    "slowfast_r50": ["input.frames=8", "input.height=32", "input.width=32"],  # slow path: T/4
    # res4 at R50's 6 blocks: with random weights its 23 blocks drive the logits to ~1e3, where
    # float32 rounding alone exceeds ONNX's absolute tolerance; every op (the 5-frame fusion
    # kernel included) is still the R101 spec's.
    "slowfast_r101": [
        "input.frames=8",
        "input.height=32",
        "input.width=32",
        "arguments.res4_depth=6",
    ],
    "csn_r101": _SMALL_64,
    "r2plus1d_r50": _SMALL,
    "mvit_base_16x4": _SMALL_64,
    "mvit_v2_s": _SMALL_64,
    "swin3d_t": _SMALL_64,
    "x3d_xs": _SMALL_64,
    "x3d_s": _SMALL_64,
    "x3d_m": _SMALL_64,
    "x3d_l": _SMALL_64,
    "videomae_base": _SMALL,
    "timesformer_base": _SMALL,
    "vivit_b": _SMALL,
    # 1 + 1 blocks of ViT-L's width instead of 24 + 3: exporting 300M parameters takes minutes.
    "vjepa2_vitl": [*_SMALL, "backbone.2.times=1", "backbone.4.times=1"],
}


def _spec_params() -> list[Any]:
    # Full-width zoo models are slow to trace (still run in CI); the tiny specs are not.
    return [
        pytest.param(name, marks=() if name in TINY else pytest.mark.slow, id=name)
        for name in SPECS
    ]


def _model(name: str) -> VideoInterpreter:
    torch.manual_seed(0)
    return build_model(name, overrides=REDUCED.get(name, [])).eval()


def assert_exports_with_parity(model: VideoInterpreter, out: Path) -> None:
    """Export with a dynamic batch, then run the file on a batch of 3 (traced at 2)."""
    exported = export_model(model, out)
    report = check_export(out, model, batch=3)
    assert report.ok, report.summary()
    assert report.tolerance == TOLERANCES[exported.format]
    metadata = exported_metadata(out)
    assert metadata["video_interpreter.fingerprint"] == model.spec.fingerprint
    assert build_model(spec_json(out), device="meta").spec.fingerprint == model.spec.fingerprint


@pytest.mark.parametrize("name", _spec_params())
def test_every_spec_exports_to_pt2_with_parity(name: str, tmp_path: Path) -> None:
    assert_exports_with_parity(_model(name), tmp_path / f"{name}.pt2")


@pytest.mark.parametrize("name", _spec_params())
def test_every_spec_exports_to_onnx_with_onnxruntime_parity(name: str, tmp_path: Path) -> None:
    assert_exports_with_parity(_model(name), tmp_path / f"{name}.onnx")


def test_a_pt2_file_runs_with_torch_export_load_alone(tmp_path: Path) -> None:
    model = _model("tiny_resnet")
    export_model(model, tmp_path / "m.pt2")
    extra = {"video_interpreter.spec": ""}
    program = torch.export.load(tmp_path / "m.pt2", extra_files=extra)
    clip = torch.randn(5, 3, 4, 32, 32)
    with torch.no_grad():
        got, want = program.module()(clip), model(clip)
    assert set(got) == {"action", "scene"}
    torch.testing.assert_close(got["scene"], want["scene"], rtol=0, atol=1e-5)
    assert json.loads(extra["video_interpreter.spec"])["name"] == "tiny_resnet"


def test_an_onnx_file_states_its_opset_heads_and_spec(tmp_path: Path) -> None:
    exported = export_model(_model("tiny_resnet"), tmp_path / "m.onnx")
    loaded = onnx.load(str(tmp_path / "m.onnx"))
    assert exported.opset == ONNX_OPSET
    assert {o.domain: o.version for o in loaded.opset_import}[""] == ONNX_OPSET
    assert [i.name for i in loaded.graph.input] == ["clip"]
    assert [o.name for o in loaded.graph.output] == ["action", "scene"]
    batch = loaded.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param  # symbolic, not a number
    props = {p.key: p.value for p in loaded.metadata_props}
    assert json.loads(props["video_interpreter.spec"])["name"] == "tiny_resnet"


@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_frames_stay_dynamic_where_the_architecture_allows(suffix: str, tmp_path: Path) -> None:
    model = _model("tiny_resnet")
    exported = export_model(model, tmp_path / f"m{suffix}", dynamic=("frames", "batch"))
    assert exported.dynamic == ("batch", "frames")
    report = check_export(exported.path, model, batch=3, frames=check_frames(model))
    assert report.input_shape == (3, 3, 8, 32, 32)
    assert report.ok, report.summary()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("tiny_transformer", r"fails in 'backbone\.embed'.*learned positions"),
        ("tiny_mvit", r"fails in 'backbone\.encoder'.*token grid"),
        ("tiny_swin", r"holds for 2 to 5 frames only"),
    ],
)
def test_frames_cannot_be_dynamic_where_sizes_are_fixed_at_build(
    name: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=f"(?s){reason}.*dynamic=\\('batch',\\)"):
        export_model(_model(name), tmp_path / "m.pt2", dynamic=("batch", "frames"))


def test_an_unknown_suffix_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"suffix '\.pt'; valid suffixes: \.pt2 .*\.onnx"):
        export_model("tiny_resnet", tmp_path / "m.pt")


def test_an_unknown_dynamic_dimension_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"unknown dynamic dimension 'height'.*batch, frames"):
        export_model("tiny_resnet", tmp_path / "m.pt2", dynamic=("batch", "height"))


def test_a_checkpoint_exports_with_its_own_weights_and_spec(tmp_path: Path) -> None:
    model = _model("tiny_resnet")
    saved = save_model(model, tmp_path / "m.safetensors")
    export_model(saved.path, tmp_path / "m.pt2")
    assert exported_metadata(tmp_path / "m.pt2")["video_interpreter.fingerprint"] == (
        model.spec.fingerprint
    )
    assert check_export(tmp_path / "m.pt2", model).ok


def test_a_checkpoint_without_a_spec_is_refused_with_what_to_do(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save(build_model(TINY_SPEC).state_dict(), plain)
    with pytest.raises(ExportError, match=r"without an embedded architecture.*convert .*--spec"):
        export_model(plain, tmp_path / "m.onnx")


def test_a_model_without_a_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="has no spec: export a model built by build_model"):
        export_model(nn.Linear(2, 2), tmp_path / "m.pt2")


@pytest.fixture
def restore_default_registry() -> Iterator[None]:
    """Undo registrations into the shared default registry."""
    saved = dict(LAYERS._entries)
    yield
    LAYERS._entries.clear()
    LAYERS._entries.update(saved)
    LAYERS._derived.clear()


class DataDependentGate(nn.Module):
    """Python control flow on tensor values: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.mean() > 0 else -x


_CALLS = itertools.count(1)


class CallCounter(nn.Module):
    """Python state outside the module, changed by forward: the exported graph freezes the
    value it saw while tracing, eager does not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * next(_CALLS)


def _with_layer(name: str, layer: type[nn.Module]) -> VideoInterpreter:
    register_layer(name, params={}, accepts=[Layout.CLIP], output=lambda x: x)(layer)
    spec = dict(TINY_SPEC, backbone=[*TINY_SPEC["backbone"], {"type": name}])
    return build_model(spec).eval()


@pytest.mark.usefixtures("restore_default_registry")
def test_the_parity_test_fails_for_a_layer_that_cannot_be_traced(tmp_path: Path) -> None:
    model = _with_layer("TestDataDependentGate", DataDependentGate)
    with pytest.raises(ExportError, match=r"torch\.export could not export tiny v1"):
        assert_exports_with_parity(model, tmp_path / "m.pt2")


@pytest.mark.usefixtures("restore_default_registry")
@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_the_parity_test_fails_for_a_layer_that_exports_wrong(suffix: str, tmp_path: Path) -> None:
    model = _with_layer("TestCallCounter", CallCounter)
    with pytest.raises(AssertionError, match="parity FAILED"):
        assert_exports_with_parity(model, tmp_path / f"m{suffix}")


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given (one per (re)compilation)."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(
        self, graph: torch.fx.GraphModule, inputs: list[torch.Tensor]
    ) -> Callable[..., Any]:
        self.graphs += 1
        return graph.forward


@pytest.mark.parametrize("name", TINY)
def test_tiny_specs_compile_in_one_graph_and_recompile_once_for_a_new_batch_size(
    name: str,
) -> None:
    torch._dynamo.reset()
    model = _model(name)
    backend = CountingBackend()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    c, t, h, w = model.spec.input
    with torch.no_grad():
        for batch in (1, 2, 3, 5, 1):
            clip = torch.randn(batch, c, t, h, w)
            got, want = compiled(clip), model(clip)
            for head in want:
                torch.testing.assert_close(got[head], want[head], rtol=0, atol=1e-4)
    # The first call compiles for batch 1; the second, at 2, once more with a symbolic batch
    # (sizes 0 and 1 are always specialised, so batch 1 keeps its own graph); no more after.
    assert backend.graphs <= 2


def test_inductor_compiles_a_tiny_spec_with_eager_outputs() -> None:
    model = _model("tiny_transformer")
    compiled = torch.compile(model, fullgraph=True)
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        got, want = compiled(clip), model(clip)
    torch.testing.assert_close(got["action"], want["action"], rtol=0, atol=1e-4)


def test_cli_export_checks_parity_and_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "tiny_resnet", str(out), "--dynamic", "batch,frames", "--check"]) == 0
    printed = capsys.readouterr().out
    assert f"opset {ONNX_OPSET}, dynamic: batch, frames" in printed
    assert "parity ok: onnxruntime (CPU) vs eager on input [1, 3, 4, 32, 32]" in printed
    assert "parity ok: onnxruntime (CPU) vs eager on input [1, 3, 8, 32, 32]" in printed


def test_cli_export_reports_bad_input_with_what_is_possible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "tiny_resnet", str(tmp_path / "m.tflite")]) == 2
    assert "valid suffixes: .pt2 (pt2), .onnx (onnx)" in capsys.readouterr().err
    assert main(["export", "tiny_mvit", str(tmp_path / "m.pt2"), "--dynamic", "batch,frames"]) == 1
    assert "cannot take a dynamic number of frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "tiny_resnet", str(tmp_path / "m.pt2"), "--dynamic", "width"])
    assert "unknown dimension 'width'; choose from batch, frames" in capsys.readouterr().err


def _tiny_layer_families() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """One tiny module per layer family of the transformers and pytorchvideo zoo, with the
    shape of one input sample."""
    from video_interpreter.layers.bottleneck import BottleneckBlock, ResBlock
    from video_interpreter.layers.mvit_v1 import MViTv1Encoder
    from video_interpreter.layers.vit import AddClassToken, SpaceTimePositions, ViTBlock

    grid = (2, 2, 2)
    return {
        # TimeSformer: class token, separate space/time positions, divided attention.
        "vit_divided_class_token": (
            nn.Sequential(
                AddClassToken(8),
                SpaceTimePositions(frames=2, area=4, dim=8),
                ViTBlock(8, grid, heads=2, attention="divided"),
            ),
            (8, 8),
        ),
        # V-JEPA 2: joint attention with 3D rotary positions, fused qkv.
        "vit_rotary": (ViTBlock(12, grid, heads=2, rotary=True, fused_qkv=True), (8, 12)),
        # MViT v1: separable positions and pooling attention that pools q, k and v.
        "mvit_v1_pooling": (
            MViTv1Encoder(
                8,
                (2, 4, 4),
                [
                    {"depth": 1, "dim": 8, "heads": 1},
                    {"depth": 1, "dim": 16, "heads": 2, "stride_q": [1, 2, 2]},
                ],
                stride_kv=[1, 2, 2],
            ),
            (8, 2, 4, 4),
        ),
        # SlowFast / CSN / R(2+1)D bottlenecks: plain, depthwise, factorised, strided shortcut.
        "bottleneck": (
            nn.Sequential(
                ResBlock(4, 8, (1, 2, 2), BottleneckBlock(4, 2, 8, stride=(1, 2, 2))),
                ResBlock(
                    8, 8, (1, 1, 1), BottleneckBlock(8, 8, 8, depthwise=True, kernel_b=(3, 3, 3))
                ),
                ResBlock(
                    8, 8, (1, 1, 1), BottleneckBlock(8, 4, 8, factorised=True, kernel_b=(3, 3, 3))
                ),
            ),
            (4, 4, 8, 8),
        ),
    }


@pytest.mark.parametrize("family", sorted(_tiny_layer_families()))
def test_zoo_layer_families_compile_in_one_graph_with_eager_outputs(family: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    module, sample = _tiny_layer_families()[family]
    module.eval()
    backend = CountingBackend()
    compiled = torch.compile(module, fullgraph=True, backend=backend)  # a graph break raises
    with torch.no_grad():
        for batch in (1, 2, 3, 1):
            x = torch.randn(batch, *sample)
            torch.testing.assert_close(compiled(x), module(x), rtol=0, atol=1e-5)
    assert backend.graphs <= 2


def _input_blind(name: str) -> VideoInterpreter:
    """A model whose heads ignore their features: every clip gives the heads' biases."""
    model = _model(name)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.startswith("heads.") and name.endswith(".fc.weight"):
                weight.zero_()
    return model


def test_a_check_warns_when_the_output_barely_depends_on_the_input(tmp_path: Path) -> None:
    model = _input_blind("tiny_resnet")
    export_model(model, tmp_path / "m.pt2")
    report = check_export(tmp_path / "m.pt2", model)
    assert report.ok  # an artefact that ignored the clip would agree just as well
    assert report.weak_heads == ["action", "scene"]
    assert report.input_spread == {"action": 0.0, "scene": 0.0}
    assert "\nwarning: weak evidence: the output barely depends on the input" in report.summary()


def test_a_check_of_a_model_that_reads_its_input_has_no_warning(tmp_path: Path) -> None:
    model = _model("tiny_resnet")
    export_model(model, tmp_path / "m.pt2")
    report = check_export(tmp_path / "m.pt2", model)
    assert report.weak_heads == []
    assert all(
        spread > WEAK_SPREAD * report.output_scale[h] for h, spread in report.input_spread.items()
    )
    assert "warning" not in report.summary()


def test_cli_export_check_prints_the_weak_evidence_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = save_model(_input_blind("tiny_resnet"), tmp_path / "blind.safetensors")
    assert main(["export", str(saved.path), str(tmp_path / "m.onnx"), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "parity ok: onnxruntime (CPU)" in printed
    assert "warning: weak evidence: the output barely depends on the input" in printed
