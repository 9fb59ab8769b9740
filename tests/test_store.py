"""The saved-models store: saving, best tracking, retention, registry, README table, verify and
sync, on the real file system and the real SQLite registry, with tiny models."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch

from video_interpreter.errors import CheckpointError, StoreError
from video_interpreter.model import VideoInterpreter, build_model
from video_interpreter.store import (
    END_MARKER,
    MANIFEST_DIR,
    REGISTRY_FILE,
    START_MARKER,
    Entry,
    ModelStore,
    RemoteModelStore,
    render_table,
)

from .conftest import tiny_spec

# The shared tiny spec, named like v1 so file names read as in the docs.
TINY: dict[str, Any] = tiny_spec(
    name="video_interpreter", version="v1", out_channels=4, bias=True, num_classes=3
)


def tiny_model(seed: int = 0, **changes: Any) -> VideoInterpreter:
    torch.manual_seed(seed)
    return build_model({**TINY, **changes})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    """The behaviour suite runs against a directory and against an s3:// root (a local S3
    server): one interface, two commit protocols."""
    if request.param == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        return ModelStore(f"{bucket}/saved_models")
    return ModelStore(tmp_path / "saved_models")


@pytest.fixture
def local_store(tmp_path: Path) -> ModelStore:
    """For what only a directory store has: SQLite, temporary files, relative paths."""
    return ModelStore(tmp_path / "saved_models")


def sibling(store: ModelStore, name: str) -> ModelStore:
    """Another store beside ``store`` (same kind)."""
    if isinstance(store, RemoteModelStore):
        return ModelStore(f"{store.url.rsplit('/', 1)[0]}/{name}")
    return ModelStore(store.root.parent / name)


class Files:
    """The bytes in a store's root, the same way for a directory and a bucket."""

    def __init__(self, store: ModelStore) -> None:
        self.remote = store if isinstance(store, RemoteModelStore) else None
        self.root = store.root

    def _key(self, file: str) -> str:
        return f"{self.root.as_posix()}/{file}"

    def read(self, file: str) -> bytes:
        if self.remote is not None:
            return bytes(self.remote.fs.cat_file(self._key(file)))
        return (self.root / file).read_bytes()

    def write(self, file: str, data: bytes) -> None:
        if self.remote is not None:
            self.remote.fs.pipe_file(self._key(file), data)
        else:
            (self.root / file).write_bytes(data)

    def remove(self, file: str) -> None:
        if self.remote is not None:
            self.remote.fs.rm_file(self._key(file))
        else:
            (self.root / file).unlink()

    def exists(self, file: str) -> bool:
        if self.remote is not None:
            self.remote.fs.invalidate_cache()
            return bool(self.remote.fs.exists(self._key(file)))
        return (self.root / file).is_file()

    def sha256(self, file: str) -> str:
        return hashlib.sha256(self.read(file)).hexdigest()

    def names(self) -> list[str]:
        if self.remote is not None:
            self.remote.fs.invalidate_cache()
            try:
                found = self.remote.fs.ls(self.root.as_posix(), detail=False)
            except FileNotFoundError:  # an object store has no empty folders
                return []
            return sorted(str(p).rsplit("/", 1)[-1] for p in found)
        return sorted(p.name for p in self.root.iterdir())


