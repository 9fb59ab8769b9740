"""Summaries: counts equal the model's and torchvision's published figures, nothing allocated on
meta, the caller's model left as it was, stable renderings (golden file) and JSON round trips."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

import video_interpreter.summary._source as source_module
from video_interpreter import CheckpointError, SpecError, build_model
from video_interpreter.checkpoint import save_model
from video_interpreter.cli import main
from video_interpreter.summary import ModelSummary, parse_clip_shape, summarize
from video_interpreter.zoo import list_models

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "architectures" / "configs"
GOLDEN = Path(__file__).resolve().parent / "golden"

# Zoo specs with a torchvision counterpart, and v1, which is R(2+1)D-18.
TORCHVISION_NAMES = tuple(list_models(library="torchvision"))
ZOO = [("v1", "r2plus1d_18")] + [
    (path.stem, path.stem)
    for path in sorted(CONFIGS.glob("*.yaml"))
    if path.stem in TORCHVISION_NAMES
]

TINY: dict[str, Any] = {
    "spec_version": 1,
    "name": "tiny",
    "version": "v1",
    "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
    "backbone": [
        {
            "name": "stem",
            "type": "Sequential",
            "layers": [
                {
                    "type": "Conv3d",
                    "out_channels": 8,
                    "kernel_size": 3,
                    "padding": 1,
                    "bias": False,
                },
                {"type": "BatchNorm3d"},
                {"type": "ReLU"},
            ],
        },
        {
            "name": "stage",
            "type": "ResStage",
            "block": "BasicBlock3d",
            "depth": 2,
            "out_channels": 16,
            "stride": 2,
        },
    ],
    "neck": {"type": "GlobalAvgPool3d"},
    "heads": {
        "action": {"type": "ClassificationHead", "num_classes": 5},
        "scene": {"type": "ClassificationHead", "num_classes": 3},
    },
}


def _published(arch: str) -> dict[str, Any]:
    weights = torchvision.models.get_model_weights(arch)
    meta: dict[str, Any] = next(iter(weights)).meta
    return meta


class _Tied(nn.Module):
    """A clip model whose two linear layers share one weight tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)
        self.norm = nn.BatchNorm3d(4)
        self.first = nn.Linear(4, 4, bias=False)
        self.second = nn.Linear(4, 4, bias=False)
        self.second.weight = self.first.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.norm(self.conv(x)).mean(dim=(2, 3, 4))
        out: torch.Tensor = self.second(self.first(pooled))
        return out


@pytest.fixture(scope="module")
def tiny() -> ModelSummary:
    return summarize(TINY, depth=3)  # three levels: the golden file and the row tests


# -- counts ------------------------------------------------------------------------------------


def test_parameter_counts_equal_the_models() -> None:
    model = build_model(TINY, device="meta")
    model.heads["scene"].requires_grad_(False)
    result = summarize(model)
    assert result.total_params == sum(p.numel() for p in model.parameters())
    assert result.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert result.non_trainable_params == sum(p.numel() for p in model.heads["scene"].parameters())
    assert result.param_bytes == 4 * result.total_params


def test_a_tensor_shared_by_two_modules_is_counted_once() -> None:
    result = summarize(_Tied(), input_shape=(3, 2, 4, 4))
    assert result.total_params == 3 * 4 + 4 + 4 + 4 + 16  # conv, norm, one shared 4x4 weight


def test_the_param_column_sums_to_the_total_at_every_depth(tiny: ModelSummary) -> None:
    for depth in (0, 1, 2, 5):
        shallow = summarize(TINY, depth=depth)
        shown = [cells[0] for cells in shallow._shown()]
        assert sum(int(cell.replace(",", "")) for cell in shown if cell != "--") == (
            shallow.total_params
        )
        assert max(row.depth for row in shallow.rows) <= depth


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "arch"), ZOO, ids=[name for name, _ in ZOO])
def test_macs_and_params_equal_torchvision_published_figures(spec: str, arch: str) -> None:
    result = summarize(CONFIGS / f"{spec}.yaml", depth=1)
    published = _published(arch)
    assert round(result.macs / 1e9, 3) == published["_ops"]
    assert result.flops == 2 * result.macs
    assert result.total_params == published["num_params"]


def test_the_zoo_checks_always_include_v1_and_r2plus1d_18() -> None:
    assert ("v1", "r2plus1d_18") in ZOO
    assert ("r2plus1d_18", "r2plus1d_18") in ZOO


def test_macs_and_shapes_scale_with_batch_size(tiny: ModelSummary) -> None:
    doubled = summarize(TINY, batch_size=2)
    assert doubled.macs == 2 * tiny.macs
    assert doubled.input_shape == (2, 3, 4, 16, 16)
    assert doubled.outputs == {"action": (2, 5), "scene": (2, 3)}
    assert doubled.activation_bytes == 2 * tiny.activation_bytes


