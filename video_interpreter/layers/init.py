"""Weight initialisation schemes a spec can name (``init: resnet``), applied once per module.

A rule takes the module and a ``torch.Generator`` (``None``: the global one) and draws every
random number from it, so the model stage can run rules on several threads and still give the
same weights for the same ``torch.manual_seed``. The built-in rules draw through ``RandomFills``
(uniform draws on CPU by numpy's PCG64, a third faster than torch's generator), seeded from
that generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import RegistrationError, RegistryError
from ._random import RandomFills
from ._registry import closest_names

__all__ = ["INITS", "InitScheme", "RandomFills", "register_init"]

ModuleInit = Callable[[nn.Module, torch.Generator | None], None]


@dataclass(frozen=True)
class InitScheme:
    """Per module type, the function that initialises it. Modules of other types fall back to
    their own ``reset_parameters()``, so every weight is initialised exactly once.

    With ``stock_only`` a rule stands in for its type's own ``reset_parameters()`` and so skips
    a subclass that overrides it (that subclass keeps its own).
    """

    name: str
    description: str
    rules: Mapping[type[nn.Module], ModuleInit] = field(default_factory=dict)
    stock_only: bool = False
    _by_type: dict[type[nn.Module], ModuleInit | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def rule_for(self, module: nn.Module) -> ModuleInit | None:
        cls = type(module)
        if cls not in self._by_type:  # the answer depends on the class alone
            self._by_type[cls] = self._find_rule(cls)
        return self._by_type[cls]

    def _find_rule(self, cls: type[nn.Module]) -> ModuleInit | None:
        for kind, rule in self.rules.items():
            if issubclass(cls, kind):
                own = getattr(cls, "reset_parameters", None)
                overridden = own is not getattr(kind, "reset_parameters", None)
                return None if self.stock_only and overridden else rule
        return None


INITS: dict[str, InitScheme] = {}


def register_init(scheme: InitScheme) -> InitScheme:
    existing = INITS.get(scheme.name)
    if existing is not None and existing is not scheme:
        raise RegistrationError(f"init scheme {scheme.name!r} is already registered")
    INITS[scheme.name] = scheme
    return scheme


def get_init(name: str) -> InitScheme:
    try:
        return INITS[name]
    except KeyError:
        near = closest_names(name, sorted(INITS))
        raise RegistryError(
            f"unknown init scheme {name!r}; known: {sorted(INITS)}"
            + (f" (did you mean {near[0]}?)" if near else "")
        ) from None


def _zero_bias(module: nn.Module) -> None:
    bias = getattr(module, "bias", None)
    if isinstance(bias, nn.Parameter):
        nn.init.zeros_(bias)


def _pytorch_default(module: nn.Module, generator: torch.Generator | None) -> None:
    """What ``reset_parameters()`` of ``nn.Linear`` and the ``nn.ConvNd`` draws: weights
    Kaiming-uniform with ``a = sqrt(5)``, biases uniform in ``+-1/sqrt(fan_in)``."""
    assert isinstance(module, nn.Linear | nn.modules.conv._ConvNd)
    fills = RandomFills(generator)
    weight = module.weight
    fills.kaiming_uniform_(weight, a=math.sqrt(5))
    bias = module.bias
    if bias is not None:
        fan_in = math.prod(weight.shape[1:])
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        fills.uniform_(bias, -bound, bound)


def _kaiming_fan_out(module: nn.Module, generator: torch.Generator | None) -> None:
    assert isinstance(module, nn.modules.conv._ConvNd)
    RandomFills(generator).kaiming_normal_(module.weight, mode="fan_out")
    _zero_bias(module)


def _normal_001(module: nn.Module, generator: torch.Generator | None) -> None:
    assert isinstance(module, nn.Linear)
    RandomFills(generator).normal_(module.weight, 0.0, 0.01)
    _zero_bias(module)


def _trunc_normal_002(module: nn.Module, generator: torch.Generator | None) -> None:
    assert isinstance(module, nn.Linear)
    RandomFills(generator).trunc_normal_(module.weight, std=0.02)
    _zero_bias(module)


def _xavier_flat(module: nn.Module, generator: torch.Generator | None) -> None:
    assert isinstance(module, nn.modules.conv._ConvNd)
    # A patch projection is a linear map of the flattened tubelet.
    fan_in = math.prod(module.weight.shape[1:])
    bound = math.sqrt(6.0 / (fan_in + module.weight.shape[0]))
    RandomFills(generator).uniform_(module.weight, -bound, bound)
    _zero_bias(module)


register_init(
    InitScheme(
        "torch",
        "every module's own reset_parameters() (PyTorch defaults); convolutions and linears "
        "draw the same distributions from per-module generators, so they can run in parallel",
        {nn.modules.conv._ConvNd: _pytorch_default, nn.Linear: _pytorch_default},
        stock_only=True,
    )
)
register_init(
    InitScheme(
        "resnet",
        "convs kaiming-normal (fan_out, ReLU), linears N(0, 0.01), zero biases "
        "(torchvision's video ResNets)",
        {nn.Conv3d: _kaiming_fan_out, nn.Linear: _normal_001},
    )
)
register_init(
    InitScheme(
        "vit",
        "linears truncated-normal (std 0.02), patch convs Xavier-uniform, zero biases",
        {nn.Linear: _trunc_normal_002, nn.Conv3d: _xavier_flat},
    )
)
register_init(
    InitScheme(
        "swin",
        "linears truncated-normal (std 0.02), zero biases; relative position bias tables "
        "truncated-normal (std 0.02) by their module; convs and norms PyTorch defaults "
        "(torchvision's Swin transformers)",
        {nn.Linear: _trunc_normal_002},
    )
)
register_init(
    InitScheme(
        "mvit",
        "linears truncated-normal (std 0.02), zero biases; class token, positions and relative "
        "position tables truncated-normal (std 0.02) by their modules; convs and norms PyTorch "
        "defaults (torchvision's MViT)",
        {nn.Linear: _trunc_normal_002},
    )
)
