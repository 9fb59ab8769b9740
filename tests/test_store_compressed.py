"""``ModelStore.save(..., compressed=...)``: a compressed copy of the best model beside the
store's files, following the best, marked in the registry table, the same for a directory and
an s3:// root."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from video_interpreter.checkpoint import load_model, read_metadata
from video_interpreter.compress import load_quantized, quantization_scheme, quantize
from video_interpreter.errors import CompressionError, StoreError
from video_interpreter.model import VideoInterpreter
from video_interpreter.store import (
    COMPRESSED_DIR,
    CompressedCopy,
    ModelStore,
    RemoteModelStore,
)

from .test_store import Files, files_in, tiny_model

BF16 = "video_interpreter_v1_acc_0.9.bf16.safetensors"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    """A directory store and an s3:// store (a local S3 server), as in ``test_store``."""
    if request.param == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        return ModelStore(f"{bucket}/saved_models")
    return ModelStore(tmp_path / "saved_models")


def clips() -> torch.Tensor:
    torch.manual_seed(123)
    return torch.randn(2, 3, 4, 16, 16)


def logits(model: VideoInterpreter) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out: dict[str, torch.Tensor] = model(clips())
    return out


def fetched(store: ModelStore, copy: CompressedCopy, tmp_path: Path) -> Path:
    """A local file holding the copy's bytes (downloaded from a bucket)."""
    if isinstance(store, RemoteModelStore):
        local = tmp_path / copy.file
        store.fs.get_file(copy.location.removeprefix("s3://"), str(local))
        return local
    return Path(copy.location)


def copies(store: ModelStore) -> list[tuple[str, str, str]]:
    return [(c.file, c.source, c.scheme) for c in store.compressed_copies()]


def test_a_best_save_keeps_a_bf16_copy_that_loads_close_to_the_model(
    store: ModelStore, tmp_path: Path
) -> None:
    model = tiny_model()
    entry = store.save(model, metrics={"acc": 0.9}, epoch=2, compressed="bf16")
    assert copies(store) == [(BF16, entry.file, "bf16")]
    (copy,) = store.compressed_copies()
    assert Files(store).exists(f"{COMPRESSED_DIR}/{BF16}")
    local = fetched(store, copy, tmp_path)
    assert copy.size_bytes == local.stat().st_size < entry.size_bytes
    meta = read_metadata(local)  # self-describing: precision and training state recorded
    assert (meta.name, meta.epoch, meta.metrics) == ("video_interpreter", 2, {"acc": 0.9})
    restored = load_model(local, dtype=torch.float32)
    torch.testing.assert_close(logits(restored), logits(model), atol=1e-2, rtol=0)
    assert files_in(store) == sorted([entry.file, "video_interpreter_v1_best.pth"])
    assert store.verify() == []  # compressed/ sits beside the store's files, not among them


def test_an_int8_copy_loads_with_load_quantized(store: ModelStore, tmp_path: Path) -> None:
    model = tiny_model()
    entry = store.save(model, metrics={"acc": 0.9}, compressed="int8_weight_only")
    (copy,) = store.compressed_copies()
    assert (copy.source, copy.scheme) == (entry.file, "int8_weight_only")
    restored = load_quantized(fetched(store, copy, tmp_path))
    assert quantization_scheme(restored) == "int8_weight_only"
    # the copy is the quantised model itself: bit for bit what quantize makes of the saved one
    torch.testing.assert_close(
        logits(restored), logits(quantize(model, "int8_weight_only")), atol=0, rtol=0
    )
    assert store.verify() == []


def test_the_copy_follows_the_best(store: ModelStore) -> None:
    store.save(tiny_model(0), metrics={"acc": 0.9}, compressed="bf16")
    worse = store.save(tiny_model(1), metrics={"acc": 0.5}, compressed="bf16")
    assert not worse.is_best
    assert copies(store) == [(BF16, "video_interpreter_v1_acc_0.9.pth", "bf16")]  # left as is
    better = store.save(tiny_model(2), metrics={"acc": 0.95}, compressed="fp16")
    assert better.is_best
    assert copies(store) == [
        ("video_interpreter_v1_acc_0.95.fp16.safetensors", better.file, "fp16")
    ]  # replaced, not added
    assert store.verify() == []


def test_the_table_marks_the_best_row_with_its_copy(store: ModelStore) -> None:
    store.save(tiny_model(0), metrics={"acc": 0.5})
    store.save(tiny_model(1), metrics={"acc": 0.9}, compressed="bf16")
    rows = store.render_table().splitlines()[2:]
    assert len(rows) == 2
    assert "compressed" not in rows[0]
    (copy,) = store.compressed_copies()
    assert 1e3 <= copy.size_bytes < 1e6  # a tiny model: its size is written in kB
    assert f"**best** (acc 0.9); compressed bf16, {copy.size_bytes / 1e3:.1f} kB" in rows[1]


def test_a_copy_of_a_model_that_is_no_longer_the_best_is_reported(store: ModelStore) -> None:
    store.save(tiny_model(0), metrics={"acc": 0.9}, compressed="bf16")
    store.save(tiny_model(1), metrics={"acc": 0.5})
    store.set_monitor("video_interpreter", "v1", metric="acc", mode="min")  # best changes
    problems = store.verify()
    assert [(p.kind, p.file) for p in problems] == [("best", f"{COMPRESSED_DIR}/{BF16}")]
    assert "not the best model" in problems[0].message
    assert "compressed" not in store.render_table()  # only a best row is marked


@pytest.mark.parametrize("scheme", ["int4", "bfloat16", ""])
def test_an_unknown_scheme_is_refused_before_anything_is_written(
    store: ModelStore, scheme: str
) -> None:
    with pytest.raises(StoreError, match=r"valid: 'bf16', 'fp16', 'int8_weight_only', 'int8_"):
        store.save(tiny_model(), metrics={"acc": 0.9}, compressed=scheme)
    assert files_in(store) == []
    assert store.list() == []


def test_int8_without_torchao_is_refused_before_anything_is_written(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao now raises ImportError
    with pytest.raises(CompressionError, match=r"needs torchao, which is not installed: pip"):
        store.save(tiny_model(), metrics={"acc": 0.9}, compressed="int8_dynamic")
    assert files_in(store) == []
