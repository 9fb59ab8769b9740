"""Weight initialisation schemes a spec can name (``init: resnet``): data, applied per module.

A scheme maps module types to rules. A rule initialises every tensor a module of that type owns,
drawing from torch's global generator (``torch.nn.init``), and stands in for the type's own
``reset_parameters()``. It applies only to modules that do not define a ``reset_parameters`` of
their own beyond that type's: a layer that initialises itself keeps its own initialisation.
The model stage applies a scheme in one order (see ``video_interpreter.model.initialize``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import RegistrationError, RegistryError
from ._registry import closest_names

__all__ = ["INITS", "InitScheme", "ModuleInit", "get_init", "register_init"]

ModuleInit = Callable[[nn.Module], None]


@dataclass(frozen=True)
class InitScheme:
    """Per module type, the rule that initialises it in place of its ``reset_parameters()``.

    A rule for ``kind`` applies to an instance of ``kind`` (or of a subclass) unless its class
    overrides ``kind.reset_parameters``; every other module initialises itself.
    """

    name: str
    description: str
    rules: Mapping[type[nn.Module], ModuleInit] = field(default_factory=dict)

    def rule_for(self, module: nn.Module) -> ModuleInit | None:
        cls = type(module)
        for kind, rule in self.rules.items():
            if issubclass(cls, kind):
                asked = getattr(cls, "reset_parameters", None) is getattr(
                    kind, "reset_parameters", None
                )
                return rule if asked else None
        return None


INITS: dict[str, InitScheme] = {}


def register_init(scheme: InitScheme) -> InitScheme:
    """Make ``scheme`` nameable as a spec's ``init``; a second scheme under a taken name is a
    ``RegistrationError``.

    Examples:
        >>> from video_interpreter.layers import get_init, register_init
        >>> scheme = get_init("resnet")
        >>> register_init(scheme) is scheme       # registering the same scheme again is harmless
        True
    """
    existing = INITS.get(scheme.name)
    if existing is not None and existing is not scheme:
        raise RegistrationError(f"init scheme {scheme.name!r} is already registered")
    INITS[scheme.name] = scheme
    return scheme


def get_init(name: str) -> InitScheme:
    """The init scheme a spec names in ``init``; an unknown name lists the known ones.

    Examples:
        >>> from video_interpreter.layers import get_init
        >>> get_init("resnet").name
        'resnet'
    """
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


def _weight(module: nn.Module) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor to initialise")
    return weight


def _kaiming_fan_out(module: nn.Module) -> None:
    nn.init.kaiming_normal_(_weight(module), mode="fan_out", nonlinearity="relu")
    _zero_bias(module)


def _normal_001(module: nn.Module) -> None:
    nn.init.normal_(_weight(module), 0.0, 0.01)
    _zero_bias(module)


def _trunc_normal_002(module: nn.Module) -> None:
    nn.init.trunc_normal_(_weight(module), std=0.02)
    _zero_bias(module)


def _xavier_flat(module: nn.Module) -> None:
    # A patch projection is a linear map of the flattened tubelet.
    weight = _weight(module)
    fan_in = math.prod(weight.shape[1:])
    bound = math.sqrt(6.0 / (fan_in + weight.shape[0]))
    nn.init.uniform_(weight, -bound, bound)
    _zero_bias(module)


register_init(InitScheme("torch", "every module's own reset_parameters() (PyTorch defaults)"))
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
