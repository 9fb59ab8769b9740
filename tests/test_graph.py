"""Graph specs: backbone nodes that name their inputs, merges, heads on inner nodes, and every
wiring mistake reported at its line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from video_interpreter import SpecError, build_model, load_model, load_spec, save_model
from video_interpreter.diagram import build_diagram, to_mermaid
from video_interpreter.layers import Graph, clip

WriteSpec = Callable[..., Path]

HEADER = """
spec_version: 1
name: probe
version: v1
input: {channels: 3, frames: 4, height: 16, width: 16}
"""
HEAD = (
    "heads: {action: {type: ClassificationHead, num_classes: 2}}\nneck: {type: GlobalAvgPool3d}\n"
)


def _problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [str(p) for p in info.value.problems]


def test_a_two_pathway_graph_runs_with_a_head_on_an_inner_node() -> None:
    model = build_model("tiny_two_pathway").eval()
    graph = model.backbone
    assert isinstance(graph, Graph)
    assert model.taps == {"motion": "fast"}
    clip_batch = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        out = model(clip_batch)
        fast = graph.run(clip_batch, keep=["fast"])["fast"]
        assert torch.equal(out["motion"], model.heads["motion"](fast))
        assert torch.equal(out["action"], model.heads["action"](model.features(clip_batch)))
    assert out["action"].shape == (2, 5)
    assert load_spec("tiny_two_pathway").types()["backbone"] == clip(24, 2, 16, 16)


def test_graph_nodes_are_keyed_by_their_names_and_values_are_dropped_after_their_last_reader() -> (
    None
):
    model = build_model("tiny_two_pathway")
    keys = list(model.state_dict())
    assert keys[0] == "backbone.fast.0.weight"
    assert "backbone.lateral.weight" in keys
    assert "backbone.excite.2.weight" in keys
    graph = model.backbone
    assert isinstance(graph, Graph)
    assert graph.last_use["fused"] == "gated"
    kept = graph.run(torch.randn(1, 3, 8, 32, 32))
    assert list(kept) == ["gated"]


def test_a_graph_model_saves_and_loads_with_the_same_outputs(tmp_path: Path) -> None:
    model = build_model("tiny_two_pathway").eval()
    saved = save_model(model, tmp_path / "graph.safetensors")
    loaded = load_model(saved.path).eval()
    clip_batch = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        for name, value in model(clip_batch).items():
            assert torch.equal(loaded(clip_batch)[name], value)


def test_an_input_named_before_it_exists_is_reported_as_a_would_be_cycle(
    write_spec: WriteSpec,
) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1, inputs: [b]}\n"
        + "  - {name: b, type: Conv3d, out_channels: 4, kernel_size: 1, inputs: [a]}\n"
        + HEAD
    )
    [problem] = _problems(path)
    assert f"{path}:6:71: backbone[0].inputs[0]: input 'b' names a node that comes later" in problem
    assert "(backbone[1]): a node reads only earlier ones, so the graph has no cycle" in problem


def test_a_dangling_input_lists_the_names_known_there(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        + "  - {name: b, type: ReLU, inputs: [c]}\n"
        + HEAD
    )
    [problem] = _problems(path)
    assert (
        "backbone[1].inputs[0]: input 'c' names no node of the backbone; known here: input, a"
        in (problem)
    )


def test_a_merge_of_mismatched_types_names_each_input_and_where_it_comes_from(
    write_spec: WriteSpec,
) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        + "  - {name: b, type: Conv3d, out_channels: 8, kernel_size: 1, inputs: [input]}\n"
        + "  - {name: sum, type: Add, inputs: [a, b]}\n"
        + HEAD
    )
    [problem] = _problems(path)
    assert f"{path}:8:5: backbone[2]: Add cannot take inputs a clip (4, 4, 16, 16) from " in problem
    assert "backbone[0] (Conv3d), a clip (8, 4, 16, 16) from backbone[1] (Conv3d)" in problem


def test_wiring_mistakes_are_refused_with_what_to_do(write_spec: WriteSpec) -> None:
    two_into_one = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        + "  - {name: b, type: ReLU, inputs: [a, input]}\n"
        + HEAD,
        "two.yaml",
    )
    assert "ReLU takes one input; `inputs` names 2 (merge them first" in _problems(two_into_one)[0]
    nested = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {type: Sequential, layers: [{type: ReLU, inputs: [input]}]}\n"
        + "  - {name: b, type: ReLU, inputs: [input]}\n"
        + HEAD,
        "nested.yaml",
    )
    assert "`inputs` wires backbone nodes, the neck and heads" in _problems(nested)[0]
    shared = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 3, kernel_size: 1}\n"
        + "  - {name: b, type: ReLU, inplace: true, inputs: [a]}\n"
        + "  - {name: c, type: Add, inputs: [a, b]}\n"
        + HEAD,
        "shared.yaml",
    )
    assert "'b' works in place on 'a', which other nodes read too" in _problems(shared)[0]
    reserved = write_spec(
        HEADER + "backbone:\n  - {name: input, type: ReLU, inputs: [input]}\n" + HEAD,
        "reserved.yaml",
    )
    assert "the name 'input' is the clip's" in _problems(reserved)[0]


def test_a_chain_spec_still_builds_a_sequential_backbone() -> None:
    model = build_model("tiny_resnet", device="meta")
    assert isinstance(model.backbone, torch.nn.Sequential)
    assert not model.taps


def test_the_diagram_of_a_graph_draws_its_wiring_and_taps() -> None:
    text = to_mermaid(build_diagram("tiny_two_pathway").graph)
    for edge in [
        "input --> c_backbone_fast",
        "input --> n_backbone_slow_clip",
        "c_backbone_fast --> n_backbone_lateral",
        "n_backbone_lateral --> n_backbone_fused",
        "n_backbone_fused --> n_backbone_gated",
        "c_backbone_excite --> n_backbone_gated",
        "c_backbone_fast --> c_heads_motion",
    ]:
        assert edge in text


def test_a_neck_on_an_inner_node_feeds_every_head_without_inputs_of_its_own(
    write_spec: WriteSpec,
) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        + "  - {name: b, type: Conv3d, out_channels: 6, kernel_size: 1}\n"
        + "neck: {type: GlobalAvgPool3d, inputs: [a]}\n"
        + "heads: {action: {type: ClassificationHead, num_classes: 2}}\n"
    )
    model = build_model(path).eval()
    assert model.taps == {"neck": "a"}
    clip_batch = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        features = model.features(clip_batch)
        assert features.shape == (2, 4)
        assert torch.equal(model(clip_batch)["action"], model.heads["action"](features))


GRAPH_MISTAKES = {
    "cycle": (
        "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1, inputs: [b]}\n"
        "  - {name: b, type: Conv3d, out_channels: 4, kernel_size: 1, inputs: [a]}\n",
        (6, 71),
        "input 'b' names a node that comes later",
    ),
    "self": (
        "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        "  - {name: b, type: ReLU, inputs: [b]}\n",
        (7, 36),
        "input 'b' names the node itself",
    ),
    "dangling": (
        "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        "  - {name: b, type: ReLU, inputs: [c]}\n",
        (7, 36),
        "input 'c' names no node of the backbone; known here: input, a",
    ),
    "merge": (
        "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1}\n"
        "  - {name: pooled, type: GlobalAvgPool3d, inputs: [input]}\n"
        "  - {name: joined, type: Concatenate, inputs: [a, pooled]}\n",
        (8, 5),
        "Concatenate cannot take inputs a clip (4, 4, 16, 16) from backbone[0] (Conv3d), a "
        "vector (3,) from backbone[1] (GlobalAvgPool3d): their layouts differ",
    ),
}


@pytest.mark.parametrize("mistake", GRAPH_MISTAKES)
def test_validate_reports_each_wiring_mistake_at_its_file_line_and_column(
    write_spec: WriteSpec, capsys: pytest.CaptureFixture[str], mistake: str
) -> None:
    from video_interpreter.cli import main

    nodes, (line, column), says = GRAPH_MISTAKES[mistake]
    path = write_spec(HEADER + "backbone:\n" + nodes + HEAD)
    assert main(["validate", str(path)]) == 2  # a spec error
    err = capsys.readouterr().err
    assert f"{path}:{line}:{column}: " in err
    assert says in err, err


def test_every_wiring_mistake_of_a_graph_is_reported_at_once(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + "  - {name: a, type: Conv3d, out_channels: 4, kernel_size: 1, inputs: [b]}\n"
        + "  - {name: b, type: ReLU, inputs: [b]}\n"
        + "  - {name: c, type: Add, inputs: [a, d]}\n"
        + HEAD
    )
    problems = _problems(path)
    assert [p.split(": ", 1)[0] for p in problems] == [
        f"{path}:6:71",
        f"{path}:7:36",
        f"{path}:8:38",
    ]