def test_activation_memory_counts_every_leaf_output(tiny: ModelSummary) -> None:
    # stem: conv, norm, relu (8x4x16x16 each); the stage's leaves are counted the same way.
    assert tiny.activation_bytes > 3 * 8 * 4 * 16 * 16 * 4
    assert tiny.buffer_bytes > 0  # batch norm running statistics


# -- the layer table ---------------------------------------------------------------------------


def test_row_names_are_module_paths_as_in_the_state_dict(tiny: ModelSummary) -> None:
    paths = [row.path for row in tiny.rows]
    assert paths[:4] == ["", "backbone", "backbone.stem", "backbone.stem.0"]
    for path in ("backbone.stage.0", "backbone.stage.1", "heads.action", "heads.scene.fc"):
        assert path in paths
    keys = build_model(TINY, device="meta").state_dict()
    assert "backbone.stage.0.conv1.0.weight" in keys
    assert "heads.scene.fc.weight" in keys


def test_rows_give_output_shapes_with_the_batch(tiny: ModelSummary) -> None:
    shapes = {row.path: row.output_shape for row in tiny.rows}
    assert shapes["backbone.stem"] == (1, 8, 4, 16, 16)
    assert shapes["backbone.stage"] == (1, 16, 2, 8, 8)
    assert shapes["heads.scene"] == (1, 3)
    assert shapes["heads"] is None  # a ModuleDict is not called itself
    assert shapes[""] is None  # two heads: the outputs are listed separately
    assert tiny.outputs == {"action": (1, 5), "scene": (1, 3)}


def test_the_text_table_matches_the_golden_file(tiny: ModelSummary) -> None:
    golden = GOLDEN / "summary_tiny.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(tiny.to_text(), encoding="utf-8")
    assert tiny.to_text() == golden.read_text(encoding="utf-8")


def test_markdown_has_one_table_row_per_layer_and_the_totals(tiny: ModelSummary) -> None:
    text = tiny.to_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(tiny.rows) - 1  # the model's own row is in bold, not code
    assert "| `backbone.stage.0` | BasicBlock3d | (1, 16, 2, 8, 8) |" in text
    assert f"| Total params | {tiny.total_params:,} |" in text


def test_json_round_trips_to_an_equal_summary(tiny: ModelSummary) -> None:
    text = tiny.to_json()
    data = json.loads(text)
    assert data["macs"] * 2 == data["flops"]
    assert data["layers"][0]["path"] == ""
    again = ModelSummary.from_json(text)
    assert again == tiny
    assert again.to_text() == tiny.to_text()


def test_from_json_refuses_a_non_object() -> None:
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        ModelSummary.from_json("[1, 2]")


# -- input shapes ------------------------------------------------------------------------------


def test_an_input_shape_overrides_the_specs_clip() -> None:
    small = summarize(TINY, input_shape="3x2x8x8")
    assert small.input_shape == (1, 3, 2, 8, 8)
    backbone = {row.path: row.macs for row in summarize(TINY).rows}["backbone"]
    assert backbone == 8 * {row.path: row.macs for row in small.rows}["backbone"]  # 8x fewer voxels


@pytest.mark.parametrize("bad", ["3x16x112", "3x16x0x112", "axbxcxd", (3, 16, 112, 112.0)])
def test_a_malformed_input_shape_is_a_spec_error(bad: Any) -> None:
    with pytest.raises(SpecError, match=r"is not a clip shape: give four positive integers"):
        parse_clip_shape(bad)


def test_an_input_the_model_cannot_take_names_the_failing_module() -> None:
    with pytest.raises(SpecError, match=r"failed in module 'backbone\.stem\.0'"):
        summarize(TINY, input_shape=(5, 4, 16, 16))  # 5 channels into a 3-channel conv


def test_a_model_without_a_spec_needs_an_input_shape() -> None:
    with pytest.raises(SpecError, match=r"_Tied has no spec .* give input_shape"):
        summarize(_Tied())


# -- nothing allocated, nothing disturbed --------------------------------------------------------


def test_a_spec_is_summarised_without_allocating_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[nn.Module] = []

    def spy(*args: Any, **kwargs: Any) -> nn.Module:
        model = build_model(*args, **kwargs)
        built.append(model)
        return model

    monkeypatch.setattr(source_module, "build_model", spy)
    summarize(CONFIGS / "v1.yaml", depth=1)
    (model,) = built
    assert all(p.is_meta for p in model.parameters())
    assert all(b.is_meta for b in model.buffers())


