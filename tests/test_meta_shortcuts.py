"""Shape-only answers on the meta device match what torch itself computes, and fail alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from video_interpreter.layers import MetaShortcuts
from video_interpreter.layers._meta import plain_checks


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta")


CASES: dict[str, Callable[[], torch.Tensor]] = {
    "batch_norm": lambda: F.batch_norm(meta(2, 4, 3, 5, 5), meta(4), meta(4), training=True),
    "layer_norm": lambda: F.layer_norm(meta(2, 3, 8), (8,)),
    "group_norm": lambda: F.group_norm(meta(2, 4, 3, 5, 5), 2),
    "gelu": lambda: F.gelu(meta(2, 7)),
    "softmax": lambda: meta(2, 3, 9).softmax(-1),
    "linear": lambda: F.linear(meta(2, 3, 8), meta(5, 8)),
    "conv3d": lambda: F.conv3d(meta(2, 4, 5, 9, 9), meta(6, 2, 3, 3, 3), meta(6), 2, 1, 1, 2),
    "conv2d dilated": lambda: F.conv2d(meta(1, 3, 11, 7), meta(4, 3, 3, 2), None, 1, (2, 0), 2),
    "conv1d same padding": lambda: F.conv1d(meta(2, 3, 10), meta(5, 3, 3), padding="same"),
    "max pool3d": lambda: F.max_pool3d(meta(2, 4, 2, 9, 9), 3, 1, 1),
    "max pool2d ceil": lambda: F.max_pool2d(meta(1, 2, 7, 7), 2, 2, 0, 1, True),
    "einsum": lambda: torch.einsum("bthwnc,tkc->bnthwk", meta(2, 3, 4, 4, 2, 5), meta(3, 6, 5)),
    "softmax in place": lambda: (lambda t: torch.softmax(t, -1, out=t))(meta(2, 3)),
    "matmul": lambda: meta(6, 1, 4, 8).matmul(meta(3, 8, 2)),
    "attention": lambda: F.scaled_dot_product_attention(
        meta(2, 3, 7, 8), meta(2, 3, 9, 8), meta(2, 3, 9, 4)
    ),
    "scalar multiply": lambda: meta(2, 3) * 0.5,
    "broadcast add": lambda: meta(2, 1, 4) + meta(3, 1),
    "in-place add": lambda: meta(2, 3, 4).add_(meta(4)),
    "mean over dims": lambda: meta(2, 3, 4, 5, 6).mean(dim=(2, 3, 4)),
    "sum keepdim": lambda: meta(2, 3, 4).sum(-1, keepdim=True),
    "integer promotion": lambda: torch.empty(3, dtype=torch.int64, device="meta") * 0.5,
    "comparison": lambda: meta(2, 1, 4) != meta(3, 1),
    "cat": lambda: torch.cat([meta(2, 3, 4), meta(2, 5, 4)], dim=1),
    "cat promotes": lambda: torch.cat(
        [meta(2, 3), torch.empty(2, 3, dtype=torch.float64, device="meta")], dim=-1
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("count_flops", [False, True])
def test_shortcut_shapes_and_dtypes_equal_torchs(case: str, count_flops: bool) -> None:
    expected = CASES[case]()
    with MetaShortcuts(count_flops=count_flops):
        got = CASES[case]()
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert got.is_meta


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (lambda: F.linear(meta(2, 7), meta(5, 8)), "expects 8 features, got 7"),
        (lambda: F.layer_norm(meta(2, 3, 8), (6,)), r"layer norm over \(6,\)"),
        (lambda: F.group_norm(meta(2, 6, 4), 4), "not divisible by 4 groups"),
        (lambda: meta(2, 3) + meta(4, 3, 2), "shape"),
        (lambda: meta(2, 3).matmul(meta(4, 5)), "cannot be multiplied"),
        (lambda: torch.cat([meta(2, 3), meta(3, 3)], dim=1), "differ outside dimension 1"),
        (lambda: F.conv3d(meta(2, 4, 5, 9, 9), meta(6, 3, 3, 3, 3)), "channel"),
        (lambda: F.conv2d(meta(1, 3, 2, 9), meta(4, 3, 3, 3)), "too small|size"),
        (lambda: torch.einsum("ij,jk->ik", meta(2, 3), meta(4, 5)), "einsum"),
        (lambda: F.max_pool2d(meta(1, 2, 7, 7), 2, 2, 2), "pad should be"),
    ],
)
def test_shortcuts_refuse_what_torch_refuses(
    case: Callable[[], torch.Tensor], message: str
) -> None:
    with MetaShortcuts(count_flops=False), pytest.raises(RuntimeError, match=message):
        case()


def test_counting_flops_leaves_multiply_accumulates_to_torch() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, MetaShortcuts(count_flops=True):
        F.linear(meta(4, 8), meta(5, 8))
    assert counter.get_total_flops() == 2 * 4 * 8 * 5


@st.composite
def convolutions(draw: st.DrawFn) -> tuple[Callable[[], torch.Tensor], str]:
    """A convolution of random shapes and settings; its input's channels fit or are one off."""
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 3)) * groups
    sizes = st.tuples(*[st.integers(1, 4)] * dims)
    kernel, stride, dilation = draw(sizes), draw(sizes), draw(sizes)
    padding = tuple(p - 1 for p in draw(sizes))
    batch = (draw(st.integers(1, 2)), draw(st.sampled_from([channels, channels + 1])))
    x = meta(*batch, *draw(st.tuples(*[st.integers(1, 10)] * dims)))
    weight = meta(draw(st.integers(1, 3)) * groups, channels // groups, *kernel)
    convolve = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]

    def run() -> torch.Tensor:
        return convolve(x, weight, None, stride, padding, dilation, groups)

    case = f"conv{dims}d {tuple(x.shape)} * {tuple(weight.shape)}, {stride} {padding} {dilation}"
    return run, case


@settings(max_examples=300, deadline=None)
@given(convolutions())
def test_convolution_shapes_equal_torchs_or_fail_alike(
    conv: tuple[Callable[[], torch.Tensor], str],
) -> None:
    run, case = conv

    def outcome(shortcut: bool) -> tuple[int, ...] | str:
        try:
            with MetaShortcuts(count_flops=False) if shortcut else contextlib.nullcontext():
                return tuple(run().shape)
        except RuntimeError as exc:
            return type(exc).__name__

    assert outcome(True) == outcome(False), case


def test_plain_checks_pass_a_true_check_and_leave_failures_to_torch() -> None:
    original = torch._check_with
    with plain_checks():
        torch._check(True)
        with plain_checks():  # nested: restored only when the outer block ends
            pass
        assert torch._check_with is not original
        with pytest.raises(RuntimeError, match="sizes differ"):
            torch._check(False, lambda: "sizes differ")
        with pytest.raises(ValueError, match="bad value"):
            torch._check_value(False, lambda: "bad value")
    assert torch._check_with is original
