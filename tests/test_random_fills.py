"""RandomFills: torch's init distributions, drawn by numpy where it can fill the tensor in place and
by torch elsewhere, reproducible from the rule's generator."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from video_interpreter.layers import RandomFills

Fill = Callable[[RandomFills, torch.Tensor], torch.Tensor]

N = 200_000
SHAPE = (N // 288, 32, 3, 3)  # a convolution's weight of about N elements
# Four standard errors of a mean or a standard deviation over N draws, as fractions of the std.
TOLERANCE = 4 / math.sqrt(N)


def _uniform_stats(low: float, high: float) -> tuple[float, float]:
    return (low + high) / 2, (high - low) / math.sqrt(12)


def _truncated_std(a: float, b: float) -> float:
    """Standard deviation of N(0, 1) truncated to [a, b]."""

    def pdf(x: float) -> float:
        return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    def cdf(x: float) -> float:
        return (1 + math.erf(x / math.sqrt(2))) / 2

    z = cdf(b) - cdf(a)
    return math.sqrt(1 + (a * pdf(a) - b * pdf(b)) / z - ((pdf(a) - pdf(b)) / z) ** 2)


CASES: dict[str, tuple[Fill, float | None, float, tuple[float, float] | None]] = {
    # name: (fill, expected mean, expected std, bounds the values must lie in)
    "uniform": (lambda f, t: f.uniform_(t, -0.3, 0.5), *_uniform_stats(-0.3, 0.5), (-0.3, 0.5)),
    "normal": (lambda f, t: f.normal_(t, 0.25, 0.02), 0.25, 0.02, None),
    "trunc_normal": (
        lambda f, t: f.trunc_normal_(t, std=0.02),  # torch's default bounds are +-2, not +-2 std
        0.0,
        0.02,
        (-2.0, 2.0),
    ),
    "trunc_normal_tight": (
        lambda f, t: f.trunc_normal_(t, std=1.0, a=-1.0, b=1.5),
        None,  # checked through the std alone
        _truncated_std(-1.0, 1.5),
        (-1.0, 1.5),
    ),
    # Weights of shape (out, 32, 3, 3): kaiming-uniform a=sqrt(5) is uniform in +-1/sqrt(fan_in).
    "kaiming_uniform": (
        lambda f, t: f.kaiming_uniform_(t, a=math.sqrt(5)),
        *_uniform_stats(-1 / math.sqrt(288), 1 / math.sqrt(288)),
        (-1 / math.sqrt(288), 1 / math.sqrt(288)),
    ),
    "kaiming_normal_fan_out": (
        lambda f, t: f.kaiming_normal_(t, mode="fan_out"),
        0.0,
        math.sqrt(2 / (SHAPE[0] * 9)),
        None,
    ),
}


def _tensors() -> dict[str, torch.Tensor]:
    """One tensor numpy fills in place, and ones torch must fill (half precision, strided)."""
    return {
        "float32": torch.empty(SHAPE),
        "float64": torch.empty(SHAPE, dtype=torch.float64),
        "float16": torch.empty(SHAPE, dtype=torch.float16),
        "strided": torch.empty(*SHAPE[:3], 2 * SHAPE[3])[..., ::2],  # every other element
    }


@pytest.mark.parametrize("kind", ["float32", "float64", "float16", "strided"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fill_draws_its_distribution_in_place(case: str, kind: str) -> None:
    fill, mean, std, bounds = CASES[case]
    target = _tensors()[kind]
    storage = target.data_ptr()
    result = fill(RandomFills(torch.Generator().manual_seed(3)), target)
    assert target.data_ptr() == storage, "the tensor itself must be filled, not a copy"
    values = target.double()
    assert result.data_ptr() == storage
    assert math.isclose(values.std().item(), std, rel_tol=TOLERANCE + 2e-3)  # + half rounding
    if mean is not None:
        assert abs(values.mean().item() - mean) <= TOLERANCE * std + 1e-3 * abs(mean)
    if bounds is not None:  # a bound itself may round outwards to the tensor's precision
        slack = torch.finfo(target.dtype).eps * max(abs(b) for b in bounds)
        assert bounds[0] - slack <= values.min().item()
        assert values.max().item() <= bounds[1] + slack


def test_the_same_generator_seed_gives_the_same_numbers_and_each_call_new_ones() -> None:
    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        first = RandomFills(generator).uniform_(torch.empty(1000))
        second = RandomFills(generator).uniform_(torch.empty(1000))
        return first, second

    first, second = draw(5)
    again, _ = draw(5)
    other, _ = draw(6)
    assert torch.equal(first, again)
    assert not torch.equal(first, second), "a second call on one generator must draw anew"
    assert not torch.equal(first, other)


def test_the_global_generator_is_used_without_one() -> None:
    torch.manual_seed(9)
    first = RandomFills().normal_(torch.empty(100))
    torch.manual_seed(9)
    assert torch.equal(RandomFills().normal_(torch.empty(100)), first)


def test_a_fill_does_not_record_autograd_history() -> None:
    weight = torch.nn.Parameter(torch.empty(8, 4, dtype=torch.float16))  # the torch path
    RandomFills().trunc_normal_(weight, std=0.02)
    assert weight.grad_fn is None
    assert weight.requires_grad


def test_fan_needs_a_weight_of_two_dimensions_and_a_known_mode() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        RandomFills().kaiming_uniform_(torch.empty(10))
    with pytest.raises(ValueError, match="'fan_in' or 'fan_out'"):
        RandomFills().kaiming_normal_(torch.empty(4, 4), mode="fan_avg")


def test_fills_used_in_turn_on_one_thread_keep_their_own_streams() -> None:
    def fills(seed: int) -> RandomFills:
        return RandomFills(torch.Generator().manual_seed(seed))

    alone = fills(1)
    first, second = alone.uniform_(torch.empty(50)), alone.uniform_(torch.empty(50))
    interleaved, other = fills(1), fills(2)
    assert torch.equal(interleaved.uniform_(torch.empty(50)), first)
    other.uniform_(torch.empty(50))  # takes the thread's generator in between
    assert torch.equal(interleaved.uniform_(torch.empty(50)), second)
