"""``consolidate``: a sharded checkpoint directory into one single-file checkpoint of this
package's format (``save_model``), in one process, with no process group needed.

The whole model is rebuilt from the directory's spec and filled chunk by chunk; the optimizer's
state (keyed by parameter name in the directory) is renumbered into ``torch.optim``'s own
layout, so ``resume(model, path, optimizer)`` continues training in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._deprecation import reject_unknown, renamed_option
from ..checkpoint import SavedCheckpoint, save_model
from ..checkpoint._remote import is_url
from ..errors import CheckpointError
from ..model import allocate, build_meta
from ._load import check_keys
from ._manifest import read_manifest
from ._ranks import Ranks
from ._remote import downloaded_checkpoint
from ._rng import rng_prefix, rng_state_as
from ._state import join_state, tensor_keys
from ._storage import empty_like_stored, read_index, read_tensors, verify_files

__all__ = ["consolidate"]

logger = logging.getLogger(__name__)


class _SavedState:
    """A state that ``save_model`` takes in place of an optimizer or scheduler."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> Any:
        return self._state

    def load_state_dict(self, state_dict: Any, /) -> None:
        raise NotImplementedError("a consolidated state is read-only")


def _numbered(state: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """A name-keyed optimizer state (``get_optimizer_state_dict``'s) in ``torch.optim``'s own
    layout: parameters numbered in the order the parameter groups list them."""
    number: dict[str, int] = {}
    groups = []
    for group in state["param_groups"]:
        params = [number.setdefault(name, len(number)) for name in group["params"]]
        groups.append({**group, "params": params})
    unknown = sorted(set(state["state"]) - set(number))
    if unknown:
        raise CheckpointError(
            f"{where}: optimizer state for parameters no parameter group lists: {unknown[:8]}"
        )
    return {
        "state": {number[name]: value for name, value in state["state"].items()},
        "param_groups": groups,
    }


def consolidate(
    directory: str | Path,
    out_path: str | Path,
    *,
    training_state: bool = True,
    check_digests: bool = True,
    notes: str | None = None,
    **deprecated_options: Any,
) -> SavedCheckpoint:
    """Write the sharded checkpoint ``directory`` as one checkpoint file ``out_path``
    (``.pth`` or ``.safetensors``, atomically, hashed) that ``load_model`` opens.

    Into a ``.pth`` go, with ``training_state``, the optimizer and scheduler states and rank 0's
    random generator states; a ``.safetensors`` file holds the weights only. ``notes``
    default to the directory's. Holds the whole model (and optimizer state) in memory once.
    ``check_digests`` checks the directory's recorded sha256s first (``verify=``, its name
    before 0.2, still works with a ``DeprecationWarning``). ``directory`` may be an fsspec URL
    (read from a temporary local copy).

    Examples:
        >>> from video_interpreter import build_model, load_model
        >>> from video_interpreter.distributed import consolidate, save_sharded
        >>> _ = save_sharded(build_model("tiny_r2plus1d"), "run/last", epoch=5)
        >>> saved = consolidate("run/last", "model.pth")
        >>> load_model("model.pth", verify=saved.sha256).spec.name
        'tiny_r2plus1d'
    """
    check_digests = renamed_option(
        deprecated_options, "verify", "check_digests", check_digests, True, "consolidate"
    )
    reject_unknown(deprecated_options, "consolidate")
    if is_url(directory):
        with downloaded_checkpoint(str(directory)) as local:
            return consolidate(
                local,
                out_path,
                training_state=training_state,
                check_digests=check_digests,
                notes=notes,
            )
    ranks = Ranks.alone()  # one process, even inside a distributed job
    metadata, manifest = read_manifest(directory)
    root = metadata.path
    out = Path(out_path)
    state = manifest["state"]
    full = training_state and out.suffix.lower() in (".pth", ".pt")

    model = allocate(build_meta(metadata.spec), "cpu")
    model_tensors = {f"model/{key}": tensor for key, tensor in model.state_dict().items()}
    check_keys("model", tensor_keys(state["model"]), list(model_tensors), root)
    index = read_index(root)
    targets: dict[str, torch.Tensor] = dict(model_tensors)
    extra = [
        key
        for name in ("optimizer", "scheduler")
        if full and state[name] is not None
        for key in tensor_keys(state[name])
    ]
    if full and metadata.has_rng_state:
        extra += [k for k in index.state_dict_metadata if k.startswith(rng_prefix(0))]
    targets.update({key: empty_like_stored(index, key) for key in extra})
    if check_digests:
        verify_files(root, metadata.files, ranks)
    read_tensors(root, targets, index, ranks)

    optimizer = scheduler = None
    if full and state["optimizer"] is not None:
        optimizer = _SavedState(_numbered(join_state(state["optimizer"], targets), root))
    if full and state["scheduler"] is not None:
        scheduler = _SavedState(join_state(state["scheduler"], targets))
    options: dict[str, Any] = {
        "optimizer": optimizer,
        "scheduler": scheduler,
        "epoch": metadata.epoch,
        "step": metadata.step,
        "loss": metadata.loss,
        "metrics": metadata.metrics,
        "notes": notes if notes is not None else metadata.notes,
    }
    if full and any(key.startswith(rng_prefix(0)) for key in targets):
        # save_model records this process's generator states; make them rank 0's for the
        # moment, so resuming from the file continues rank 0's random streams.
        with rng_state_as(targets, 0, str(root)):
            saved = save_model(model, out, **options)
    else:
        saved = save_model(model, out, **options)
    logger.info("consolidated %s (%d ranks) into %s", root, metadata.world_size, out)
    return saved
