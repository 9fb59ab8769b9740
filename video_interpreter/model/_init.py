"""Initialising a model once under a scheme, with the random draws spread over torch's threads.

``init_plan`` lists what initialises each module: a scheme rule or its own
``reset_parameters()``. ``run_plan`` runs the ``reset_parameters()`` steps in module order on the
calling thread (they draw from the global generator), then the rule steps, each with its own
generator seeded from one draw of the global one. A step's weights depend only on that seed and
the step's index, so they are the same whether the steps run on one thread or several, and the
same for the same ``torch.manual_seed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..errors import BuildError
from ..layers import InitScheme, get_init
from ..layers.init import ModuleInit

__all__ = ["InitStep", "init_plan", "initialize", "initializer_for", "run_plan"]

# Below this many elements in rule steps, threads cost more than they save.
PARALLEL_MIN_ELEMENTS = 1 << 20

# Per step, a context to run it in (the sharded initialisation swaps in full-size tensors).
StepContext = Callable[[nn.Module], contextlib.AbstractContextManager[object]]


def _owns_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    )


def _apply_rule(rule: ModuleInit, module: nn.Module, generator: torch.Generator | None) -> None:
    rule(module, generator)
    if isinstance(module, nn.modules.batchnorm._NormBase):
        module.reset_running_stats()


def _reset(name: str, module: nn.Module) -> Callable[[], None] | None:
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        return reset  # type: ignore[no-any-return]
    if _owns_tensors(module):
        raise BuildError(
            f"module {name or '<root>'} ({type(module).__name__}) holds tensors of its own "
            "but has no reset_parameters(); define one so it can be initialised"
        )
    return None


@dataclass(frozen=True)
class InitStep:
    """What initialises one module: a scheme ``rule`` or, when None, ``reset``."""

    name: str
    module: nn.Module
    rule: ModuleInit | None = None
    reset: Callable[[], None] | None = None

    def run(self, generator: torch.Generator | None = None) -> None:
        if self.rule is not None:
            _apply_rule(self.rule, self.module, generator)
        elif self.reset is not None:
            self.reset()


def _step(name: str, module: nn.Module, scheme: InitScheme) -> InitStep | None:
    rule = scheme.rule_for(module)
    if rule is not None:
        return InitStep(name, module, rule=rule)
    reset = _reset(name, module)
    return None if reset is None else InitStep(name, module, reset=reset)


def initializer_for(name: str, module: nn.Module, scheme: InitScheme) -> Callable[[], None] | None:
    """What initialises ``module``'s own tensors under ``scheme`` (None: it owns none), drawing
    from the global generator.

    A module type the scheme names gets the scheme's rule; any other module gets its
    ``reset_parameters()``. A module that owns tensors and has neither is an error, so no weight
    can be left uninitialised.
    """
    step = _step(name, module, scheme)
    return None if step is None else partial(step.run, None)


def init_plan(model: nn.Module, scheme: InitScheme) -> list[InitStep]:
    """One step per module that owns tensors or resets its own, in module order."""
    return [
        step
        for name, module in model.named_modules()
        if (step := _step(name, module, scheme)) is not None
    ]


Indexed = tuple[int, InitStep]  # a step with its index in the plan, which seeds it


def _device(module: nn.Module) -> torch.device:
    for tensor in module.parameters(recurse=False):
        return tensor.device
    return torch.device("cpu")


def _run_seeded(steps: Sequence[Indexed], seed: int, context: StepContext | None) -> None:
    with torch.no_grad():  # grad mode is per thread
        for index, step in steps:
            with context(step.module) if context is not None else contextlib.nullcontext():
                generator = torch.Generator(_device(step.module)).manual_seed(seed + index)
                step.run(generator)


def _balanced(steps: Sequence[Indexed], parts: int) -> list[list[Indexed]]:
    """``steps`` split into ``parts`` lists of about equal element counts, largest first."""
    groups: list[list[Indexed]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for item in sorted(steps, key=lambda item: -_elements(item[1])):
        lightest = loads.index(min(loads))
        groups[lightest].append(item)
        loads[lightest] += _elements(item[1])
    return groups


def _elements(step: InitStep) -> int:
    return sum(t.numel() for t in step.module.parameters(recurse=False))


def run_plan(
    plan: Sequence[InitStep], *, threads: int | None = None, context: StepContext | None = None
) -> None:
    """Run ``plan``: resets in order on this thread, then the rule steps on up to ``threads``
    threads (default ``torch.get_num_threads()``; CPU tensors only). ``context`` wraps each step
    and makes the rule steps run on this thread."""
    rule_steps = [(i, step) for i, step in enumerate(plan) if step.rule is not None]
    with torch.no_grad():
        for step in plan:
            if step.rule is None:
                with context(step.module) if context is not None else contextlib.nullcontext():
                    step.run()
    if not rule_steps:
        return
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64).item())
    workers = torch.get_num_threads() if threads is None else threads
    parallel = (
        workers > 1
        and context is None
        and all(_device(step.module).type == "cpu" for _, step in rule_steps)
        and sum(_elements(step) for _, step in rule_steps) >= PARALLEL_MIN_ELEMENTS
    )
    if not parallel:
        _run_seeded(rule_steps, seed, context)
        return
    first, *rest = _balanced(rule_steps, workers)
    with ThreadPoolExecutor(max_workers=len(rest), thread_name_prefix="init") as pool:
        pending = [pool.submit(_run_seeded, group, seed, None) for group in rest]
        _run_seeded(first, seed, None)
        for future in pending:
            future.result()


def initialize(model: nn.Module, scheme: str = "torch", *, threads: int | None = None) -> None:
    """Initialise every parameter and buffer of ``model`` exactly once under ``scheme``."""
    run_plan(init_plan(model, get_init(scheme)), threads=threads)
