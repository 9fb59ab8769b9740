"""Damaged files: truncated or with flipped bytes, they raise CheckpointError naming the file and
the problem (never a zipfile, pickle or safetensors traceback), and no damage is silent."""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_interpreter.checkpoint import load_checkpoint, load_model, save_model
from video_interpreter.errors import CheckpointError

from .test_checkpoint import tiny_model

Span = tuple[int, int]


class _Files(dict[str, tuple[Path, bytes]]):
    def __repr__(self) -> str:  # hypothesis prints its arguments: not the files' bytes
        return f"<pristine {', '.join(self)}>"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bytes]]:
    folder = tmp_path_factory.mktemp("pristine")
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 4, 16, 16))["action"].sum().backward()
    optimizer.step()
    out = _Files()
    for suffix in (".pth", ".safetensors"):
        saved = save_model(
            model,
            folder / f"tiny{suffix}",
            optimizer=optimizer if suffix == ".pth" else None,
            epoch=2,
            metrics={"acc": 0.5},
            notes="pristine",
        )
        out[suffix] = (saved.path, saved.path.read_bytes())
    return out


def _tensor_spans(path: Path, data: bytes) -> list[Span]:
    """Byte ranges of tensor data (everything else is structure or metadata)."""
    if path.suffix == ".safetensors":
        (length,) = struct.unpack("<Q", data[:8])
        return [(8 + length, len(data))]
    spans = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and not info.filename.endswith(".pkl"):
                name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
                start = info.header_offset + 30 + name_length + extra_length
                spans.append((start, start + info.file_size))
    return spans


def _metadata_span(path: Path, data: bytes) -> Span:
    """The header of a safetensors file; the pickled index (data.pkl) of a .pth."""
    if path.suffix == ".safetensors":
        (length,) = struct.unpack("<Q", data[:8])
        return (0, 8 + length)
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    return (start, start + info.file_size)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _outcome(path: Path, pristine: Any) -> str:
    """What reading a damaged file gives: "error" (CheckpointError), "same" (read identically)
    or "SILENT" (read, but different); any other exception propagates and fails the test."""
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        return "error"
    fields = ("state_dict", "optimizer_state_dict", "scheduler_state_dict", "rng_state")
    same = all(_same(getattr(checkpoint, f), getattr(pristine, f)) for f in fields)
    unrelated = {"path": None, "size_bytes": None}  # where the copy lives, not what it holds
    meta, expected = vars(checkpoint.metadata) | unrelated, vars(pristine.metadata) | unrelated
    return "same" if same and meta == expected else "SILENT"


class _Copy:
    """A copy of a pristine file, damaged and repaired in place: one open for a whole sweep
    (opening files dominates the time of reading a tiny checkpoint)."""

    def __init__(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)
        self.path, self.data = path, data
        self.fd = os.open(path, os.O_RDWR)

    def flipped(self, offset: int, mask: int, pristine: Any) -> str:
        os.pwrite(self.fd, bytes([self.data[offset] ^ mask]), offset)
        try:
            return _outcome(self.path, pristine)
        finally:
            os.pwrite(self.fd, self.data[offset : offset + 1], offset)

    def cut(self, length: int) -> None:
        os.ftruncate(self.fd, length)

    def close(self) -> None:
        os.close(self.fd)


def _cuts(path: Path, data: bytes) -> list[int]:
    """Every offset inside structure and metadata; a stride through tensor data, where every
    cut meets the same check (the file is shorter than its index says)."""
    tensors = _tensor_spans(path, data)
    return [
        cut
        for cut in range(len(data))
        if not any(a <= cut < b for a, b in tensors) or cut % 13 == 0
    ]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_file_cut_at_any_offset_is_reported(
    files: dict[str, tuple[Path, bytes]], suffix: str, tmp_path: Path
) -> None:
    pristine_path, data = files[suffix]
    copy = _Copy(tmp_path / f"cut{suffix}", data)
    survivors = []
    named = set()
    for cut in sorted(_cuts(pristine_path, data), reverse=True):  # shorter and shorter
        copy.cut(cut)
        try:
            load_checkpoint(copy.path)
        except CheckpointError as exc:
            named.add(str(exc).startswith(str(copy.path)))
        else:
            survivors.append(cut)
    copy.close()
    assert survivors == []
    assert named == {True}  # every message starts with the file's name


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_every_flipped_byte_of_the_metadata_is_reported(
    files: dict[str, tuple[Path, bytes]], suffix: str, tmp_path: Path
) -> None:
    pristine_path, data = files[suffix]
    pristine = load_checkpoint(pristine_path)
    copy = _Copy(tmp_path / f"flipped{suffix}", data)
    start, end = _metadata_span(pristine_path, data)
    masks = (0xFF, 0x01, 0x80, 0x20)  # all bits, lowest, highest, ASCII case
    missed = [
        offset
        for offset in range(start, end)
        if copy.flipped(offset, masks[offset % len(masks)], pristine) != "error"
    ]
    copy.close()
    assert missed == []


def test_every_flipped_byte_of_the_pth_archive_structure_is_reported_or_changes_nothing(
    files: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    pristine_path, data = files[".pth"]
    pristine = load_checkpoint(pristine_path)
    copy = _Copy(tmp_path / "flipped.pth", data)
    skip = [*_tensor_spans(pristine_path, data), _metadata_span(pristine_path, data)]
    outcomes: dict[str, list[int]] = {"error": [], "same": [], "SILENT": []}
    for offset in range(len(data)):
        if not any(a <= offset < b for a, b in skip):
            outcomes[copy.flipped(offset, 0xFF, pristine)].append(offset)
    copy.close()
    assert outcomes["SILENT"] == []
    # Bytes no reader uses (zip padding, "version made by", file attributes) may change freely;
    # everything that carries meaning is checked.
    assert len(outcomes["error"]) > len(outcomes["same"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_damage_anywhere_is_reported_or_harmless_and_verify_always_reports_it(
    files: dict[str, tuple[Path, bytes]], tmp_path: Path, data: st.DataObject
) -> None:
    suffix = data.draw(st.sampled_from([".pth", ".safetensors"]))
    pristine_path, pristine_bytes = files[suffix]
    spans = _tensor_spans(pristine_path, pristine_bytes)
    offsets = data.draw(
        st.lists(st.integers(0, len(pristine_bytes) - 1), min_size=1, max_size=4, unique=True)
    )
    damaged = bytearray(pristine_bytes)
    for offset in offsets:
        damaged[offset] ^= data.draw(st.integers(1, 255))
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(damaged)
    outcome = _outcome(path, load_checkpoint(pristine_path))
    if not any(a <= o < b for o in offsets for a, b in spans):
        assert outcome != "SILENT"
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint(path, verify=hashlib.sha256(pristine_bytes).hexdigest())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_flipped_tensor_bytes_are_caught_when_a_sha256_is_checked(
    files: dict[str, tuple[Path, bytes]], suffix: str, tmp_path: Path
) -> None:
    pristine_path, data = files[suffix]
    recorded = hashlib.sha256(data).hexdigest()
    start, end = _tensor_spans(pristine_path, data)[0]
    path = tmp_path / f"flipped{suffix}"
    for offset in (start, (start + end) // 2, end - 1):
        damaged = bytearray(data)
        damaged[offset] ^= 0x40
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError, match=r"sha256 mismatch: expected [0-9a-f]{64}"):
            load_model(path, verify=recorded)
        load_model(path)  # without verify= the default load does not hash: it reads the damage
