"""Initialisation: PyTorch's default distributions, reproducible under a seed on any number of
threads, a layer's own reset kept, children initialised before their parent."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from video_interpreter.layers import LAYERS, Layout, get_init, register_layer
from video_interpreter.layers import channels as channels_of
from video_interpreter.model import allocate, build_model, init_plan, initialize, run_plan

from .conftest import TINY_SPEC


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: t.clone() for key, t in model.state_dict().items()}


@pytest.mark.parametrize("name", ["s3d", "tiny_transformer", "tiny_swin", "v1"])
def test_the_same_seed_gives_the_same_weights_on_one_thread_or_several(name: str) -> None:
    threads = torch.get_num_threads()
    runs = []
    try:
        for count in (1, 2, 4):
            torch.set_num_threads(count)
            torch.manual_seed(11)
            runs.append(_weights(build_model(name)))
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        assert other.keys() == runs[0].keys()
        for key, tensor in runs[0].items():
            assert torch.equal(other[key], tensor), key

    torch.manual_seed(12)
    changed = [k for k, t in _weights(build_model(name)).items() if not torch.equal(t, runs[0][k])]
    assert changed, "another seed must give other weights"


class ZeroInitResidual(nn.Module):
    """A user's block that zero-initialises its last convolution (the zero-init-residual
    pattern), so the block starts as the identity."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, in_channels, 3, padding=1)
        self.last = nn.Conv3d(in_channels, in_channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.last.weight)
        assert self.last.bias is not None
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.last(torch.relu(self.conv(x)))
        return out


@pytest.fixture
def zero_init_layer() -> Iterator[str]:
    register_layer(
        "TestZeroInitResidual",
        params={},
        infer={"in_channels": channels_of},
        accepts=[Layout.CLIP],
        output=lambda x, **_: x,
    )(ZeroInitResidual)
    yield "TestZeroInitResidual"
    del LAYERS._entries["TestZeroInitResidual"]
    LAYERS._derived.clear()


@pytest.mark.parametrize("scheme", ["torch", "resnet"])
def test_a_layer_that_zero_initialises_a_child_keeps_it_zero_under_every_scheme(
    zero_init_layer: str, scheme: str
) -> None:
    spec = dict(TINY_SPEC, init=scheme, backbone=[{"type": zero_init_layer}])
    model = build_model(spec)
    block = model.get_submodule("backbone.0")
    assert isinstance(block, ZeroInitResidual)
    assert block.last.weight.abs().max().item() == 0.0
    assert block.last.bias is not None
    assert block.last.bias.abs().max().item() == 0.0
    assert block.conv.weight.abs().max().item() > 0.0  # the other child is initialised
    clip = torch.randn(2, 3, 4, 16, 16)
    assert torch.equal(block(clip), clip)  # the block starts as the identity


def test_allocation_keeps_a_shared_tensor_shared() -> None:
    with torch.device("meta"):
        first, second = nn.Linear(8, 8), nn.Linear(8, 8)
    second.weight = first.weight  # tied
    model = allocate(nn.Sequential(first, second))
    assert not first.weight.is_meta
    assert not second.bias.is_meta
    assert second.weight is first.weight
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_children_are_initialised_before_their_parent() -> None:
    model = ZeroInitResidual(2)
    names = [step.name for step in init_plan(model, get_init("torch"))]
    assert names == ["conv", "last", ""]


def test_the_torch_scheme_draws_pytorchs_default_distributions() -> None:
    layers = nn.Sequential(nn.Conv3d(64, 128, 3), nn.Linear(512, 256))
    torch.manual_seed(0)
    initialize(layers, "torch")
    for layer in layers:
        assert isinstance(layer, nn.Conv3d | nn.Linear)
        fan_in = math.prod(layer.weight.shape[1:])
        # kaiming_uniform_(a=sqrt(5)): uniform in +-sqrt(6 / ((1 + 5) * fan_in)) = +-1/sqrt(fan_in)
        bound = 1 / math.sqrt(fan_in)
        assert layer.bias is not None
        for tensor in (layer.weight, layer.bias):
            assert tensor.abs().max().item() <= bound
            assert tensor.abs().max().item() > 0.95 * bound
            # A uniform distribution on +-b has standard deviation b / sqrt(3).
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_a_subclass_that_overrides_reset_parameters_keeps_its_own_under_a_scheme_rule() -> None:
    class ZeroLinear(nn.Linear):
        def reset_parameters(self) -> None:
            nn.init.zeros_(self.weight)
            nn.init.ones_(self.bias)

    mine, stock = ZeroLinear(4, 3), nn.Linear(4, 3)
    layers = nn.Sequential(mine, stock)
    plan = init_plan(layers, get_init("resnet"))
    assert [(step.name, step.rule is None) for step in plan] == [("0", True), ("1", False)]
    with torch.no_grad():
        for p in layers.parameters():
            p.fill_(math.nan)
    run_plan(plan)
    assert torch.equal(mine.weight, torch.zeros(3, 4))
    assert torch.equal(mine.bias, torch.ones(3))
    assert not stock.weight.isnan().any()
    assert stock.weight.abs().max().item() > 0


@pytest.mark.parametrize("name", ["tiny_transformer", "mvit_v2_s", "swin3d_t"])
def test_a_modules_reset_leaves_its_childrens_tensors_to_them(name: str) -> None:
    """The init plan visits every module, so a reset that also reset its children would draw
    their weights twice (the zoo's layers set only their own tensors)."""
    model = build_model(name)
    checked = 0
    for path, module in model.named_modules():
        reset = getattr(type(module), "reset_parameters", None)
        children = {
            f"{child_name}.{key}": tensor
            for child_name, child in module.named_children()
            for key, tensor in child.state_dict().items()
        }
        if reset is None or not children:
            continue
        before = {key: tensor.clone() for key, tensor in children.items()}
        module.reset_parameters()
        changed = [key for key, tensor in children.items() if not torch.equal(tensor, before[key])]
        assert not changed, f"{path or '<root>'}.reset_parameters() changed {changed}"
        checked += 1
    assert checked, "expected a module that owns tensors beside its children"
