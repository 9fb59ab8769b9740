"""Each rank's random number generator states as tensors, so they travel in the sharded
checkpoint like any other state (``rng/<rank>/<generator>``) and resuming on the same number of
ranks continues every rank's random stream where it stopped (dropout, augmentation, shuffling).

Saved: torch's CPU generator, the current CUDA device's (when CUDA is in use), Python's
``random`` and NumPy's global generator (when NumPy is installed).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from ..errors import CheckpointError

__all__ = ["capture_rng", "restore_rng", "rng_prefix", "rng_state_as"]


def rng_prefix(rank: int) -> str:
    return f"rng/{rank}/"


def _numpy() -> Any:
    """NumPy when the program has imported it; a program that has not draws nothing from it."""
    return sys.modules.get("numpy")


def capture_rng(rank: int) -> dict[str, torch.Tensor]:
    """This process's generator states, keyed ``rng/<rank>/<name>``."""
    prefix = rng_prefix(rank)
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor([version, *internal], dtype=torch.int64),
        "python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
    }
    numpy = _numpy()
    if numpy is not None:
        _, keys, pos, has_gauss, cached = numpy.random.get_state(legacy=True)
        state["numpy"] = torch.tensor([pos, has_gauss, *keys.tolist()], dtype=torch.int64)
        state["numpy_gauss"] = torch.tensor([cached], dtype=torch.float64)
    # Only when CUDA is already in use: asking would otherwise start a CUDA context.
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state()
    return {prefix + name: tensor for name, tensor in state.items()}


def restore_rng(tensors: Mapping[str, torch.Tensor], rank: int, where: str) -> None:
    """Set this process's generators from ``capture_rng``'s tensors of ``rank``."""
    prefix = rng_prefix(rank)
    state = {key.removeprefix(prefix): t for key, t in tensors.items() if key.startswith(prefix)}
    try:
        torch.set_rng_state(state["torch"].to(torch.uint8))
        python = [int(n) for n in state["python"].tolist()]
        gauss = state["python_gauss"].tolist()
        random.setstate((python[0], tuple(python[1:]), gauss[0] if gauss else None))
        numpy = _numpy()
        if numpy is not None and "numpy" in state:
            pos, has_gauss, *keys = (int(n) for n in state["numpy"].tolist())
            cached = float(state["numpy_gauss"].tolist()[0])
            numpy.random.set_state(
                ("MT19937", numpy.asarray(keys, dtype=numpy.uint32), pos, has_gauss, cached)
            )
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"].to(torch.uint8))
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{where}: the saved RNG state of rank {rank} cannot be restored: {exc}"
        ) from exc


@contextlib.contextmanager
def rng_state_as(tensors: Mapping[str, torch.Tensor], rank: int, where: str) -> Iterator[None]:
    """Within the block, this process's generators are in ``rank``'s saved state; afterwards
    they are back where they were."""
    own = capture_rng(0)
    restore_rng(tensors, rank, where)
    try:
        yield
    finally:
        restore_rng(own, 0, "this process")
