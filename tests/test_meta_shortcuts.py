"""Shape-only answers on the meta device match what torch itself computes, and fail alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from video_interpreter.layers import MetaShortcuts


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta")


CASES: dict[str, Callable[[], torch.Tensor]] = {
    "batch_norm": lambda: F.batch_norm(meta(2, 4, 3, 5, 5), meta(4), meta(4), training=True),
    "layer_norm": lambda: F.layer_norm(meta(2, 3, 8), (8,)),
    "group_norm": lambda: F.group_norm(meta(2, 4, 3, 5, 5), 2),
    "gelu": lambda: F.gelu(meta(2, 7)),
    "softmax": lambda: meta(2, 3, 9).softmax(-1),
    "linear": lambda: F.linear(meta(2, 3, 8), meta(5, 8)),
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
