"""Initialising a model once under a scheme, with its random draws spread over threads.

``init_plan`` lists what initialises each module: a scheme rule or the module's own
``reset_parameters()``. A plan means: the resets in module order, drawing from the global
generator, then the rule steps, each drawing from a generator of its own, seeded from one draw of
the global generator and the module's name. A rule step's values therefore do not depend on the
thread that runs it or on when it runs, and one ``torch.manual_seed`` gives one set of weights.

``run_plan`` runs a plan on the threads torch may use.
"""

from __future__ import annotations

import contextlib
import hashlib
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


def _own_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module._parameters.values() if p is not None]


def _owns_tensors(module: nn.Module) -> bool:
    return bool(_own_parameters(module)) or any(b is not None for b in module._buffers.values())


def _apply_rule(rule: ModuleInit, module: nn.Module, generator: torch.Generator | None) -> None:
    rule(module, generator)
    if isinstance(module, nn.modules.batchnorm._NormBase):
        module.reset_running_stats()


def _reset(name: str, module: nn.Module) -> Callable[[], None] | None:
    # Asked of the class first: a miss through nn.Module.__getattr__ raises and catches an
    # AttributeError, which costs more than the rest of planning the module.
    if hasattr(type(module), "reset_parameters") or "reset_parameters" in vars(module):
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


def _device(module: nn.Module) -> torch.device:
    own = _own_parameters(module)
    return own[0].device if own else torch.device("cpu")


def _draw_seed() -> int:
    """One draw of the global generator, from which every rule step's seed derives."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64).item())


def _step_seed(seed: int, name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8, key=seed.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little") >> 1  # manual_seed takes 63 bits


def _run_rules(steps: Sequence[InitStep], seed: int, context: StepContext | None = None) -> None:
    with torch.no_grad():  # grad mode is per thread
        for step in steps:
            with context(step.module) if context is not None else contextlib.nullcontext():
                generator = torch.Generator(_device(step.module))
                step.run(generator.manual_seed(_step_seed(seed, step.name)))


def _balanced(steps: Sequence[InitStep], parts: int) -> list[list[InitStep]]:
    """``steps`` split into ``parts`` lists of about equal element counts, largest first."""
    groups: list[list[InitStep]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for size, step in sorted(((_elements(step), step) for step in steps), key=lambda x: -x[0]):
        lightest = loads.index(min(loads))
        groups[lightest].append(step)
        loads[lightest] += size
    return groups


def _elements(step: InitStep) -> int:
    return sum(t.numel() for t in _own_parameters(step.module))


def _run_resets(plan: Sequence[InitStep], context: StepContext | None = None) -> None:
    with torch.no_grad():
        for step in plan:
            if step.rule is None:
                with context(step.module) if context is not None else contextlib.nullcontext():
                    step.run()


def _run_rules_on_threads(steps: Sequence[InitStep], seed: int, threads: int | None) -> None:
    workers = torch.get_num_threads() if threads is None else threads
    parallel = (
        workers > 1
        and all(_device(step.module).type == "cpu" for step in steps)
        and sum(_elements(step) for step in steps) >= PARALLEL_MIN_ELEMENTS
    )
    if not parallel:
        _run_rules(steps, seed)
        return
    first, *rest = _balanced(steps, workers)
    with ThreadPoolExecutor(max_workers=len(rest), thread_name_prefix="init") as pool:
        pending = [pool.submit(_run_rules, group, seed) for group in rest]
        _run_rules(first, seed)
        for future in pending:
            future.result()


def run_plan(
    plan: Sequence[InitStep],
    *,
    seed: int | None = None,
    threads: int | None = None,
    context: StepContext | None = None,
) -> None:
    """Run ``plan``: resets in order on this thread, then the rule steps on up to ``threads``
    threads (default ``torch.get_num_threads()``; CPU tensors only). ``seed`` defaults to a draw
    of the global generator, taken first. ``context`` wraps each step and makes the rule steps
    run on this thread."""
    if seed is None:
        seed = _draw_seed()
    _run_resets(plan, context)
    rule_steps = [step for step in plan if step.rule is not None]
    if context is not None:
        _run_rules(rule_steps, seed, context)
    else:
        _run_rules_on_threads(rule_steps, seed, threads)


def initialize(model: nn.Module, scheme: str = "torch", *, threads: int | None = None) -> None:
    """Initialise every parameter and buffer of ``model`` exactly once under ``scheme``."""
    run_plan(init_plan(model, get_init(scheme)), threads=threads)
