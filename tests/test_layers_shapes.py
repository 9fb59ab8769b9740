"""Output shapes by arithmetic agree with torch's own meta kernels, and the meta construction
context skips fills only on meta tensors (and answers zeros and ones there by shape)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from video_interpreter.layers import MetaConstruction
from video_interpreter.layers._shapes import known_output_shape

# By number of spatial dimensions (Any: torch types each class's size arguments differently).
CONVS: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
MAX_POOLS: dict[int, Any] = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVG_POOLS: dict[int, Any] = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def _probed(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """What torch computes on meta; None where it refuses or yields an empty dimension."""
    try:
        with torch.no_grad():
            out = module(torch.empty((2, *shape), device="meta"))
    except RuntimeError:
        return None
    result = tuple(out.shape[1:])
    return None if any(size <= 0 for size in result) else result


def _sizes(dims: int, low: int, high: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[st.integers(low, high)] * dims)


@st.composite
def sliding_windows(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    dims = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["conv", "max", "avg"]))
    kernel = draw(_sizes(dims, 1, 5))
    stride = draw(_sizes(dims, 1, 3))
    padding = draw(_sizes(dims, 0, 3))
    channels = draw(st.integers(1, 4))
    shape = (channels, *draw(_sizes(dims, 1, 12)))
    module: nn.Module
    with torch.device("meta"):
        if kind == "conv":
            module = CONVS[dims](
                channels,
                draw(st.integers(1, 4)),
                kernel,
                stride,
                padding,
                dilation=draw(_sizes(dims, 1, 2)),
            )
        elif kind == "max":
            module = MAX_POOLS[dims](
                kernel,
                stride,
                padding,
                dilation=draw(_sizes(dims, 1, 2)),
                ceil_mode=draw(st.booleans()),
            )
        else:
            module = AVG_POOLS[dims](kernel, stride, padding, ceil_mode=draw(st.booleans()))
    return module, shape


@settings(max_examples=400, deadline=None)
@given(sliding_windows())
def test_sliding_window_shapes_equal_torchs(case: tuple[nn.Module, tuple[int, ...]]) -> None:
    module, shape = case
    known = known_output_shape(module, shape)
    probed = _probed(module, shape)
    # Where arithmetic answers, torch agrees; it declines (None) wherever torch refuses.
    assert known is None or known == probed
    kernel: Any = module.kernel_size
    dilation: Any = getattr(module, "dilation", 1)
    fits = all(
        n >= d * (k - 1) + 1
        for n, k, d in zip(
            shape[1:],
            (kernel,) * 3 if isinstance(kernel, int) else kernel,
            (dilation,) * 3 if isinstance(dilation, int) else dilation,
            strict=False,
        )
    )
    # The usual case is answered, not left to probing; a max pool also on an input smaller
    # than its kernel (S3D pools 2 frames with a 3x3x3 kernel, padded).
    if probed is not None and (fits or isinstance(module, nn.modules.pooling._MaxPoolNd)):
        assert known == probed


def test_a_chain_of_known_modules_is_answered_whole() -> None:
    with torch.device("meta"):
        chain = nn.Sequential(
            nn.Conv3d(3, 8, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),
            nn.BatchNorm3d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            nn.AdaptiveAvgPool3d((1, None, 2)),
        )
    assert known_output_shape(chain, (3, 4, 32, 32)) == (8, 1, 8, 2)
    assert known_output_shape(chain, (3, 4, 32, 32)) == _probed(chain, (3, 4, 32, 32))


@pytest.mark.parametrize(
    ("module", "shape"),
    [
        (nn.Conv3d(4, 8, 3), (3, 4, 8, 8)),  # channels do not fit: torch must say so
        (nn.Conv3d(3, 8, 5), (3, 4, 8, 8)),  # collapses T
        (nn.Conv3d(3, 8, 3, padding="same"), (3, 4, 8, 8)),
        (nn.MaxPool3d(3), (3, 8, 8)),  # a 3D pool on a 2D map
        (nn.BatchNorm3d(4), (3, 4, 8, 8)),
        (nn.Linear(8, 4), (2, 8)),
        (nn.LayerNorm(8), (8,)),
    ],
)
def test_anything_arithmetic_cannot_vouch_for_is_left_to_probing(
    module: nn.Module, shape: tuple[int, ...]
) -> None:
    assert known_output_shape(module, shape) is None


def test_a_subclass_with_its_own_forward_is_probed() -> None:
    class Flatten(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self:
                x = layer(x)
            return x.flatten(1)

    class Keeps(nn.Sequential):
        pass

    assert known_output_shape(Flatten(nn.ReLU()), (3, 4)) is None
    assert known_output_shape(Keeps(nn.ReLU()), (3, 4)) == (3, 4)


def test_meta_construction_builds_on_meta_and_fills_only_meta_tensors() -> None:
    with MetaConstruction():
        conv = nn.Conv3d(3, 8, 3)
        real = torch.empty(4, device="cpu")
        real.fill_(2.0)
        drawn = nn.init.uniform_(torch.empty(3, device="cpu"), 5.0, 6.0)
        filled: Any = nn.init.constant_(torch.empty(2, device="cpu"), 3.0)
    assert conv.weight.is_meta
    assert conv.bias is not None
    assert conv.bias.is_meta
    assert torch.equal(real, torch.full((4,), 2.0))
    assert ((drawn >= 5.0) & (drawn <= 6.0)).all()
    assert torch.equal(filled, torch.full((2,), 3.0))
    assert torch.empty(1).device.type == "cpu"  # the context is gone afterwards


def test_meta_construction_answers_zeros_and_ones_on_meta_and_makes_them_elsewhere() -> None:
    with MetaConstruction():
        norm = nn.BatchNorm3d(8)
        shaped = torch.zeros((2, 3), dtype=torch.float16, requires_grad=True)
        counted = torch.ones(4, dtype=torch.long)
        zeros_on_cpu = torch.zeros(3, device="cpu")
        ones_on_cpu = torch.ones(2, 2, device=torch.device("cpu"))
    assert norm.running_mean is not None
    assert norm.running_mean.is_meta
    assert norm.running_mean.shape == (8,)
    assert (shaped.is_meta, shaped.shape, shaped.dtype) == (True, (2, 3), torch.float16)
    assert shaped.requires_grad
    assert (counted.is_meta, counted.shape, counted.dtype) == (True, (4,), torch.long)
    assert torch.equal(zeros_on_cpu, torch.zeros(3))
    assert torch.equal(ones_on_cpu, torch.ones(2, 2))
