"""The checkpoint format: field names, what a field may hold, the metadata digest, RNG states.

A ``.pth`` checkpoint is one dict of tensors and plain values (so ``torch.load(...,
weights_only=True)`` always opens it); a ``.safetensors`` checkpoint keeps the same metadata
fields as JSON strings in its header. Both carry a ``digest``: the sha256 of every metadata
value and every tensor's dtype and shape, so a flipped byte in the metadata is found on load
without reading a single weight.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import numbers
import random
import sys
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import cache
from typing import Any

import torch

from ..errors import CheckpointError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_NESTING",
    "METADATA_FIELDS",
    "capture_rng_state",
    "check_plain",
    "checked_fields",
    "checked_monitor",
    "content_digest",
    "describe_tensor",
    "now_utc",
    "package_version",
    "restore_rng_state",
]

FORMAT_NAME = "video_interpreter.checkpoint"
# Bumped when a reader of an older version could misread a newer file.
FORMAT_VERSION = 1

# Metadata fields in the order they are written (both formats).
METADATA_FIELDS = (
    "format",
    "format_version",
    "name",
    "version",
    "fingerprint",
    "spec",
    "created",
    "package_version",
    "torch_version",
    "epoch",
    "step",
    "loss",
    "metrics",
    "notes",
    "monitor",
    "precision",
    "quantization",
)
MONITOR_MODES = ("max", "min")

_PLAIN_SCALARS = (str, int, float, bool, type(None))
# Deeper than any spec, optimizer or scheduler state (about 10 levels): a file nested deeper is
# damaged or hostile, and walking it recursively would overflow Python's stack.
MAX_NESTING = 100


def _too_deep(where: str) -> CheckpointError:
    return CheckpointError(
        f"{where} is nested more than {MAX_NESTING} levels deep; a checkpoint holds plain "
        "values nested a few levels (the file is damaged or was not written by this package)"
    )


@cache
def package_version() -> str:
    try:
        return importlib.metadata.version("video-interpreter")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` or JSON could not read back.

    Allowed: tensors, str, int, float, bool, None, and lists, tuples and dicts (str or int
    keys) of these.
    """
    # Exact types: a subclass (an IntEnum, torch's TorchVersion str) pickles as its class,
    # which weights_only loading refuses.
    if type(value) in _PLAIN_SCALARS or type(value) is torch.Tensor:
        return
    if depth > MAX_NESTING:
        raise _too_deep(where)
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]", depth + 1)
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise CheckpointError(
                    f"{where} has a key {key!r} of type {type(key).__name__}; checkpoint "
                    "dicts may only have str or int keys"
                )
            check_plain(item, f"{where}[{key!r}]", depth + 1)
        return
    raise CheckpointError(
        f"{where} holds a {type(value).__module__}.{type(value).__qualname__} "
        f"({_short(value)}); a checkpoint keeps only tensors and plain values (str, int, float, "
        "bool, None, lists and dicts of them) so it can be opened without running code; "
        "convert the value or leave it out"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_tensor(tensor: torch.Tensor) -> list[Any]:
    """What the digest records of a tensor: layout only, never its values."""
    return [
        "tensor",
        str(tensor.dtype).removeprefix("torch."),
        list(tensor.shape),
        list(tensor.stride()),
        tensor.storage_offset(),
        tensor.untyped_storage().nbytes(),
    ]


def _describe(value: Any, depth: int = 0) -> Any:
    """A JSON-ready, order-independent description of a value (tensors by layout)."""
    if isinstance(value, torch.Tensor):
        return describe_tensor(value)
    if isinstance(value, Mapping | list | tuple) and depth > MAX_NESTING:
        raise _too_deep("the checkpoint's content")
    if isinstance(value, Mapping):
        items = sorted(
            ((repr(k), _describe(v, depth + 1)) for k, v in value.items()), key=lambda kv: kv[0]
        )
        return ["dict", items]
    if isinstance(value, list | tuple):
        return ["list", [_describe(v, depth + 1) for v in value]]
    if isinstance(value, float) and not math.isfinite(value):
        return ["float", repr(value)]
    return value


def content_digest(content: Mapping[str, Any]) -> str:
    """sha256 of a checkpoint's metadata and tensor layouts (not tensor values)."""
    text = json.dumps(_describe(content), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# -- RNG states (resume continues bit-identically) ------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """torch CPU, Python ``random``, NumPy (when the program has imported it) and CUDA (when in
    use) states.

    The Mersenne-Twister words are stored as int64 tensors: as pickled ints they would make
    the weights-only unpickler the slowest part of reading a checkpoint.
    """
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal), "gauss": gauss},
        "numpy": None,
        "cuda": None,
    }
    numpy = sys.modules.get("numpy")  # a program that never imported it draws nothing from it
    if numpy is not None:
        kind, keys, pos, has_gauss, cached = numpy.random.get_state(legacy=True)
        state["numpy"] = {
            "kind": str(kind),
            "keys": torch.from_numpy(numpy.asarray(keys, dtype=numpy.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    # Only when CUDA is already in use: asking would otherwise start a CUDA context.
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any], where: str) -> None:
    """Set every RNG ``capture_rng_state`` recorded back to the recorded state."""
    try:
        torch.set_rng_state(state["torch"].cpu())
        python = state["python"]
        internal = tuple(int(word) for word in python["state"].tolist())
        random.setstate((python["version"], internal, python["gauss"]))
        saved = state.get("numpy")
        numpy = sys.modules.get("numpy")
        if saved is not None and numpy is not None:
            keys = saved["keys"].cpu().numpy().astype(numpy.uint32)
            numpy.random.set_state(
                (saved["kind"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"])
            )
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available():
            if len(cuda) != torch.cuda.device_count():
                raise CheckpointError(
                    f"{where}: saved CUDA RNG states for {len(cuda)} devices, this process sees "
                    f"{torch.cuda.device_count()}; resume on as many devices or pass "
                    "restore_rng=False"
                )
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: the saved RNG state cannot be restored: {exc}") from exc


def _plain_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise CheckpointError(f"{name} must be an integer, got {type(value).__name__} {value!r}")


def _plain_number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise CheckpointError(f"{name} must be a number, got {type(value).__name__} {value!r}")


def checked_monitor(monitor: Any, where: str) -> dict[str, str] | None:
    """``(metric, mode)`` (or ``{"metric": ..., "mode": ...}`` as read back) as the plain dict a
    checkpoint records; None stays None."""
    if monitor is None:
        return None
    if isinstance(monitor, Mapping) and set(monitor) == {"metric", "mode"}:
        metric, mode = monitor["metric"], monitor["mode"]
    elif isinstance(monitor, list | tuple) and len(monitor) == 2:
        metric, mode = monitor
    else:
        raise CheckpointError(
            f"{where}: monitor must be (metric, mode), e.g. ('acc', 'max'), got {monitor!r:.80}"
        )
    if not isinstance(metric, str) or not metric or mode not in MONITOR_MODES:
        raise CheckpointError(
            f"{where}: monitor must be (metric, mode) with a metric name and mode 'max' or "
            f"'min', got ({metric!r:.40}, {mode!r:.20})"
        )
    return {"metric": metric, "mode": mode}


def checked_fields(
    *,
    epoch: Any,
    step: Any,
    loss: Any,
    metrics: Mapping[str, Any] | None,
    notes: Any,
    monitor: Any = None,
) -> dict[str, Any]:
    """The caller's plain fields, checked and converted to JSON-ready values."""
    plain_metrics: dict[str, Any] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str):
            raise CheckpointError(f"metric names must be strings, got {key!r}")
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or value is None:
            plain_metrics[key] = value
        elif isinstance(value, numbers.Integral):
            plain_metrics[key] = int(value)
        elif isinstance(value, numbers.Real):
            plain_metrics[key] = float(value)
        elif isinstance(value, str):
            plain_metrics[key] = str(value)
        else:
            raise CheckpointError(
                f"metric {key!r} is a {type(value).__name__}; metrics hold numbers, strings, "
                "booleans or None"
            )
    if notes is not None and not isinstance(notes, str):
        raise CheckpointError(f"notes must be a string, got {type(notes).__name__}")
    out: dict[str, Any] = {
        "epoch": _plain_int(epoch, "epoch"),
        "step": _plain_int(step, "step"),
        "loss": _plain_number(loss, "loss"),
        "metrics": plain_metrics,
        "notes": notes,
    }
    if monitor is not None:  # only written when given: files without it stay as they were
        out["monitor"] = checked_monitor(monitor, "monitor")
    return out
