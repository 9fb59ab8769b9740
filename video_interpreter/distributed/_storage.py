"""Reading and writing tensor chunks with torch.distributed.checkpoint, safely.

torch.distributed.checkpoint reads its index file (``.metadata``) with ``pickle.load``, which
can run code, and unpickles any non-tensor value it stored. Here the index is read with an
unpickler that only builds the index's own classes, no non-tensor value is ever stored (see
``_state``), and a request to unpickle one is refused. Tensor chunks are read by torch with
``weights_only=True``.
"""

from __future__ import annotations

import io
import logging
import pickle
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, DefaultSavePlanner
from torch.distributed.checkpoint.filesystem import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta, TensorStorageMetadata
from torch.distributed.checkpoint.planner import ReadItem
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from ..checkpoint import sha256_file
from ..errors import CheckpointError
from ._ranks import Ranks

__all__ = [
    "INDEX_FILE",
    "empty_like_stored",
    "hash_files",
    "read_index",
    "read_tensors",
    "verify_files",
    "write_tensors",
]

logger = logging.getLogger(__name__)

INDEX_FILE = ".metadata"

_INDEX_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name)
    for name in (
        "Metadata",
        "MetadataIndex",
        "ChunkStorageMetadata",
        "TensorProperties",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "StorageMeta",
        "_MEM_FORMAT_ENCODING",
    )
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("collections", "OrderedDict"),
    *(
        (module, name)
        for module in ("pathlib", "pathlib._local")
        for name in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")
    ),
}


class _IndexUnpickler(pickle.Unpickler):
    """Builds torch.distributed.checkpoint's index classes, torch dtypes and paths; nothing
    else (no function, no other class), so a crafted index cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _INDEX_CLASSES:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(
            f"refusing {module}.{name}: not part of a torch.distributed.checkpoint index"
        )


class _SafeReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        return read_index(Path(str(self.path)), self.load_id, kwargs.get("rank"))


def read_index(directory: Path, load_id: str | None = None, rank: int | None = None) -> Metadata:
    """torch.distributed.checkpoint's index of the tensors in ``directory``, read safely."""
    path = directory / (INDEX_FILE if rank is None else f"__{rank}{INDEX_FILE}")
    try:
        with open(path, "rb") as handle:
            index = _IndexUnpickler(handle).load()
    except FileNotFoundError:
        raise CheckpointError(
            f"{directory} has no {INDEX_FILE}: the tensors' index is missing"
        ) from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(index, Metadata):
        raise CheckpointError(f"{path} is not a torch.distributed.checkpoint index")
    storage = index.storage_meta if index.storage_meta is not None else StorageMeta()
    storage.load_id = load_id
    index.storage_meta = storage
    return index


class _TensorsOnlyPlanner(DefaultLoadPlanner):
    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        raise CheckpointError(
            f"the checkpoint stores {read_item.dest_index.fqn!r} as a pickled object; "
            "refusing to unpickle it (this format stores tensors only)"
        )


@contextmanager
def _quiet_single_process(ranks: Ranks) -> Iterator[None]:
    # torch warns that it assumes one process: that is what `no_dist` says already.
    with warnings.catch_warnings():
        if not ranks.distributed:
            warnings.filterwarnings("ignore", message=r"torch\.distributed is disabled")
        yield


def write_tensors(tensors: Mapping[str, torch.Tensor], directory: Path, ranks: Ranks) -> list[str]:
    """Every rank writes its tensors (shards, and replicated tensors once, from the lowest rank
    holding them) into ``directory``; returns the names of every file written (all ranks)."""
    with _quiet_single_process(ranks):
        index = dcp_save(
            dict(tensors),
            storage_writer=FileSystemWriter(directory, sync_files=True),
            # Replicated tensors (whole buffers such as BatchNorm statistics) come from the
            # lowest rank holding them, so the checkpoint holds rank 0's, deterministically.
            planner=DefaultSavePlanner(flatten_state_dict=False, dedup_save_to_lowest_rank=True),
            no_dist=not ranks.distributed,
        )
    if index.storage_data is None:  # torch 2.10 and 2.11 return the index without it
        index = read_index(directory)
    return sorted({info.relative_path for info in index.storage_data.values()} | {INDEX_FILE})


def hash_files(directory: Path, names: Sequence[str], ranks: Ranks) -> dict[str, str]:
    """sha256 of each named file, the work shared among the ranks; the result on every rank."""
    mine: dict[str, str] = {}
    problems: list[str] = []
    for name in names[ranks.rank :: ranks.world_size]:
        try:
            mine[name] = sha256_file(directory / name)
        except CheckpointError as exc:
            problems.append(str(exc))
    ranks.agree(problems)
    return {name: digest for part in ranks.gather(mine) for name, digest in part.items()}


def verify_files(directory: Path, expected: Mapping[str, str], ranks: Ranks) -> None:
    """Check every recorded file's sha256 (the reading shared among the ranks)."""
    problems: list[str] = []
    names = sorted(expected)
    for name in names[ranks.rank :: ranks.world_size]:
        path = directory / name
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        try:
            digest = sha256_file(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if digest != expected[name]:
            problems.append(
                f"{path} has sha256 {digest[:12]}, recorded {expected[name][:12]}: the file is "
                "corrupt or was replaced"
            )
    ranks.agree(problems)


def _global_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)  # a DTensor's shape is the whole tensor's


def read_tensors(
    directory: Path, targets: Mapping[str, torch.Tensor], index: Metadata, ranks: Ranks
) -> None:
    """Fill ``targets`` (whole tensors or this rank's shards) in place from ``directory``."""
    problems: list[str] = []
    for key, tensor in targets.items():
        stored = index.state_dict_metadata.get(key)
        if not isinstance(stored, TensorStorageMetadata):
            problems.append(f"{key} is not stored as a tensor in {directory}")
        elif tuple(stored.size) != _global_shape(tensor):
            problems.append(
                f"{key}: checkpoint shape {tuple(stored.size)}, model {_global_shape(tensor)}"
            )
    if problems:
        raise CheckpointError(f"{directory} does not fit: " + "; ".join(problems[:10]))
    with _quiet_single_process(ranks):
        dcp_load(
            dict(targets),
            storage_reader=_SafeReader(directory),
            planner=_TensorsOnlyPlanner(flatten_state_dict=False),
            no_dist=not ranks.distributed,
        )


def empty_like_stored(
    index: Metadata, key: str, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """An uninitialised whole tensor with the stored shape and dtype of ``key``."""
    stored = index.state_dict_metadata[key]
    if not isinstance(stored, TensorStorageMetadata):
        raise CheckpointError(f"{key} is not stored as a tensor")
    return torch.empty(tuple(stored.size), dtype=stored.properties.dtype, device=device)
