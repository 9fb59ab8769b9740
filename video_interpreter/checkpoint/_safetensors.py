"""The ``.safetensors`` side: a validated header reader, a streaming writer, an mmap reader.

The header (8-byte length, then JSON) is parsed and checked here before the ``safetensors``
library maps the tensors, so metadata can be read without touching tensor data and a damaged
header is reported by name. The writer streams each tensor's bytes into the (hashing) sink, so
saving never holds a second copy of the weights in memory.
"""

from __future__ import annotations

import ctypes
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ._atomic import HashingWriter
from ._format import content_digest

__all__ = [
    "ALIGNMENT",
    "SafetensorsHeader",
    "TensorEntry",
    "header_digest",
    "read_header",
    "read_tensors",
    "write_safetensors",
]

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}
_ITEMSIZE: dict[str, int] = {code: dtype.itemsize for dtype, code in _DTYPES.items()}
_ITEMSIZE.update({"U16": 2, "U32": 4, "U64": 8, "C64": 8})
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
# torch's CPU allocator aligns memory to 64 bytes and some kernels take faster (and differently
# rounded) paths on such memory, so a mapped tensor must be as aligned as an allocated one for
# a loaded model to give bit-identical outputs.
ALIGNMENT = 64
_METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SafetensorsHeader:
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_start: int


def header_digest(metadata: Mapping[str, Any], tensors: Mapping[str, TensorEntry]) -> str:
    """The digest of decoded metadata values and the tensor table (names, dtypes, shapes,
    offsets): a flipped byte anywhere in the header changes it."""
    table = {name: [e.dtype, list(e.shape), e.start, e.end] for name, e in tensors.items()}
    return content_digest({"metadata": dict(metadata), "tensors": table})


def _corrupt(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: corrupt .safetensors file: {what}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_header(path: Path) -> SafetensorsHeader:
    """Parse and validate the header; reads only the header's bytes."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise _corrupt(path, f"{size} bytes, shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(_MAX_HEADER, size - 8):
                raise _corrupt(
                    path,
                    f"header length {length} exceeds the file ({size} bytes): truncated or damaged",
                )
            raw = handle.read(length)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, f"the JSON header does not parse ({exc})") from exc
    except RecursionError as exc:  # json's parser on arrays or objects nested thousands deep
        raise _corrupt(path, "the JSON header is nested too deeply to be a header") from exc
    if not isinstance(header, dict):
        raise _corrupt(path, "the header is not a JSON object")
    metadata = header.pop(_METADATA_KEY, None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _corrupt(path, "__metadata__ must map names to strings")
    data_start = 8 + length
    tensors = {name: _entry(path, name, value) for name, value in header.items()}
    position = 0
    for name, entry in sorted(tensors.items(), key=lambda item: item[1].start):
        if entry.start != position:
            raise _corrupt(path, f"tensor {name!r} starts at {entry.start}, expected {position}")
        position = entry.end
    if data_start + position != size:
        raise _corrupt(
            path,
            f"the header describes {data_start + position} bytes, the file has {size}: "
            "truncated or damaged",
        )
    return SafetensorsHeader(metadata, tensors, data_start)


def _entry(path: Path, name: str, value: Any) -> TensorEntry:
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise _corrupt(path, f"tensor {name!r} has a malformed entry")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype not in _ITEMSIZE:
        raise _corrupt(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    valid_shape = isinstance(shape, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    )
    valid_offsets = (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
        and 0 <= offsets[0] <= offsets[1]
    )
    if not valid_shape or not valid_offsets:
        raise _corrupt(path, f"tensor {name!r} has a malformed shape or data_offsets")
    entry = TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
    if entry.nbytes != math.prod(entry.shape) * _ITEMSIZE[dtype]:
        raise _corrupt(
            path,
            f"tensor {name!r}: {entry.nbytes} bytes do not hold shape {list(shape)} of {dtype}",
        )
    return entry


def read_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor, memory-mapped (on CPU) by the safetensors library. A tensor the file does
    not place at a 64-byte boundary (a size not a multiple of 64 bytes, or a file written
    elsewhere) is copied into aligned memory, so the model computes exactly as the saved one
    did; files ``write_safetensors`` writes need that only for such small tensors."""
    from safetensors import safe_open  # the one place the library is used for reading

    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # SafetensorError and torch errors: all mean a damaged file here
        raise _corrupt(path, str(exc)) from exc
    for name, tensor in tensors.items():
        if tensor.device.type == "cpu" and tensor.data_ptr() % ALIGNMENT:
            tensors[name] = tensor.clone()
    return tensors


def write_safetensors(
    sink: HashingWriter, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """Stream a safetensors file: header (``metadata`` values as JSON strings, plus their
    digest), padded with spaces so the data starts at a multiple of 64 bytes, then each
    tensor's bytes: first those whose size is a multiple of 64 bytes (so each of them starts
    64-byte aligned in the file, and in memory when mapped), then the others, largest items
    first so every tensor starts at a multiple of its item size."""

    def order(item: tuple[str, torch.Tensor]) -> tuple[bool, int, str]:
        name, tensor = item
        nbytes = tensor.numel() * tensor.element_size()
        return (nbytes % ALIGNMENT != 0, -tensor.element_size(), name)

    ordered = sorted(tensors.items(), key=order)
    entries: dict[str, TensorEntry] = {}
    offset = 0
    for name, tensor in ordered:
        code = _DTYPES.get(tensor.dtype)
        if code is None:
            known = ", ".join(str(d).removeprefix("torch.") for d in _DTYPES)
            raise CheckpointError(
                f"tensor {name!r} has dtype {tensor.dtype}, which .safetensors cannot hold "
                f"(it holds {known}); save to .pth instead"
            )
        size = tensor.numel() * tensor.element_size()
        entries[name] = TensorEntry(code, tuple(tensor.shape), offset, offset + size)
        offset += size
    encoded = {key: json.dumps(value) for key, value in metadata.items()}
    encoded["digest"] = json.dumps(header_digest(metadata, entries))
    header: dict[str, Any] = {_METADATA_KEY: encoded}
    for name, entry in entries.items():
        header[name] = {
            "dtype": entry.dtype,
            "shape": list(entry.shape),
            "data_offsets": [entry.start, entry.end],
        }
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % ALIGNMENT)  # the data starts 64-byte aligned
    sink.write(struct.pack("<Q", len(text)))
    sink.write(text)
    for _, tensor in ordered:
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        if flat.numel():
            data = flat.view(torch.uint8)  # written in place through a ctypes view: no numpy
            sink.write(memoryview((ctypes.c_ubyte * data.numel()).from_address(data.data_ptr())))
