"""Declarations cannot drift from torch: for every registered layer, drawn parameters and input
sizes give the declared output type exactly when the real module, run on meta and on small CPU
tensors, gives that shape; and where torch refuses, the declaration refuses too.

A new layer needs one entry in CASES: a strategy for its parameters and input types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from video_interpreter import SpecError
from video_interpreter.layers import (
    LAYERS,
    BuildContext,
    LayerRegistry,
    Layout,
    SampleType,
    clip,
    grid,
    node_type,
    propagate,
    tokens,
    vector,
)
from video_interpreter.model import initialize

Case = tuple[dict[str, Any], SampleType]
MergeCase = tuple[dict[str, Any], tuple[SampleType, ...]]
Draw = Callable[..., Any]


def ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def triples(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(ints(low, high), st.lists(ints(low, high), min_size=3, max_size=3))


CLIPS = st.builds(clip, ints(1, 6), ints(1, 6), ints(1, 10), ints(1, 10))
GRIDS = st.builds(grid, ints(1, 4), ints(1, 6), ints(1, 6), st.sampled_from([4, 6, 8, 12]))
SEQUENCES = st.builds(tokens, ints(1, 12), st.sampled_from([4, 6, 8]))
VECTORS = st.builds(vector, ints(1, 12))
ANY_TYPE = st.one_of(CLIPS, GRIDS, SEQUENCES, VECTORS)
NOTHING: st.SearchStrategy[dict[str, Any]] = st.just({})


def conv_node(draw: Draw) -> dict[str, Any]:
    return {
        "type": "Conv3d",
        "out_channels": draw(ints(1, 5)),
        "kernel_size": draw(triples(1, 3)),
        "stride": draw(triples(1, 2)),
        "padding": draw(triples(0, 1)),
    }


@st.composite
def conv(draw: Draw) -> Case:
    params = {
        "out_channels": draw(ints(1, 6)),
        "kernel_size": draw(triples(1, 4)),
        "stride": draw(triples(1, 3)),
        "padding": draw(st.one_of(triples(0, 2), st.sampled_from(["same", "valid"]))),
        "dilation": draw(triples(1, 2)),
        "groups": draw(ints(1, 3)),
    }
    return params, draw(CLIPS)


@st.composite
def conv_transpose(draw: Draw) -> Case:
    params = {
        "out_channels": draw(ints(1, 6)),
        "kernel_size": draw(triples(1, 3)),
        "stride": draw(triples(1, 3)),
        "padding": draw(triples(0, 2)),
        "dilation": draw(triples(1, 2)),
        "groups": draw(ints(1, 2)),
    }
    return params, draw(CLIPS)


@st.composite
def pool(draw: Draw, *, dilation: bool) -> Case:
    params: dict[str, Any] = {
        "kernel_size": draw(triples(1, 4)),
        "stride": draw(st.one_of(st.none(), triples(1, 3))),
        "padding": draw(triples(0, 2)),
        "ceil_mode": draw(st.booleans()),
    }
    if dilation:
        params["dilation"] = draw(triples(1, 2))
    return params, draw(CLIPS)


def a_dim(draw: Draw, x: SampleType) -> int:
    """A dimension of one sample (a dimension outside it is a type error torch may not see:
    -5 on a clip is the batch)."""
    return int(draw(ints(-x.rank, x.rank - 1)))


@st.composite
def flatten(draw: Draw) -> Case:
    x = draw(ANY_TYPE)
    start, end = a_dim(draw, x) % x.rank, a_dim(draw, x) % x.rank
    # Layouts have 1, 2 or 4 dimensions: flattening to 3 is a type error torch would allow.
    assume(start > end or x.rank - (end - start) in (1, 2, 4))
    return {"start_dim": start, "end_dim": end}, x


@st.composite
def softmax(draw: Draw) -> Case:
    x = draw(ANY_TYPE)
    return {"dim": a_dim(draw, x)}, x


@st.composite
def concat(draw: Draw) -> Case:
    branches = [[conv_node(draw)] for _ in range(draw(ints(1, 3)))]
    x = draw(CLIPS)
    return {"branches": branches, "dim": a_dim(draw, x)}, x


@st.composite
def residual(draw: Draw) -> Case:
    # At least 2 channels: torch would broadcast a width of 1 against any other, which a typed
    # residual refuses.
    x = clip(draw(ints(2, 6)), draw(ints(1, 4)), draw(ints(1, 6)), draw(ints(1, 6)))
    width = draw(st.sampled_from([x.sizes[0], 4]))
    params: dict[str, Any] = {
        "body": [{"type": "Conv3d", "out_channels": width, "kernel_size": 1}],
        "shortcut": draw(
            st.sampled_from([None, [{"type": "Conv3d", "out_channels": 4, "kernel_size": 1}]])
        ),
        "activation": draw(st.sampled_from([None, {"type": "ReLU"}])),
    }
    return params, x


@st.composite
def res_block(draw: Draw, *, stage: bool = False, bottleneck: bool = False) -> Case:
    params: dict[str, Any] = {
        "out_channels": draw(ints(1, 8)),
        "conv": draw(st.sampled_from(["Conv3d", "Conv2Plus1d", "Conv3dNoTemporal"])),
        "stride": draw(ints(1, 3)),
    }
    if bottleneck or stage:
        params["expansion"] = draw(ints(1, 4))
    if stage:
        params["depth"] = draw(ints(1, 2))
        params["block"] = draw(st.sampled_from(["BasicBlock3d", "Bottleneck3d"]))
    return params, draw(CLIPS)


@st.composite
def factorised(draw: Draw, *, mid: bool = False) -> Case:
    params: dict[str, Any] = {
        "out_channels": draw(ints(1, 6)),
        "kernel_size": draw(triples(1, 3)),
        "stride": draw(triples(1, 3)),
        "padding": draw(st.one_of(st.none(), triples(0, 2))),
    }
    if mid:
        params["mid_channels"] = draw(st.one_of(st.none(), ints(1, 4)))
    return params, draw(CLIPS)


@st.composite
def no_temporal(draw: Draw) -> Case:
    params = {
        "out_channels": draw(ints(1, 6)),
        "kernel_size": draw(ints(1, 4)),
        "stride": draw(ints(1, 3)),
        "padding": draw(st.one_of(st.none(), ints(0, 2))),
    }
    return params, draw(CLIPS)


@st.composite
def mvit_stage(draw: Draw) -> dict[str, Any]:
    return {
        "depth": draw(ints(1, 2)),
        "dim": draw(st.sampled_from([4, 6, 8])),
        "heads": draw(ints(1, 3)),
        "stride_q": draw(triples(1, 2)),
        "kernel_q": draw(triples(1, 3)),
        "stride_kv": draw(triples(1, 2)),
        "kernel_kv": draw(st.sampled_from([1, 3])),
    }


@st.composite
def mvit_encoder(draw: Draw) -> Case:
    stages = [draw(mvit_stage()) for _ in range(draw(ints(1, 2)))]
    x = clip(draw(st.sampled_from([4, 8])), draw(ints(1, 3)), draw(ints(1, 6)), draw(ints(1, 6)))
    return {"stages": stages}, x


@st.composite
def mvit_v1_encoder(draw: Draw) -> Case:
    width = draw(st.sampled_from([4, 8]))
    stages = [
        {
            "depth": draw(ints(1, 2)),
            "dim": width if number == 0 else draw(st.sampled_from([4, 6, 8])),
            "heads": draw(ints(1, 3)),
            "stride_q": draw(triples(1, 2)),
        }
        for number in range(draw(ints(1, 2)))
    ]
    params = {
        "stages": stages,
        "kernel": draw(st.one_of(st.sampled_from([1, 3]), triples(1, 3))),
        "stride_kv": draw(triples(1, 4)),
    }
    # A first stage of another width than the map's is refused by the declaration and torch.
    if draw(st.booleans()):
        width = draw(st.sampled_from([4, 6]))
    return params, clip(width, draw(ints(1, 3)), draw(ints(1, 6)), draw(ints(1, 6)))


@st.composite
def mvit_block(draw: Draw) -> Case:
    on = (draw(ints(1, 3)), draw(ints(1, 5)), draw(ints(1, 5)))
    stated = draw(st.sampled_from([list(on), [on[0], on[1] + 1, on[2]]]))
    params = {
        "dim": draw(st.sampled_from([4, 8])),
        "heads": draw(ints(1, 3)),
        "grid": stated,
        "stride_q": draw(triples(1, 2)),
        "kernel_q": draw(triples(1, 3)),
    }
    length = 1 + on[0] * on[1] * on[2]
    return params, tokens(length, draw(st.sampled_from([4, 8])), prefix=1, token_grid=on)


@st.composite
def class_token(draw: Draw) -> Case:
    # Tokens without a class token are a type error (TokenPool is the way), not torch's.
    return {}, tokens(draw(ints(2, 9)), 4, prefix=1)


@st.composite
def window_attention(draw: Draw, *, block: bool = False) -> Case:
    params: dict[str, Any] = {
        "heads": draw(ints(1, 3)),
        "window_size": draw(triples(1, 3)),
        "shift_size": draw(triples(0, 2)),
    }
    return params, draw(GRIDS)


@st.composite
def swin_stage(draw: Draw) -> Case:
    depth = draw(ints(1, 2))
    rates = draw(st.one_of(st.just(0.0), st.lists(st.just(0.0), min_size=1, max_size=3)))
    params = {
        "depth": depth,
        "heads": draw(ints(1, 3)),
        "window_size": draw(triples(1, 3)),
        "stochastic_depth": rates,
    }
    return params, draw(GRIDS)


@st.composite
def swin_encoder(draw: Draw) -> Case:
    stages = draw(ints(1, 3))
    params = {
        "depths": [draw(ints(1, 2)) for _ in range(stages)],
        "heads": [draw(ints(1, 3)) for _ in range(draw(ints(stages, stages + 1)))],
        "window_size": draw(triples(1, 3)),
        "stochastic_depth": 0.0,
    }
    return params, draw(GRIDS)


@st.composite
def grid_tokens(draw: Draw, *, prefix: int | None = None) -> SampleType:
    """Tokens on a known grid, with 0 or 1 class token in front (``prefix`` fixes it)."""
    on = (draw(ints(1, 3)), draw(ints(1, 3)), draw(ints(1, 3)))
    front = draw(st.sampled_from([0, 1])) if prefix is None else prefix
    width = draw(st.sampled_from([6, 8, 12]))
    return tokens(front + on[0] * on[1] * on[2], width, prefix=front, token_grid=on)


TOKENS_ANY = st.one_of(SEQUENCES, grid_tokens())


@st.composite
def vit_block(draw: Draw) -> Case:
    params: dict[str, Any] = {
        "heads": draw(ints(1, 4)),
        "attention": draw(st.sampled_from(["joint", "divided"])),
        "rotary": draw(st.booleans()),
        "fused_qkv": draw(st.booleans()),
        "qkv_bias": draw(st.sampled_from(["all", "qv", "none"])),
        "mlp_dim": draw(st.one_of(st.none(), ints(1, 9))),
        "activation": draw(st.sampled_from(["gelu", "gelu_tanh", "quick_gelu", "relu", "silu"])),
        "drop_path": draw(st.sampled_from([0.0, 0.5])),
    }
    return params, draw(TOKENS_ANY)


def simple(params: st.SearchStrategy[dict[str, Any]], inputs: st.SearchStrategy[SampleType]) -> Any:
    return st.tuples(params, inputs)


@st.composite
def merge(draw: Draw, *, gate: bool = False, dim: bool = False) -> MergeCase:
    """Two or three inputs that mostly fit: a layout and sizes shared, one size sometimes changed
    (to 1 for a gate)."""
    first = draw(st.one_of(CLIPS, GRIDS))
    xs = [first]
    for _ in range(draw(ints(1, 2))):
        sizes = list(first.sizes)
        axis = draw(ints(0, first.rank - 1))
        n = sizes[axis]
        # Not a size of 1 against another outside a gate: torch would broadcast what Add and
        # Concatenate refuse on purpose.
        others = [n, 1, n + 1] if gate else ([n, n + 2] if n > 1 else [n])
        sizes[axis] = draw(st.sampled_from(others))
        xs.append(SampleType(first.layout, tuple(sizes)))
    params = {"dim": a_dim(draw, first)} if dim else {}
    return params, tuple(xs)


@st.composite
def subsample(draw: Draw) -> Case:
    return {"stride": draw(triples(1, 4))}, draw(CLIPS)


@st.composite
def x3d_stage(draw: Draw) -> Case:
    params = {
        "depth": draw(ints(1, 2)),
        "out_channels": draw(ints(1, 8)),
        "inner_channels": draw(ints(1, 8)),
        "stride": draw(ints(1, 3)),
        "se_ratio": draw(st.sampled_from([0.0, 0.0625, 0.5])),
    }
    return params, draw(CLIPS)


@st.composite
def bottleneck_stage(draw: Draw) -> Case:
    depth = draw(ints(1, 3))
    odd = st.sampled_from([1, 3, 5])
    params = {
        "depth": depth,
        "out_channels": draw(ints(1, 8)),
        "inner_channels": draw(ints(1, 8)),
        "stride": draw(ints(1, 3)),
        # Odd only: an even kernel lengthens the clip, which torch may broadcast against the
        # shortcut (from one frame) where the type refuses it. A list may miss the depth.
        "temporal_kernel": draw(
            st.one_of(odd, st.lists(odd, min_size=depth - 1, max_size=depth + 1))
        ),
    }
    return params, draw(CLIPS)


@st.composite
def bottleneck(draw: Draw) -> Case:
    x3d = draw(st.booleans())
    odd = st.sampled_from([1, 3])
    params = {
        "out_channels": draw(ints(1, 8)),
        "inner_channels": draw(ints(1, 8)),
        "stride": draw(triples(1, 2)),
        # Odd only: an even kernel grows the map, which torch may broadcast against the
        # shortcut (from a size of 1) where the declaration refuses it.
        "kernel_a": draw(st.one_of(odd, st.lists(odd, min_size=3, max_size=3))),
        "kernel_b": draw(st.one_of(odd, st.lists(odd, min_size=3, max_size=3))),
        "depthwise": draw(st.booleans()),
        "factorised": draw(st.booleans()),
        "swish": x3d,
        "se_ratio": draw(st.sampled_from([0.0, 0.25])) if x3d else 0.0,
    }
    return params, draw(CLIPS)


CASES: dict[str, st.SearchStrategy[Any]] = {
    "Bottleneck": bottleneck(),
    "BottleneckStage": bottleneck_stage(),
    "SqueezeExcitation": simple(
        st.fixed_dictionaries({"ratio": st.sampled_from([0.0625, 0.25, 1.0])}), CLIPS
    ),
    "Swish": simple(NOTHING, ANY_TYPE),
    "X3DStage": x3d_stage(),
    "Add": merge(),
    "Multiply": merge(gate=True),
    "Concatenate": merge(dim=True),
    "Subsample": subsample(),
    "AdaptiveAvgPool3d": simple(st.fixed_dictionaries({"output_size": triples(1, 4)}), CLIPS),
    "AdaptiveMaxPool3d": simple(st.fixed_dictionaries({"output_size": triples(1, 4)}), CLIPS),
    "AvgPool3d": pool(dilation=False),
    "BasicBlock3d": res_block(),
    "BatchNorm1d": simple(NOTHING, VECTORS),
    "BatchNorm3d": simple(NOTHING, CLIPS),
    "Bottleneck3d": res_block(bottleneck=True),
    "ClassToken": class_token(),
    "ClassificationHead": simple(st.fixed_dictionaries({"num_classes": ints(1, 9)}), VECTORS),
    "Concat": concat(),
    "Conv2Plus1d": factorised(mid=True),
    "Conv3d": conv(),
    "Conv3dNoTemporal": no_temporal(),
    "ConvClassificationHead": simple(st.fixed_dictionaries({"num_classes": ints(1, 9)}), CLIPS),
    "ConvTranspose3d": conv_transpose(),
    "Dropout": simple(NOTHING, ANY_TYPE),
    "Dropout3d": simple(NOTHING, CLIPS),
    "Flatten": flatten(),
    "GELU": simple(NOTHING, ANY_TYPE),
    "GlobalAvgPool3d": simple(NOTHING, CLIPS),
    "GroupNorm": simple(st.fixed_dictionaries({"num_groups": ints(1, 4)}), CLIPS),
    "Hardswish": simple(NOTHING, ANY_TYPE),
    "Identity": simple(NOTHING, ANY_TYPE),
    "LayerNorm": simple(NOTHING, st.one_of(GRIDS, SEQUENCES, VECTORS)),
    "LeakyReLU": simple(NOTHING, ANY_TYPE),
    "Linear": simple(
        st.fixed_dictionaries({"out_features": ints(1, 6)}), st.one_of(GRIDS, SEQUENCES, VECTORS)
    ),
    "MViTBlock": mvit_block(),
    "MViTEncoder": mvit_encoder(),
    "MViTv1Encoder": mvit_v1_encoder(),
    "MaxPool3d": pool(dilation=True),
    "Mish": simple(NOTHING, ANY_TYPE),
    "ReLU": simple(NOTHING, ANY_TYPE),
    "ReLU6": simple(NOTHING, ANY_TYPE),
    "Repeat": st.builds(
        lambda times, out, x: (
            {"times": times, "layer": {"type": "Conv3d", "out_channels": out, "kernel_size": 1}},
            x,
        ),
        ints(1, 3),
        ints(1, 4),
        CLIPS,
    ),
    "ResStage": res_block(stage=True),
    "Residual": residual(),
    "SepConv3d": factorised(),
    "Sequential": st.builds(
        lambda out, x: (
            {
                "layers": [
                    {"type": "Conv3d", "out_channels": out, "kernel_size": 1},
                    {"type": "ReLU"},
                ]
            },
            x,
        ),
        ints(1, 4),
        CLIPS,
    ),
    "SiLU": simple(NOTHING, ANY_TYPE),
    "Sigmoid": simple(NOTHING, ANY_TYPE),
    "Softmax": softmax(),
    "SwinBlock3d": window_attention(block=True),
    "SwinEncoder3d": swin_encoder(),
    "SwinPatchEmbed3d": simple(
        st.fixed_dictionaries({"dim": ints(1, 8), "patch_size": triples(1, 4)}), CLIPS
    ),
    "SwinPatchMerging3d": simple(NOTHING, GRIDS),
    "SwinStage3d": swin_stage(),
    "Tanh": simple(NOTHING, ANY_TYPE),
    "TokenPool": simple(NOTHING, st.one_of(GRIDS, SEQUENCES)),
    "TransformerBlock": simple(
        st.fixed_dictionaries(
            {"heads": ints(1, 4), "attention": st.sampled_from(["joint", "divided"])}
        ),
        GRIDS,
    ),
    "TubeletEmbedding": simple(
        st.fixed_dictionaries(
            {"dim": ints(1, 8), "tubelet": triples(1, 4), "per_frame": st.booleans()}
        ),
        CLIPS,
    ),
    "Unit3d": factorised(),
    "WindowAttention3d": window_attention(),
    "AddClassToken": simple(NOTHING, TOKENS_ANY),
    "AttentionPool": simple(
        st.fixed_dictionaries({"heads": ints(1, 4), "mlp_dim": st.one_of(st.none(), ints(1, 9))}),
        TOKENS_ANY,
    ),
    "LearnedPositions": simple(NOTHING, TOKENS_ANY),
    "QuickGELU": simple(NOTHING, ANY_TYPE),
    "SinusoidalPositions": simple(NOTHING, TOKENS_ANY),
    "SpaceTimePositions": simple(NOTHING, TOKENS_ANY),
    "ViTBlock": vit_block(),
}


def _torch_shapes(
    name: str, params: dict[str, Any], xs: tuple[SampleType, ...]
) -> tuple[int, ...] | None:
    """The sample shape the real module gives on meta and on the CPU; None where torch (or the
    layer's own constructor) refuses."""
    entry = LAYERS.get(name)
    try:
        with torch.device("meta"):
            module = entry.create(BuildContext(xs[0], (), LAYERS), dict(params))
        with torch.no_grad():
            on_meta = module.eval()(*(torch.empty((2, *x.sizes), device="meta") for x in xs))
        module.to_empty(device="cpu")
        initialize(module)
        with torch.no_grad():
            on_cpu = module(*(torch.randn(2, *x.sizes) for x in xs))
    except SpecError:
        return None  # a nested node refused by its own declaration
    except Exception:  # torch's refusal, whatever its type
        return None
    assert on_meta.shape == on_cpu.shape, f"torch's meta and CPU kernels disagree for {name}"
    shape = tuple(on_cpu.shape[1:])
    return None if 0 in shape else shape  # a dimension collapsed to zero is refused


def test_every_registered_layer_has_a_case() -> None:
    assert sorted(CASES) == LAYERS.names(), "add a strategy for the new layer to CASES"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_layers_declared_type_is_what_torch_gives(name: str) -> None:
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(CASES[name])
    def check(case: Case | MergeCase) -> None:
        params, given = case
        xs = given if isinstance(given, tuple) else (given,)
        try:
            declared: SampleType | None = node_type({"type": name, **params}, xs, ("node",))
        except SpecError:
            declared = None
        actual = _torch_shapes(name, params, xs)
        x = ", ".join(str(t) for t in xs)
        if declared is None:
            assert actual is None, f"{name}{params} on {x}: declared refused, torch gives {actual}"
        else:
            assert actual == declared.sizes, f"{name}{params} on {x}: declared {declared}"

    check()


def test_an_undeclared_users_layer_is_typed_by_running_it_once_on_meta() -> None:
    class Halve(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, : x.shape[1] // 2]

    registry = LayerRegistry(entry_point_group=None)
    registry.register(Halve, params={})
    assert propagate([{"type": "Halve"}], clip(6, 2, 4, 4), (), registry) == clip(3, 2, 4, 4)
    with pytest.raises(SpecError, match=r"node\[0\]: Halve turns a clip \(1, 2, 4, 4\) into"):
        propagate([{"type": "Halve"}], clip(1, 2, 4, 4), ("node",), registry)
    assert propagate([{"type": "Halve"}], tokens(8, 4), (), registry).layout is Layout.TOKENS
