"""Diagrams: what they show (stem, stages collapsed "x 2", heads, shapes), every format, and a
clear error when Graphviz is missing while DOT and Mermaid still work."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from video_interpreter import SpecError, build_model
from video_interpreter.checkpoint import save_model
from video_interpreter.cli import main
from video_interpreter.diagram import (
    Diagram,
    DiagramFormatError,
    GraphvizNotFoundError,
    build_diagram,
    format_for,
    render_diagram,
)
from video_interpreter.diagram._graph import JOINT, pathways

CONFIGS = Path(__file__).resolve().parent.parent / "architectures" / "configs"

REPEATED: dict[str, Any] = {
    "spec_version": 1,
    "name": "repeated",
    "version": "v1",
    "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
    "backbone": [
        {"name": "stem", "type": "Conv3d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {
            "name": "blocks",
            "type": "Repeat",
            "times": 3,
            "layer": {"type": "BasicBlock3d", "out_channels": 8},
        },
    ],
    "neck": {"type": "GlobalAvgPool3d"},
    "heads": {
        "verb": {"type": "ClassificationHead", "num_classes": 7},
        "noun": {"type": "ClassificationHead", "num_classes": 9},
    },
}


@pytest.fixture(scope="module")
def v1() -> Diagram:
    return build_diagram(CONFIGS / "v1.yaml")


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which no `dot` program can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


def _labels(dot: str) -> list[str]:
    return re.findall(r'label="([^"]*)"', dot)


def test_dot_shows_input_stem_four_collapsed_stages_neck_and_head(v1: Diagram) -> None:
    dot = v1.to_dot()
    labels = _labels(dot)
    assert "input\\n(3, 16, 112, 112)" in labels
    assert "stem" in labels
    for stage, shape in enumerate(
        ["(64, 16, 56, 56)", "(128, 8, 28, 28)", "(256, 4, 14, 14)", "(512, 2, 7, 7)"], 1
    ):
        assert any(
            label.startswith(f"layer{stage}: ResStage\\nBasicBlock3d x 2\\n{shape}")
            for label in labels
        ), stage
    assert any(label.startswith("neck: GlobalAvgPool3d\\n(512)") for label in labels)
    assert "action: ClassificationHead" in labels
    assert any(label.startswith("fc: Linear\\n(400)") for label in labels)
    assert dot.count("{") == dot.count("}")


def test_dot_edges_follow_the_data_flow(v1: Diagram) -> None:
    dot = v1.to_dot()
    assert "input -> n_backbone_stem_0 [lhead=cluster_c_backbone];" in dot
    assert "n_backbone_stem_2 -> n_backbone_layer1 [ltail=cluster_c_backbone_stem];" in dot
    assert "n_backbone_layer1 -> n_backbone_layer2;" in dot
    assert "n_backbone_layer4 -> n_neck [ltail=cluster_c_backbone];" in dot
    assert "n_heads_action_dropout -> n_heads_action_fc;" in dot  # fc takes dropout's output
    assert "n_neck -> n_heads_action_dropout [lhead=cluster_c_heads_action];" in dot


def test_mermaid_shows_the_same_parts(v1: Diagram) -> None:
    text = v1.to_mermaid()
    lines = text.splitlines()
    assert "flowchart TB" in lines
    assert 'input(["input<br/>(3, 16, 112, 112)"]):::input' in text
    assert 'subgraph c_backbone_stem["stem"]' in text
    assert text.count("BasicBlock3d x 2") == 4
    assert 'subgraph c_heads_action["action: ClassificationHead"]' in text
    assert "  input --> c_backbone" in lines
    assert "  n_neck --> c_heads_action" in lines
    opened = sum(1 for line in lines if line.strip().startswith("subgraph "))
    assert opened == sum(1 for line in lines if line.strip() == "end") == 3


def test_depth_one_draws_each_part_as_boxes_and_depth_three_opens_blocks() -> None:
    shallow = build_diagram(CONFIGS / "v1.yaml", depth=1).to_dot()
    labels = _labels(shallow)
    assert "subgraph cluster_c_backbone_stem" not in shallow
    assert any(label.startswith("stem\\n(64, 16, 56, 56)") for label in labels)
    assert any(
        label.startswith("layer1: ResStage\\nBasicBlock3d x 2\\n(64, 16") for label in labels
    )
    assert any(label.startswith("action: ClassificationHead\\n(400)") for label in labels)
    deep = build_diagram(CONFIGS / "v1.yaml", depth=3).to_dot()
    assert 'label="BasicBlock3d x 2 (first of 2 shown)";' in deep
    assert any(label.startswith("downsample\\n(128, 8, 28, 28)") for label in _labels(deep))
    # inside a block: solid where one child takes the other's output, dashed for call order
    assert "n_backbone_layer2_0_conv1 -> n_backbone_layer2_0_conv2;" in deep
    assert 'n_backbone_layer2_0_conv2 -> n_backbone_layer2_0_relu [style="dashed"];' in deep
    assert 'n_backbone_layer2_0_downsample -> n_backbone_layer2_0_conv1 [style="dashed"];' in deep


def test_runs_of_identical_blocks_collapse_and_every_head_is_drawn() -> None:
    diagram = build_diagram(REPEATED)
    labels = _labels(diagram.to_dot())
    assert "blocks\\nBasicBlock3d x 3\\n(8, 4, 16, 16)\\n10.46K params" in labels
    assert "verb: ClassificationHead" in labels
    assert "noun: ClassificationHead" in labels
    mermaid = diagram.to_mermaid()
    assert "n_neck --> c_heads_verb" in mermaid
    assert "n_neck --> c_heads_noun" in mermaid


def test_parallel_branches_are_not_collapsed_and_only_linked_by_call_order() -> None:
    conv = {"type": "Conv3d", "out_channels": 4, "kernel_size": 1}
    spec = {
        **REPEATED,
        "backbone": [{"name": "mix", "type": "Concat", "branches": [[conv], [conv]]}],
    }
    dot = build_diagram(spec, depth=3).to_dot()
    assert "x 2" not in dot
    assert 'n_backbone_mix_branches_0 -> n_backbone_mix_branches_1 [style="dashed"];' in dot
    assert any(
        label.startswith("mix: Concat\\n(8, 4, 16, 16)")
        for label in _labels(build_diagram(spec, depth=1).to_dot())
    )


def test_a_plain_torch_model_is_drawn_from_its_children_in_call_order() -> None:
    with torch.device("meta"):
        model = torchvision.models.video.r3d_18(num_classes=10)
    dot = build_diagram(model, input_shape=(3, 4, 32, 32), depth=1).to_dot()
    labels = _labels(dot)
    assert "VideoResNet" in labels
    names = [label.split("\\n")[0] for label in labels]
    assert names.index("stem: BasicStem") < names.index("layer1") < names.index("fc: Linear")
    assert any(label.startswith("fc: Linear\\n(10)") for label in labels)


def test_an_input_the_model_cannot_take_names_the_failing_module() -> None:
    with pytest.raises(SpecError, match=r"failed in module 'backbone\.stem'"):
        build_diagram(REPEATED, input_shape=(5, 4, 16, 16))


def test_drawing_a_real_model_leaves_it_on_its_device() -> None:
    model = build_model(REPEATED).train()
    build_diagram(model)
    assert model.training
    assert all(p.device.type == "cpu" for p in model.parameters())


# -- files and formats -------------------------------------------------------------------------


def test_svg_and_png_are_rendered_with_graphviz(tmp_path: Path) -> None:
    svg = render_diagram(CONFIGS / "v1.yaml", tmp_path / "v1.svg")
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text
    assert "BasicBlock3d x 2" in text
    assert ">action: ClassificationHead<" in text
    png = render_diagram(REPEATED, tmp_path / "out" / "repeated.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.usefixtures("no_graphviz")
def test_without_graphviz_svg_fails_with_install_advice_and_text_formats_work(
    tmp_path: Path,
) -> None:
    with pytest.raises(GraphvizNotFoundError, match=r"apt-get install graphviz.*brew install"):
        render_diagram(REPEATED, tmp_path / "r.svg")
    with pytest.raises(GraphvizNotFoundError, match="PNG output needs Graphviz"):
        render_diagram(REPEATED, tmp_path / "r.png")
    assert not (tmp_path / "r.svg").exists()
    assert render_diagram(REPEATED, tmp_path / "r.dot").read_text().startswith("digraph")
    assert "flowchart TB" in render_diagram(REPEATED, tmp_path / "r.mmd").read_text()


@pytest.mark.parametrize(
    ("out", "fmt", "expected"),
    [
        ("a.svg", None, "svg"),
        ("a.PNG", None, "png"),
        ("a.gv", None, "dot"),
        ("a.mmd", None, "mermaid"),
        ("a.txt", "mmd", "mermaid"),
        ("a.gv", "dot", "dot"),
    ],
)
def test_the_format_comes_from_the_suffix_unless_given(
    out: str, fmt: str | None, expected: str
) -> None:
    assert format_for(out, fmt) == expected


@pytest.mark.parametrize(("out", "fmt"), [("x.svg", "mermaid"), ("x.mmd", "svg"), ("x.png", "dot")])
def test_a_format_that_contradicts_the_suffix_is_refused(out: str, fmt: str) -> None:
    with pytest.raises(DiagramFormatError, match=rf"format '{fmt}' does not match '{out}'"):
        format_for(out, fmt)


def test_an_unknown_suffix_or_format_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DiagramFormatError, match=r"'\.pdf'.*\.svg, \.png, \.dot, \.gv, \.mmd"):
        render_diagram(REPEATED, tmp_path / "a.pdf")
    with pytest.raises(DiagramFormatError, match="valid formats: svg, png, dot, mermaid"):
        render_diagram(REPEATED, tmp_path / "a.svg", format="jpeg")


# -- command line ------------------------------------------------------------------------------


def test_cli_diagram_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "repeated.json"
    spec.write_text(json.dumps(REPEATED), encoding="utf-8")
    out = tmp_path / "repeated.mmd"
    assert main(["diagram", str(spec), "-o", str(out), "--depth", "1"]) == 0
    text = out.read_text()
    assert (
        'n_backbone_blocks["blocks<br/>BasicBlock3d x 3<br/>(8, 4, 16, 16)<br/>10.46K params"]'
        in text
    )
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_diagram_draws_a_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "repeated.pth"
    save_model(build_model(REPEATED), checkpoint)
    out = tmp_path / "repeated.dot"
    assert main(["diagram", str(checkpoint), "-o", str(out)]) == 0
    assert "BasicBlock3d x 3" in out.read_text()


def test_cli_diagram_zoo_writes_svg_and_mermaid_for_every_spec(tmp_path: Path) -> None:
    configs, out = tmp_path / "configs", tmp_path / "diagrams"
    configs.mkdir()
    (configs / "repeated.json").write_text(json.dumps(REPEATED), encoding="utf-8")
    shutil.copy(CONFIGS / "v1.yaml", configs / "v1.yaml")
    out.mkdir()
    code = main(["diagram", "--zoo", "--configs", str(configs), "--out-dir", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "repeated.mmd",
        "repeated.svg",
        "v1.mmd",
        "v1.svg",
    ]


@pytest.mark.usefixtures("no_graphviz")
def test_cli_diagram_without_graphviz_exits_1_with_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "repeated.json"
    spec.write_text(json.dumps(REPEATED), encoding="utf-8")
    assert main(["diagram", str(spec), "-o", str(tmp_path / "r.svg")]) == 1
    assert "apt-get install graphviz" in capsys.readouterr().err


def test_cli_diagram_rejects_an_unknown_suffix_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diagram", "v1", "-o", "v1.jpeg"]) == 2
    assert "cannot tell the diagram format" in capsys.readouterr().err


def test_cli_diagram_needs_a_spec_and_an_output_or_zoo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["diagram", "v1"])
    assert "give SPEC_OR_CKPT and -o FILE (or --zoo)" in capsys.readouterr().err


def _cluster(dot: str, label: str) -> str:
    """The text of the DOT cluster with this label, up to its closing brace."""
    start = dot.index(f'label="{label}";')
    depth, end = 1, start
    while depth:
        end += 1
        depth += {"{": 1, "}": -1}.get(dot[end], 0)
    return dot[start:end]


def test_slowfast_is_drawn_as_two_pathways_side_by_side_with_their_fusions() -> None:
    diagram = build_diagram("slowfast_r50", depth=1)
    dot = diagram.to_dot()
    slow, fast = _cluster(dot, "pathway from slow_clip"), _cluster(dot, "pathway from fast_stem")
    for stage in ("stem", "res2", "res3", "res4", "res5", "pool"):
        assert f"n_backbone_slow_{stage} [" in slow
        assert f"n_backbone_fast_{stage} [" in fast
    for index in range(1, 5):  # the lateral convs run on the fast pathway, into the slow one
        assert f"n_backbone_fuse{index} [" in fast
        assert f'n_backbone_fuse{index} -> n_backbone_slow{index} [color="#c0504d"' in dot
        assert f"n_backbone_fuse{index} ==> n_backbone_slow{index}" in diagram.to_mermaid()
    # The final merge of both pathways stands below them, in the backbone's frame only.
    assert "n_backbone_pooled [" in _cluster(dot, "backbone")
    assert "n_backbone_pooled [" not in slow + fast
    assert "n_backbone_slow_pool -> n_backbone_pooled;" in dot


def test_pathways_start_at_the_clip_and_end_where_a_merge_joins_them() -> None:
    wiring = {
        "slow": ("input",),
        "fast": ("input",),
        "lateral": ("fast",),
        "fused": ("slow", "lateral"),
        "fast2": ("fast",),
        "joined": ("fused", "fast2"),
        "after": ("joined",),
    }
    assert pathways(wiring) == {
        "slow": 0,
        "fast": 1,
        "lateral": 1,
        "fused": 0,
        "fast2": 1,
        "joined": JOINT,
        "after": JOINT,
    }
    chain = {"a": ("input",), "b": ("a",)}
    assert set(pathways(chain).values()) == {0}
