"""Initialising a model once, in one documented order, with torch's global generator.

``init_plan`` lists one step per module that owns tensors or initialises itself, children
before their parent (post-order, in module registration order): a layer's own
``reset_parameters()`` therefore runs after its children's and has the last word over any
child tensor it chooses to set (a zero-initialised residual branch stays zero). A step is the
scheme's rule for the module's type, or else the module's ``reset_parameters()``. Every draw
comes from torch's global generator of the tensor's device, one step after another, so
``torch.manual_seed(s)`` alone fixes the weights, whatever the number of threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import BuildError
from ..layers import InitScheme, ModuleInit, get_init

__all__ = ["InitStep", "init_plan", "initialize", "initializer_for", "run_plan"]

# Per step, a context to run it in (the sharded initialisation swaps in full-size tensors).
StepContext = Callable[[nn.Module], contextlib.AbstractContextManager[object]]


def _owns_tensors(module: nn.Module) -> bool:
    return any(t is not None for t in module.parameters(recurse=False)) or any(
        b is not None for b in module.buffers(recurse=False)
    )


@dataclass(frozen=True)
class InitStep:
    """What initialises one module: a scheme ``rule`` or, when None, its ``reset``."""

    name: str
    module: nn.Module
    rule: ModuleInit | None = None
    reset: Callable[[], None] | None = None

    def run(self) -> None:
        if self.rule is not None:
            self.rule(self.module)
        elif self.reset is not None:
            self.reset()


def _step(name: str, module: nn.Module, scheme: InitScheme) -> InitStep | None:
    rule = scheme.rule_for(module)
    if rule is not None:
        return InitStep(name, module, rule=rule)
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        return InitStep(name, module, reset=reset)
    if _owns_tensors(module):
        raise BuildError(
            f"module {name or '<root>'} ({type(module).__name__}) holds tensors of its own "
            "but has no reset_parameters(); define one so it can be initialised"
        )
    return None


def initializer_for(name: str, module: nn.Module, scheme: InitScheme) -> Callable[[], None] | None:
    """What initialises ``module``'s own tensors under ``scheme`` (None: nothing to do).

    A module type the scheme names gets the scheme's rule; any other module gets its
    ``reset_parameters()``. A module that owns tensors and has neither is an error, so no weight
    can be left uninitialised.
    """
    step = _step(name, module, scheme)
    return None if step is None else step.run


def _post_order(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    seen: set[int] = set()

    def visit(name: str, module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
        if id(module) in seen:
            return
        seen.add(id(module))
        for child_name, child in module.named_children():
            yield from visit(f"{name}.{child_name}" if name else child_name, child)
        yield name, module

    yield from visit("", model)


def init_plan(model: nn.Module, scheme: InitScheme) -> list[InitStep]:
    """One step per module that owns tensors or initialises itself, children first."""
    return [step for name, module in _post_order(model) if (step := _step(name, module, scheme))]


def run_plan(plan: Sequence[InitStep], *, context: StepContext | None = None) -> None:
    """Run ``plan`` in order; ``context`` wraps each step."""
    with torch.no_grad():
        for step in plan:
            with context(step.module) if context is not None else contextlib.nullcontext():
                step.run()


def initialize(model: nn.Module, scheme: str = "torch") -> None:
    """Initialise every parameter and buffer of ``model`` exactly once under ``scheme``."""
    run_plan(init_plan(model, get_init(scheme)))