def test_a_real_model_runs_on_meta_stand_ins_and_gets_its_tensors_back() -> None:
    model = build_model(TINY)
    before = {name: (t, t.clone()) for name, t in model.state_dict(keep_vars=True).items()}
    seen: list[bool] = []
    hook = model.register_forward_pre_hook(
        lambda module, args: seen.extend(t.is_meta for t in module.state_dict().values())
    )
    result = summarize(model)
    hook.remove()
    assert seen
    assert all(seen)  # every parameter and buffer was a meta stand-in during the run
    after = model.state_dict(keep_vars=True)
    for name, (tensor, values) in before.items():
        assert after[name] is tensor  # the very same objects, on the CPU, unchanged
        torch.testing.assert_close(after[name].detach(), values, rtol=0, atol=0)
    assert result.macs == summarize(TINY).macs


def test_a_given_models_modes_are_restored_even_after_a_failure() -> None:
    model = build_model(TINY).train()
    model.backbone.get_submodule("stem").eval()  # mixed modes must come back exactly
    modes = {name: m.training for name, m in model.named_modules()}
    summarize(model)
    assert {name: m.training for name, m in model.named_modules()} == modes
    with pytest.raises(SpecError, match="failed in module"):
        summarize(model, input_shape=(5, 4, 16, 16))
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert not model._forward_hooks
    assert not model._forward_pre_hooks


def test_a_real_forward_on_the_cpu_gives_the_same_figures(tiny: ModelSummary) -> None:
    real = summarize(TINY, device="cpu", depth=3)
    assert real.device == "cpu"
    assert (real.macs, real.total_params, real.activation_bytes) == (
        tiny.macs,
        tiny.total_params,
        tiny.activation_bytes,
    )
    assert [r.output_shape for r in real.rows] == [r.output_shape for r in tiny.rows]


def test_a_meta_model_cannot_be_summarised_on_the_cpu() -> None:
    model = build_model(TINY, device="meta")
    with pytest.raises(Exception, match="weights are on the meta device"):
        summarize(model, device="cpu")


# -- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_checkpoint_is_summarised_from_its_embedded_spec(
    tmp_path: Path, tiny: ModelSummary, suffix: str
) -> None:
    path = tmp_path / f"tiny{suffix}"
    save_model(build_model(TINY), path)
    assert summarize(path, depth=3) == tiny
    assert summarize(str(path), depth=1).total_params == tiny.total_params


def test_a_plain_state_dict_has_no_architecture_to_summarise(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(build_model(TINY).state_dict(), path)
    with pytest.raises(CheckpointError, match="state dict without an embedded architecture"):
        summarize(path)


# -- command line ------------------------------------------------------------------------------


def test_cli_summary_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY), encoding="utf-8")
    assert main(["summary", str(spec), "--format", "json", "--depth", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "tiny v1"
    assert max(layer["depth"] for layer in data["layers"]) == 1


def test_cli_summary_prints_markdown_for_another_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY), encoding="utf-8")
    assert main(["summary", str(spec), "--format", "md", "--input", "3x2x8x8"]) == 0
    assert "on input (1, 3, 2, 8, 8)" in capsys.readouterr().out


def test_cli_summary_reads_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.safetensors"
    save_model(build_model(TINY), path)
    assert main(["summary", str(path)]) == 0
    assert "Total params:                          25,280" in capsys.readouterr().out


def test_cli_summary_rejects_a_bad_input_shape_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["summary", "v1", "--input", "3x16"]) == 2
    assert "is not a clip shape" in capsys.readouterr().err


def test_a_graph_model_is_summarised_per_node_with_the_nodes_each_reads() -> None:
    summary = summarize("slowfast_r50", depth=2)
    rows = {row.path: row for row in summary.rows}
    assert rows["backbone.slow1"].inputs == ("slow_stem", "fuse1")
    assert rows["backbone.fuse1"].inputs == ("fast_stem",)
    assert rows["backbone.fast_stem"].inputs == ("input",)
    assert rows["backbone.pooled"].inputs == ("slow_pool", "fast_pool")
    assert rows["neck"].inputs == ("pooled",)
    assert rows["heads.action"].inputs == ("neck",)
    assert rows["backbone.slow_res4"].macs > 0
    text = summary.to_text()
    assert "Inputs" in text.splitlines()[2]
    assert re.search(
        r"backbone\.slow1\s+Concatenate\s+slow_stem, fuse1\s+\(1, 80, 8, 56, 56\)", text
    )
    assert "| `backbone.slow1` | Concatenate | slow_stem, fuse1 |" in summary.to_markdown()
    assert ModelSummary.from_json(summary.to_json()) == summary


def test_a_chain_model_has_no_inputs_column() -> None:
    summary = summarize("tiny_resnet", depth=1)
    assert not summary.is_graph
    assert "Inputs" not in summary.to_text()