def files_in(store: ModelStore) -> list[str]:
    return [name for name in Files(store).names() if name.endswith(".pth")]


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_stored_byte(files: Files, file: str) -> None:
    data = bytearray(files.read(file))
    data[len(data) // 2] ^= 0xFF
    files.write(file, bytes(data))


# -- saving and naming ------------------------------------------------------------------------
def test_save_writes_the_conventional_name_and_records_every_field(store: ModelStore) -> None:
    model = tiny_model()
    entry = store.save(model, metrics={"acc": 0.95, "loss": 0.2}, epoch=3, notes="first run")
    files = Files(store)
    assert entry.path == store.root / "video_interpreter_v1_acc_0.95.pth"
    assert files.exists(entry.file)
    assert (entry.kind, entry.name, entry.version) == ("model", "video_interpreter", "v1")
    assert (entry.metric, entry.value, entry.epoch) == ("acc", 0.95, 3)
    assert dict(entry.metrics) == {"acc": 0.95, "loss": 0.2}
    assert entry.sha256 == files.sha256(entry.file)
    assert entry.size_bytes == len(files.read(entry.file))
    assert entry.fingerprint == model.spec.fingerprint
    assert entry.notes == "first run"
    assert entry.date == entry.created[:10]
    assert store.list() == [entry]


def test_the_registry_is_sqlite_next_to_the_files(local_store: ModelStore) -> None:
    store = local_store
    store.save(tiny_model(), metrics={"acc": 0.5})
    with sqlite3.connect(store.root / REGISTRY_FILE) as conn:
        rows = conn.execute("SELECT file, metric, value FROM entries").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == [("video_interpreter_v1_acc_0.5.pth", "acc", 0.5)]
    assert mode == "wal"


def test_the_same_name_twice_keeps_both_files(store: ModelStore) -> None:
    first = store.save(tiny_model(0), metrics={"acc": 0.9})
    second = store.save(tiny_model(1), metrics={"acc": 0.9})
    assert (first.file, second.file) == (
        "video_interpreter_v1_acc_0.9.pth",
        "video_interpreter_v1_acc_0.9-2.pth",
    )
    assert first.sha256 != second.sha256
    assert store.get(first.file).sha256 == Files(store).sha256(first.file)


def test_the_same_name_with_on_conflict_error_is_refused(store: ModelStore) -> None:
    store.save(tiny_model(), metrics={"acc": 0.9})
    with pytest.raises(StoreError, match=r"acc_0\.9\.pth already exists; save with on_conflict"):
        store.save(tiny_model(), metrics={"acc": 0.9}, on_conflict="error")
    assert len(store.list()) == 1


def test_a_missing_monitored_metric_is_an_error_naming_the_available_ones(
    store: ModelStore,
) -> None:
    with pytest.raises(StoreError, match=r"'acc' is not among the metrics given \(f1, loss\)"):
        store.save(tiny_model(), metrics={"loss": 0.3, "f1": 0.7})
    assert files_in(store) == []


def test_a_nan_metric_cannot_rank_a_model(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="non-finite"):
        store.save(tiny_model(), metrics={"acc": float("nan")})


def test_a_non_numeric_metric_is_refused(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="metric 'acc' is 'high'; metrics must be numbers"):
        store.save(tiny_model(), metrics={"acc": "high"})


def test_tensor_metrics_are_recorded_as_numbers(store: ModelStore) -> None:
    entry = store.save(tiny_model(), metrics={"acc": torch.tensor(0.25)})
    assert entry.value == 0.25


def test_training_checkpoints_are_named_by_epoch_and_never_best(store: ModelStore) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    entry = store.save_checkpoint(model, epoch=7, optimizer=optimizer, loss=0.4, step=700)
    assert entry.file == "video_interpreter_v1_epoch_0007.pth"
    assert (entry.kind, entry.epoch, entry.step, entry.loss) == ("checkpoint", 7, 700, 0.4)
    assert not entry.is_best
    with pytest.raises(StoreError, match="no best model for"):
        store.best()


def test_names_that_would_share_files_are_refused(store: ModelStore) -> None:
    store.save(tiny_model(version="v_1"), metrics={"acc": 0.5})
    with pytest.raises(StoreError, match="would share the file names video_interpreter_v-1_"):
        store.save(tiny_model(version="v-1"), metrics={"acc": 0.5})


def test_a_model_without_a_spec_is_refused(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="cannot store a Linear: the store names files by"):
        store.save(torch.nn.Linear(2, 2), metrics={"acc": 0.5})


def test_metrics_that_would_share_a_file_name_token_are_refused(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="'val_loss' and 'val-loss' would both be written"):
        store.save(
            tiny_model(), metrics={"val_loss": 0.2, "val-loss": 0.3}, monitor="val_loss", mode="min"
        )


def test_entries_are_hashable_and_compare_by_content(store: ModelStore) -> None:
    entry = store.save(tiny_model(), metrics={"acc": 0.5})
    assert {entry, store.get(entry.file)} == {entry}


# -- loading ----------------------------------------------------------------------------------
def test_load_returns_the_saved_weights(store: ModelStore) -> None:
    model = tiny_model().eval()
    entry = store.save(model, metrics={"acc": 0.5})
    clip = torch.randn(2, 3, 4, 16, 16)
    for ref in (entry, entry.file, entry.path, str(entry.path)):
        loaded = store.load(ref).eval()
        torch.testing.assert_close(loaded(clip)["action"], model(clip)["action"])


def test_a_path_outside_the_store_is_not_taken_for_a_stored_file(
    store: ModelStore, tmp_path: Path
) -> None:
    entry = store.save(tiny_model(), metrics={"acc": 0.5})
    with pytest.raises(StoreError, match="is not in the store"):
        store.load(tmp_path / entry.file)


def test_an_unknown_file_is_an_error_suggesting_close_names(store: ModelStore) -> None:
    store.save(tiny_model(), metrics={"acc": 0.5})
    with pytest.raises(StoreError, match=r"did you mean video_interpreter_v1_acc_0\.5\.pth"):
        store.get("video_interpreter_v1_acc_0.6.pth")


# -- the best model ---------------------------------------------------------------------------
def test_best_follows_the_highest_value_in_max_mode(store: ModelStore) -> None:
    saved = [store.save(tiny_model(i), metrics={"acc": a}) for i, a in enumerate([0.5, 0.7, 0.6])]
    best = store.best()
    assert best.file == saved[1].file
    assert best.is_best
    assert [e.is_best for e in store.list()] == [False, True, False]  # in save order
    assert Files(store).sha256("video_interpreter_v1_best.pth") == saved[1].sha256


def test_best_follows_the_lowest_value_in_min_mode(store: ModelStore) -> None:
    for i, loss in enumerate([0.9, 0.3, 0.5]):
        store.save(tiny_model(i), metrics={"loss": loss}, monitor="loss", mode="min")
    assert store.best().file == "video_interpreter_v1_loss_0.3.pth"


def test_a_tie_keeps_the_first_model_as_best(store: ModelStore) -> None:
    first = store.save(tiny_model(0), metrics={"acc": 0.8})
    store.save(tiny_model(1), metrics={"acc": 0.8})
    assert store.best().file == first.file


def test_the_best_link_loads_the_best_model(store: ModelStore) -> None:
    store.save(tiny_model(0), metrics={"acc": 0.4})
    best = store.save(tiny_model(1), metrics={"acc": 0.6})
    assert store.get("video_interpreter_v1_best.pth") == store.get(best.file)
    files = Files(store)
    assert files.read("video_interpreter_v1_best.pth") == files.read(best.file)


def test_changing_the_monitored_metric_is_refused_until_set_monitor(store: ModelStore) -> None:
    store.save(tiny_model(0), metrics={"acc": 0.7, "loss": 0.5})
    with pytest.raises(StoreError, match=r"chosen by acc \(max\), but this save monitors loss"):
        store.save(tiny_model(1), metrics={"acc": 0.6, "loss": 0.2}, monitor="loss", mode="min")
    store.save(tiny_model(1), metrics={"acc": 0.6, "loss": 0.2})
    new_best = store.set_monitor("video_interpreter", "v1", metric="loss", mode="min")
    assert new_best is not None
    assert new_best.file == "video_interpreter_v1_acc_0.6.pth"
    assert store.best().file == new_best.file
    assert new_best.best_by == "loss"
    assert "**best** (loss 0.2) |" in store.render_table()


def test_best_with_several_models_needs_a_name(store: ModelStore) -> None:
    store.save(tiny_model(name="a"), metrics={"acc": 0.5})
    store.save(tiny_model(name="b"), metrics={"acc": 0.4})
    with pytest.raises(StoreError, match="holds several models"):
        store.best()
    assert store.best("b").file == "b_v1_acc_0.4.pth"
    assert [e.name for e in store.bests()] == ["a", "b"]


# -- retention --------------------------------------------------------------------------------
def test_prune_orders_checkpoints_by_epoch_numerically(store: ModelStore) -> None:
    model = tiny_model()
    for epoch in (100, 9, 10, 2):  # saved out of order, e.g. after resuming
        store.save_checkpoint(model, epoch=epoch)
    result = store.prune(keep_last=2)
    assert sorted(e.epoch for e in result.removed if e.epoch is not None) == [2, 9]
    assert files_in(store) == [
        "video_interpreter_v1_epoch_0010.pth",
        "video_interpreter_v1_epoch_0100.pth",
    ]


def test_prune_never_removes_the_best_or_a_pinned_file(store: ModelStore) -> None:
    model = tiny_model()
    best = store.save(model, metrics={"acc": 0.9})
    for acc in (0.1, 0.2, 0.3, 0.4):
        store.save(model, metrics={"acc": acc})
    pinned = store.pin("video_interpreter_v1_acc_0.2.pth")
    assert pinned.pinned
    result = store.prune(keep_last=1)
    assert {e.file for e in result.removed} == {
        "video_interpreter_v1_acc_0.1.pth",
        "video_interpreter_v1_acc_0.3.pth",
    }
    assert files_in(store) == [
        "video_interpreter_v1_acc_0.2.pth",
        "video_interpreter_v1_acc_0.4.pth",
        "video_interpreter_v1_acc_0.9.pth",
        "video_interpreter_v1_best.pth",
    ]
    assert store.best() == store.get(best.file)
    assert store.verify() == []


def test_prune_keep_zero_leaves_only_best_and_pinned(store: ModelStore) -> None:
    model = tiny_model()
    store.save(model, metrics={"acc": 0.5})
    store.save(model, metrics={"acc": 0.4})
    for epoch in range(3):
        store.save_checkpoint(model, epoch=epoch)
    store.pin("video_interpreter_v1_epoch_0001.pth")
    store.prune(keep_last=0)
    assert [e.file for e in store.list()] == [
        "video_interpreter_v1_acc_0.5.pth",
        "video_interpreter_v1_epoch_0001.pth",
    ]


def test_prune_keeping_more_than_exist_removes_nothing(store: ModelStore) -> None:
    for epoch in range(3):
        store.save_checkpoint(tiny_model(), epoch=epoch)
    result = store.prune(keep_last=10)
    assert result.removed == ()
    assert len(result.kept) == 3
    assert len(files_in(store)) == 3


def test_prune_breaks_epoch_ties_by_save_time(store: ModelStore) -> None:
    model = tiny_model()
    store.save_checkpoint(model, epoch=3)
    again = store.save_checkpoint(model, epoch=3, notes="resumed")
    assert again.file == "video_interpreter_v1_epoch_0003-2.pth"
    result = store.prune(keep_last=1)
    assert [e.file for e in result.kept] == [again.file]


def test_prune_counts_each_model_and_kind_separately(store: ModelStore) -> None:
    for name in ("a", "b"):
        model = tiny_model(name=name)
        for epoch in range(3):
            store.save_checkpoint(model, epoch=epoch)
            store.save(model, metrics={"acc": 0.1 * (3 - epoch)}, epoch=epoch)
    result = store.prune(keep_last=1, kind="checkpoint")
    assert sorted(e.file for e in result.kept) == ["a_v1_epoch_0002.pth", "b_v1_epoch_0002.pth"]
    assert len(store.find(kind="model")) == 6


def test_prune_dry_run_removes_nothing_and_says_what_would_go(store: ModelStore) -> None:
    for epoch in range(3):
        store.save_checkpoint(tiny_model(), epoch=epoch)
    preview = store.prune(keep_last=1, dry_run=True)
    assert preview.dry_run
    assert len(files_in(store)) == 3
    assert store.prune(keep_last=1).removed == preview.removed


def test_prune_refuses_a_negative_count(store: ModelStore) -> None:
    with pytest.raises(StoreError, match="keep_last must be an integer >= 0, got -1"):
        store.prune(keep_last=-1)


# -- find -------------------------------------------------------------------------------------
def test_find_filters_by_every_criterion(store: ModelStore) -> None:
    store.save(tiny_model(name="a"), metrics={"acc": 0.5})
    store.save(tiny_model(name="a"), metrics={"acc": 0.6})
    store.save_checkpoint(tiny_model(name="a"), epoch=1)
    store.save(tiny_model(name="b", version="v2"), metrics={"acc": 0.5})
    store.pin("a_v1_acc_0.6.pth")
    assert len(store.find("a")) == 3
    assert [e.file for e in store.find(version="v2")] == ["b_v2_acc_0.5.pth"]
    assert [e.file for e in store.find("a", kind="checkpoint")] == ["a_v1_epoch_0001.pth"]
    assert len(store.find(metric="acc")) == 3
    assert [e.file for e in store.find(pinned=True)] == ["a_v1_acc_0.6.pth"]


# -- the README table -------------------------------------------------------------------------
def _entry(**fields: Any) -> Entry:
    base: dict[str, Any] = {
        "path": Path("m_v1_acc_0.9.pth"),
        "kind": "model",
        "name": "m",
        "version": "v1",
        "metric": "acc",
        "value": 0.9,
        "metrics": {"acc": 0.9},
        "epoch": None,
        "step": None,
        "loss": None,
        "created": "2024-05-01T10:00:00.000000+00:00",
        "sha256": "0" * 64,
        "size_bytes": 1,
        "fingerprint": "f" * 64,
    }
    return Entry(**{**base, **fields})


def test_the_readme_table_lists_models_with_the_best_marked() -> None:
    table = render_table(
        [
            _entry(best_by="acc", notes="baseline | 16 frames"),
            _entry(
                path=Path("m_v1_loss_0.2.pth"),
                metric="loss",
                value=0.2,
                metrics={"loss": 0.2},
                created="2024-05-02T10:00:00.000000+00:00",
            ),
            _entry(kind="checkpoint", metric=None, value=None, epoch=3),
        ]
    )
    assert table == (
        "| Model Name | Version | Date | Accuracy | Notes |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| m | v1 | 2024-05-01 | 0.9 | **best** (acc 0.9); baseline &#124; 16 frames |\n"
        "| m | v1 | 2024-05-02 | — |   |"
    )


def test_write_readme_replaces_only_the_text_between_the_markers(
    store: ModelStore, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Models\n\nintro\n\n{START_MARKER}\nold\n{END_MARKER}\n\noutro\n")
    store.save(tiny_model(), metrics={"acc": 0.75}, notes="demo")
    store.write_readme(readme)
    text = readme.read_text()
    assert text.startswith("# Models\n\nintro\n\n")
    assert text.endswith(f"{END_MARKER}\n\noutro\n")
    assert "old" not in text
    assert "| video_interpreter | v1 |" in text
    assert "**best** (acc 0.75); demo |" in text
    store.write_readme(readme)
    assert readme.read_text() == text


def test_write_readme_without_markers_is_refused(store: ModelStore, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Models\n")
    with pytest.raises(StoreError, match="has no <!-- registry:start -->"):
        store.write_readme(readme)
    assert readme.read_text() == "# Models\n"


def test_the_committed_models_readme_has_the_markers() -> None:
    text = (Path(__file__).parents[1] / "models" / "README.md").read_text(encoding="utf-8")
    assert text.index(START_MARKER) < text.index(END_MARKER)
    assert "| Model Name | Version | Date | Accuracy | Notes |" in text


# -- faults: files changed, deleted or added behind the store's back ---------------------------
def test_a_tampered_file_is_reported_and_refused(store: ModelStore) -> None:
    entry = store.save(tiny_model(), metrics={"acc": 0.5})
    store.save(tiny_model(), metrics={"acc": 0.4})
    files = Files(store)
    flip_stored_byte(files, entry.file)
    actual = files.sha256(entry.file)
    problems = store.verify()
    assert [(p.kind, p.file) for p in problems] == [("changed", entry.file)]
    # The best copy is independent of the model file: its bytes are intact.
    assert files.sha256("video_interpreter_v1_best.pth") == entry.sha256
    assert actual in problems[0].message
    assert entry.sha256 in problems[0].message
    with pytest.raises((StoreError, CheckpointError), match=entry.sha256) as caught:
        store.load(entry)
    assert actual in str(caught.value)
    assert entry.file in str(caught.value)


def test_sync_keeps_refusing_a_changed_file_unless_told_to_accept_it(store: ModelStore) -> None:
    store.save(tiny_model(1), metrics={"acc": 0.9})  # the best, so its copy cannot restore entry
    entry = store.save(tiny_model(), metrics={"acc": 0.5})
    files = Files(store)
    data = files.read(entry.file)
    # Change a weight without touching the metadata, so the file still reads.
    store_model = store.load(entry)
    fc = store_model.get_submodule("heads.action.fc")
    assert isinstance(fc, torch.nn.Linear)
    with torch.no_grad():
        fc.bias.add_(1.0)
    other = sibling(store, "other")
    replacement = other.save(store_model, metrics={"acc": 0.5})
    files.write(entry.file, Files(other).read(replacement.file))
    assert files.read(entry.file) != data
    report = store.sync()
    assert [(p.kind, p.file) for p in report.problems] == [("changed", entry.file)]
    assert store.get(entry).sha256 == entry.sha256
    report = store.sync(accept_changed=True)
    assert report.updated == [entry.file]
    assert store.get(entry).sha256 == files.sha256(entry.file)
    assert store.verify() == []


def test_a_deleted_file_is_reported_and_sync_drops_its_record(store: ModelStore) -> None:
    store.save(tiny_model(), metrics={"acc": 0.9})
    gone = store.save(tiny_model(), metrics={"acc": 0.5})
    Files(store).remove(gone.file)
    assert [(p.kind, p.file) for p in store.verify()] == [("missing", gone.file)]
    with pytest.raises(StoreError, match="recorded but missing"):
        store.load(gone)
    report = store.sync()
    assert report.removed == [gone.file]
    assert store.verify() == []


def test_a_deleted_best_model_is_restored_from_its_link(store: ModelStore) -> None:
    best = store.save(tiny_model(), metrics={"acc": 0.9})
    store.save(tiny_model(), metrics={"acc": 0.5})
    files = Files(store)
    files.remove(best.file)
    report = store.sync()
    assert report.restored == [best.file]
    assert files.sha256(best.file) == best.sha256
    assert store.verify() == []


def test_an_unrecorded_store_file_is_reported_and_adopted_by_sync(store: ModelStore) -> None:
    other = sibling(store, "other")
    outside = other.save(tiny_model(1), metrics={"acc": 0.99}, notes="copied in")
    store.save(tiny_model(0), metrics={"acc": 0.5})
    files = Files(store)
    files.write(outside.file, Files(other).read(outside.file))
    files.write("notes.txt", b"hello")
    problems = {(p.kind, p.file) for p in store.verify()}
    assert problems == {("untracked", outside.file), ("unknown", "notes.txt")}
    report = store.sync()
    assert report.adopted == [outside.file]
    adopted = store.get(outside.file)
    assert (adopted.notes, adopted.sha256, adopted.value) == ("copied in", outside.sha256, 0.99)
    assert store.best().file == outside.file  # adopted files compete for best
    assert files.sha256("video_interpreter_v1_best.pth") == outside.sha256
    assert [(p.kind, p.file) for p in store.verify()] == [("unknown", "notes.txt")]


def test_sync_rebuilds_a_lost_registry_from_the_files(store: ModelStore) -> None:
    model = tiny_model()
    for i, loss in enumerate([0.5, 0.2, 0.3]):
        store.save(tiny_model(i), metrics={"loss": loss}, monitor="loss", mode="min", epoch=i)
    store.save_checkpoint(model, epoch=4, step=40)
    before = [e.to_dict() for e in store.list()]
    if isinstance(store, RemoteModelStore):
        store.fs.rm(f"{store.root.as_posix()}/{MANIFEST_DIR}", recursive=True)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.registry_path}{suffix}").unlink(missing_ok=True)
    rebuilt = ModelStore(store.location)
    report = rebuilt.sync()
    assert len(report.adopted) == 4
    assert [e.to_dict() for e in rebuilt.list()] == before
    assert rebuilt.best().file == "video_interpreter_v1_loss_0.2.pth"
    # The direction was recovered too: a lower loss becomes the best.
    rebuilt.save(tiny_model(5), metrics={"loss": 0.1}, monitor="loss", mode="min")
    assert rebuilt.best().file == "video_interpreter_v1_loss_0.1.pth"


def test_sync_deletes_leftovers_of_interrupted_writes(local_store: ModelStore) -> None:
    store = local_store
    store.save(tiny_model(), metrics={"acc": 0.5})
    leftover = store.root / ".video_interpreter_v1_acc_0.6.pth.1a2b.tmp"
    leftover.write_bytes(b"half a checkpoint")
    assert [(p.kind, p.file) for p in store.verify()] == [("leftover", leftover.name)]
    assert store.sync().deleted_leftovers == [leftover.name]
    assert not leftover.exists()
    assert store.verify() == []


def test_opening_a_missing_store_without_create_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no model store at"):
        ModelStore(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_a_store_is_usable_from_a_relative_root(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    store = ModelStore()
    entry = store.save(tiny_model(), metrics={"acc": 0.5})
    assert entry.path == Path("models/saved_models/video_interpreter_v1_acc_0.5.pth")
    assert os.path.isfile(entry.path)


def test_a_card_is_written_under_cards_on_request_and_is_not_a_store_file(
    store: ModelStore,
) -> None:
    entry = store.save(tiny_model(), metrics={"acc": 0.5}, notes="first run", card=True)
    stem = Path(entry.file).stem
    files = Files(store)
    assert files.exists(f"cards/{stem}.md")
    assert "first run" in files.read(f"cards/{stem}.md").decode("utf-8")
    assert store.verify() == []  # cards sit beside the store's files, not among them
    plain = store.save(tiny_model(1), metrics={"acc": 0.6})
    assert not files.exists(f"cards/{Path(plain.file).stem}.md")
