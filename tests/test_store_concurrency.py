"""The store under concurrency and faults: several real processes saving into one store, and a
save killed with SIGKILL at each step, on the real file system and SQLite registry."""

from __future__ import annotations

import multiprocessing
import queue
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from video_interpreter.checkpoint import sha256_file
from video_interpreter.model import build_model
from video_interpreter.store import ModelStore

from .test_store import TINY, tiny_model

REPO = Path(__file__).resolve().parents[1]
WRITERS = 3
ACCURACIES = (0.5, 0.6, 0.7)  # every writer saves the same names: all must survive
EPOCHS = 2


def _writer(root: str, index: int, barrier: Any, results: Any) -> None:
    torch.manual_seed(index)
    model = build_model(TINY)
    store = ModelStore(root)
    barrier.wait(timeout=120)  # start saving together, so the saves really overlap
    saved: list[tuple[str, str]] = []
    for acc in ACCURACIES:
        entry = store.save(model, metrics={"acc": acc}, notes=f"writer {index}")
        saved.append((entry.file, entry.sha256))
    for epoch in range(EPOCHS):
        entry = store.save_checkpoint(model, epoch=index * 100 + epoch)
        saved.append((entry.file, entry.sha256))
    results.put(saved)


def test_concurrent_writers_lose_no_row_and_tear_no_file(tmp_path: Path) -> None:
    root = tmp_path / "saved_models"
    ModelStore(root)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    barrier = context.Barrier(WRITERS)
    results = context.Queue()
    writers = [
        context.Process(target=_writer, args=(str(root), i, barrier, results))
        for i in range(WRITERS)
    ]
    for process in writers:
        process.start()
    saved: dict[str, str] = {}
    deadline = time.monotonic() + 240
    for _ in writers:
        while True:
            try:
                saved.update(results.get(timeout=1))
                break
            except queue.Empty:
                failed = [p.exitcode for p in writers if p.exitcode not in (None, 0)]
                assert not failed, f"a writer failed (exit codes {failed}); see its stderr"
                assert time.monotonic() < deadline, "the writers did not finish in time"
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0

    store = ModelStore(root)
    recorded = {e.file: e.sha256 for e in store.list()}
    assert len(saved) == WRITERS * (len(ACCURACIES) + EPOCHS)
    assert recorded == saved
    assert store.verify() == []
    for acc in ACCURACIES:
        same = sorted(f for f in recorded if f"_acc_{acc}" in f)
        assert same == sorted(
            [f"video_interpreter_v1_acc_{acc}.pth"]
            + [f"video_interpreter_v1_acc_{acc}-{n}.pth" for n in range(2, WRITERS + 1)]
        )
    # The first 0.7 saved (the one that got the plain name) is the best; later ties are not.
    best = store.best()
    assert best.file == "video_interpreter_v1_acc_0.7.pth"
    assert sha256_file(store.best_path("video_interpreter", "v1")) == best.sha256
    assert store.load(best) is not None


# A child process that saves one model and blocks at ``stage`` until it is killed.
_CHILD = textwrap.dedent(
    """
    import os, pathlib, sys, time
    import torch
    from video_interpreter.model import build_model
    from video_interpreter.store import ModelStore, _registry, _store
    from tests.test_store import TINY

    root, stage, signal = sys.argv[1:4]

    def block(*args, **kwargs):
        pathlib.Path(signal).write_text(stage)
        time.sleep(600)

    if stage == "writing":  # the checkpoint's bytes are out, not yet renamed into place
        real_replace = os.replace

        def replace(source, target, *args, **kwargs):
            if str(target).endswith(".pth") and ".tmp" in str(source):
                block()
            return real_replace(source, target, *args, **kwargs)

        os.replace = replace
    elif stage == "recording":  # the file is in place; the registry transaction is open
        _registry.Registry.insert = block
    elif stage == "linking":  # recorded as the new best; the best link not yet moved
        _store._copy_file = block
    torch.manual_seed(1)
    ModelStore(root).save(build_model(TINY), metrics={"acc": 0.9})
    """
)


def _save_killed_at(stage: str, root: Path, tmp_path: Path) -> None:
    signal = tmp_path / f"{stage}.signal"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), stage, str(signal)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not signal.exists():
        if child.poll() is not None:
            output = child.stdout.read().decode() if child.stdout else ""
            pytest.fail(f"the saving process exited early ({child.returncode}):\n{output}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the saving process never reached {stage}")
        time.sleep(0.05)
    child.kill()  # SIGKILL: no cleanup handler runs
    child.wait(timeout=30)
    if child.stdout:
        child.stdout.close()


@pytest.fixture
def previous(tmp_path: Path) -> tuple[ModelStore, str, str]:
    """A store holding one saved model (the state a killed save must not damage)."""
    store = ModelStore(tmp_path / "saved_models", lock_timeout=30)
    entry = store.save(tiny_model(0), metrics={"acc": 0.5})
    return store, entry.file, entry.sha256


def _assert_previous_intact(store: ModelStore, file: str, sha256: str) -> None:
    assert sha256_file(store.root / file) == sha256
    assert store.get(file).sha256 == sha256


def test_a_save_killed_while_writing_leaves_only_a_leftover(
    previous: tuple[ModelStore, str, str], tmp_path: Path
) -> None:
    store, file, sha256 = previous
    _save_killed_at("writing", store.root, tmp_path)
    _assert_previous_intact(store, file, sha256)
    assert [e.file for e in store.list()] == [file]
    assert store.best().file == file
    problems = store.verify()
    assert [p.kind for p in problems] == ["leftover"]
    assert not (store.root / "video_interpreter_v1_acc_0.9.pth").exists()
    assert store.sync().deleted_leftovers == [problems[0].file]
    assert store.verify() == []
    store.save(tiny_model(2), metrics={"acc": 0.6})  # the dead process's lock is gone
    assert store.best().file == "video_interpreter_v1_acc_0.6.pth"


def test_a_save_killed_while_recording_leaves_a_file_that_sync_adopts(
    previous: tuple[ModelStore, str, str], tmp_path: Path
) -> None:
    store, file, sha256 = previous
    _save_killed_at("recording", store.root, tmp_path)
    _assert_previous_intact(store, file, sha256)
    assert [e.file for e in store.list()] == [file]  # the open transaction was rolled back
    new = "video_interpreter_v1_acc_0.9.pth"
    assert [(p.kind, p.file) for p in store.verify()] == [("untracked", new)]
    report = store.sync()
    assert report.adopted == [new]
    assert store.best().file == new
    assert store.verify() == []
    store.save(tiny_model(2), metrics={"acc": 0.6})
    assert len(store.list()) == 3


def test_a_save_killed_before_moving_the_best_link_is_repaired(
    previous: tuple[ModelStore, str, str], tmp_path: Path
) -> None:
    store, file, sha256 = previous
    _save_killed_at("linking", store.root, tmp_path)
    _assert_previous_intact(store, file, sha256)
    new = store.best()
    assert new.file == "video_interpreter_v1_acc_0.9.pth"
    assert store.load(new) is not None  # best() is the recorded file, whatever the link holds
    assert [(p.kind, p.file) for p in store.verify()] == [("best", "video_interpreter_v1_best.pth")]
    # The next save re-points the stale link on its way.
    store.save(tiny_model(2), metrics={"acc": 0.6})
    assert store.verify() == []
    assert sha256_file(store.best_path("video_interpreter", "v1")) == new.sha256
