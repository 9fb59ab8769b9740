"""Storage precision: a checkpoint's parameters written in bfloat16 or float16, half the bytes.

Only parameters change precision. Buffers keep theirs: BatchNorm's running statistics are
float32 because a running variance in float16 loses its small values (and, being a few kB in
any model, halving them saves nothing), and integer buffers (position indices) have no other
precision. The precision is recorded in the checkpoint (``precision``), so ``load_model``
restores the model in it unless told otherwise, with every cast in the load report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["PRECISIONS", "precision_dtype", "precision_name", "storage_state_dict"]

logger = logging.getLogger(__name__)

# Recorded name -> dtype: the precisions a checkpoint may store its parameters in.
PRECISIONS: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float16": torch.float16}
_SHOWN = 5  # keys named in an error before "and N more"


def precision_name(dtype: torch.dtype | None) -> str | None:
    """The name recorded for a storage ``dtype``: None for None and float32 (as trained)."""
    if dtype is None or dtype == torch.float32:
        return None
    for name, known in PRECISIONS.items():
        if dtype == known:
            return name
    raise CheckpointError(
        f"dtype={dtype} is not a storage precision; use torch.bfloat16 (float32's range, "
        "8 bits of mantissa), torch.float16 (10 bits, values up to 65504) or torch.float32"
    )


def precision_dtype(name: str | None) -> torch.dtype | None:
    """The dtype of a recorded precision name (None: none recorded)."""
    return None if name is None else PRECISIONS[name]


def storage_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, where: str
) -> dict[str, torch.Tensor]:
    """``state_dict`` with the model's floating-point parameters cast to ``dtype``.

    A finite value the precision cannot hold (above 65504 in float16) is refused, naming the
    keys, rather than stored as infinity; values too small for it (flushed to zero) are
    counted in a warning.
    """
    parameters = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    out: dict[str, torch.Tensor] = {}
    overflow: list[tuple[str, float]] = []
    flushed = 0
    for key, tensor in state_dict.items():
        if key not in parameters or not tensor.is_floating_point() or tensor.dtype == dtype:
            out[key] = tensor
            continue
        cast = tensor.detach().to(dtype)
        lost = torch.isinf(cast) & torch.isfinite(tensor)
        if bool(lost.any()):
            overflow.append((key, float(tensor[lost].abs().max())))
        flushed += int(((cast == 0) & (tensor != 0)).sum())
        out[key] = cast
    if overflow:
        shown = ", ".join(f"{key} (|x| up to {value:.4g})" for key, value in overflow[:_SHOWN])
        more = f" and {len(overflow) - _SHOWN} more" if len(overflow) > _SHOWN else ""
        raise CheckpointError(
            f"cannot store {where} in {str(dtype).removeprefix('torch.')}: values out of its "
            f"range would become infinite in {shown}{more}; use torch.bfloat16 (float32's "
            "range) or keep float32"
        )
    if flushed:
        logger.warning(
            "%s: %d non-zero parameter values are too small for %s and are stored as zero",
            where,
            flushed,
            dtype,
        )
    return out
