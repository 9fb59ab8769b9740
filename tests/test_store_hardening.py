"""The store under faults: saves interrupted at every step, a registry deleted or damaged, a
read-only store, hostile notes, non-finite metrics, damaged best copies and mistyped roots."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_interpreter.checkpoint import read_metadata, sha256_file
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError, StoreError
from video_interpreter.model import VideoInterpreter, build_model
from video_interpreter.store import (
    END_MARKER,
    REGISTRY_FILE,
    START_MARKER,
    ModelStore,
    _registry,
    _store,
)

from .conftest import tiny_spec

TINY: dict[str, Any] = tiny_spec(
    name="video_interpreter", version="v1", out_channels=4, bias=True, num_classes=3
)
BEST = "video_interpreter_v1_best.pth"


def tiny_model(seed: int = 0) -> VideoInterpreter:
    torch.manual_seed(seed)
    return build_model(TINY)


class Crash(BaseException):
    """A process dying at this point: nothing after it runs, open transactions roll back."""


@contextmanager
def crash_at(stage: str) -> Iterator[None]:
    """Kill a save at ``stage``: ``written`` (file renamed into place, not recorded),
    ``recorded`` (row and best committed, the best copy not made)."""

    def die(*args: Any, **kwargs: Any) -> None:
        raise Crash(stage)

    target = (
        mock.patch.object(_registry.Registry, "insert", die)
        if stage == "written"
        else mock.patch.object(_store, "_copy_file", die)
    )
    with target, contextlib.suppress(Crash):  # a save that never reaches the stage completes
        yield


def model_files(store: ModelStore) -> list[Path]:
    return list(store.root.glob("*_acc_*.pth")) + list(store.root.glob("*_loss_*.pth"))


# -- 13: after any crash and sync, best is the best file present ----------------------------
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    values=st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=4, unique=True),
    crashes=st.lists(st.sampled_from(["none", "written", "recorded"]), min_size=4, max_size=4),
    mode=st.sampled_from(["max", "min"]),
    lose_registry=st.booleans(),
)
def test_after_any_crash_and_sync_the_best_is_the_best_file_present(
    values: list[int], crashes: list[str], mode: str, lose_registry: bool
) -> None:
    metric = "acc" if mode == "max" else "loss"
    model = tiny_model()
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp) / "saved_models")
        for value, crash in zip(values, crashes, strict=False):
            metrics = {metric: value / 1000}
            if crash == "none":
                store.save(model, metrics=metrics, monitor=metric, mode=mode)  # type: ignore[arg-type]
            else:
                with crash_at(crash):
                    store.save(model, metrics=metrics, monitor=metric, mode=mode)  # type: ignore[arg-type]
        if lose_registry:
            store.registry_path.unlink()
        report = store.sync()
        assert (report.rebuilt is not None) == lose_registry
        present = {p.name: read_metadata(p).metrics[metric] for p in model_files(store)}
        assert len(present) == len(values)  # every save's file got into place
        pick = max if mode == "max" else min
        expected = pick(present, key=lambda name: present[name])
        assert store.best().file == expected
        assert sha256_file(store.root / BEST) == sha256_file(store.root / expected)
        assert store.verify() == []


def test_the_first_save_killed_after_its_rename_becomes_best_on_sync(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "saved_models")
    with crash_at("written"):
        store.save(tiny_model(), metrics={"loss": 0.2}, monitor="loss", mode="min")
    report = store.sync()
    assert report.adopted == ["video_interpreter_v1_loss_0.2.pth"]
    assert store.best().file == "video_interpreter_v1_loss_0.2.pth"
    # The direction came from the file: a worse (higher) loss does not take over.
    store.save(tiny_model(), metrics={"loss": 0.3}, monitor="loss", mode="min")
    assert store.best().file == "video_interpreter_v1_loss_0.2.pth"
    kept = store.prune(keep_last=1, dry_run=True).kept
    assert "video_interpreter_v1_loss_0.2.pth" in [e.file for e in kept]


def test_model_files_record_the_metric_and_direction_that_rank_them(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "saved_models")
    entry = store.save(tiny_model(), metrics={"loss": 0.2}, monitor="loss", mode="min")
    assert read_metadata(entry.path).monitor == ("loss", "min")
    checkpoint = store.save_checkpoint(tiny_model(), epoch=1)
    assert read_metadata(checkpoint.path).monitor is None


# -- 14: a registry deleted or damaged -----------------------------------------------------
def _saved_store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "saved_models")
    store.save(tiny_model(), metrics={"acc": 0.7})
    store.save(tiny_model(), metrics={"acc": 0.9})
    store.save(tiny_model(), metrics={"acc": 0.8})
    return store


def test_a_live_store_whose_registry_is_deleted_says_to_sync_and_leaves_no_empty_file(
    tmp_path: Path,
) -> None:
    store = _saved_store(tmp_path)
    store.registry_path.unlink()
    for call in (store.list, store.verify, lambda: store.save(tiny_model(), metrics={"acc": 1})):
        with pytest.raises(StoreError, match=r"registry .* is missing; .*models sync"):
            call()
    assert not store.registry_path.exists()
    report = store.sync()
    assert report.rebuilt is not None
    assert "missing" in report.rebuilt
    assert store.best().file == "video_interpreter_v1_acc_0.9.pth"
    assert store.verify() == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"not a database at all " * 40, id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[:100], id="truncated-header"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
    ],
)
def test_a_damaged_registry_is_reported_and_rebuilt_by_sync(
    tmp_path: Path, damage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _saved_store(tmp_path)
    files = sorted(e.file for e in store.list())
    store.registry_path.write_bytes(damage(store.registry_path.read_bytes()))
    root = str(store.root)
    code = main(["models", "sync", "--root", root])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in out + err
    fresh = ModelStore(root, create=False)
    assert sorted(e.file for e in fresh.list()) == files
    assert fresh.best().file == "video_interpreter_v1_acc_0.9.pth"
    assert fresh.verify() == []


def test_every_command_on_a_garbage_registry_fails_cleanly_and_sync_says_it_rebuilt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _saved_store(tmp_path)
    store.registry_path.write_bytes(b"\x00garbage" * 100)
    root = str(store.root)
    for argv in (["list"], ["best"], ["verify"], ["show", "x.pth"], ["prune", "--keep-last", "1"]):
        assert main(["models", *argv, "--root", root]) == 1
        err = capsys.readouterr().err
        assert "damaged" in err, err
        assert "models sync" in err, err
    assert main(["models", "sync", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "rebuilt it from the files" in out
    assert (store.root / f"{REGISTRY_FILE}.damaged").read_bytes() == b"\x00garbage" * 100
    assert main(["models", "verify", "--root", root]) == 0


# -- 15: a read-only store ------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
        for p in root.iterdir()
    }


def test_list_and_verify_work_in_a_read_only_store_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _saved_store(tmp_path)
    for path in store.root.iterdir():
        path.chmod(0o444)
    store.root.chmod(0o555)
    try:
        before = _snapshot(store.root)
        root = str(store.root)
        assert main(["models", "list", "--root", root, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert len(listed) == 3
        assert main(["models", "verify", "--root", root]) == 0
        assert "all as recorded" in capsys.readouterr().out
        assert main(["models", "best", "--root", root]) == 0
        assert "acc_0.9" in capsys.readouterr().out
        assert _snapshot(store.root) == before
    finally:
        store.root.chmod(0o755)


# -- 16: what goes into the README table ----------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    notes=st.lists(
        st.sampled_from([*"ab |\n\r\t<>-!&\\`*", END_MARKER, START_MARKER]), max_size=12
    ).map("".join)
)
def test_notes_never_change_the_readme_outside_one_row(notes: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp) / "saved_models")
        store.save(tiny_model(), metrics={"acc": 0.5}, notes=notes)
        readme = Path(tmp) / "README.md"
        readme.write_text(f"# Models\n\nbefore\n{START_MARKER}\n{END_MARKER}\nafter\n")
        store.write_readme(readme)
        first = readme.read_text()
        store.write_readme(readme)
        assert readme.read_text() == first  # no growth, however often it is written
        assert first.count(START_MARKER) == 1
        assert first.count(END_MARKER) == 1
        table = first.split(START_MARKER)[1].split(END_MARKER)[0].strip().splitlines()
        assert len(table) == 3  # header, rule, one row
        assert table[2].count("|") == 6  # five cells: no pipe from the notes splits one
        assert first.startswith("# Models\n\nbefore\n")
        assert first.endswith("after\n")


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600])
def test_write_readme_keeps_the_file_mode(tmp_path: Path, mode: int) -> None:
    store = ModelStore(tmp_path / "saved_models")
    store.save(tiny_model(), metrics={"acc": 0.5})
    readme = tmp_path / "README.md"
    readme.write_text(f"{START_MARKER}\n{END_MARKER}\n")
    readme.chmod(mode)
    store.write_readme(readme)
    assert stat.S_IMODE(readme.stat().st_mode) == mode


# -- 17: non-finite metrics ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf"), (10**400, "1000")],
    ids=["nan", "inf", "-inf", "10**400"],
)
def test_non_finite_metrics_are_refused_in_any_field(
    tmp_path: Path, value: object, shown: str
) -> None:
    store = ModelStore(tmp_path / "saved_models")
    with pytest.raises(StoreError, match=f"metric 'top5' is {shown}"):
        store.save(tiny_model(), metrics={"acc": 0.5, "top5": value})
    with pytest.raises(StoreError, match=f"metric 'top5' is {shown}"):
        store.save_checkpoint(tiny_model(), epoch=1, metrics={"top5": value})
    assert store.list() == []


def test_list_json_is_strict_json_even_for_an_old_registry_holding_nan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _saved_store(tmp_path)
    with store.registry.transaction() as conn:  # as an older version could have written it
        conn.execute(
            """UPDATE entries SET metrics = '{"acc": 0.7, "top5": NaN}', loss = ?""",
            (float("nan"),),
        )
    assert main(["models", "list", "--root", str(store.root), "--json"]) == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    listed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert listed[0]["metrics"]["top5"] is None
    assert listed[0]["loss"] is None


# -- 18 and 22: independent best copies, verified loads, mistyped roots ----------------------
def test_damaging_the_best_model_leaves_its_copy_intact_and_sync_restores_it(
    tmp_path: Path,
) -> None:
    store = _saved_store(tmp_path)
    best = store.best()
    copy = store.root / BEST
    assert not os.path.samefile(copy, best.path)
    data = bytearray(best.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    best.path.write_bytes(bytes(data))
    assert [(p.kind, p.file) for p in store.verify()] == [("changed", best.file)]
    with pytest.raises(CheckpointError, match="sha256 mismatch"):  # store loads always verify
        store.load(best)
    assert store.sync().restored == [best.file]
    assert sha256_file(best.path) == best.sha256
    assert store.verify() == []


def test_a_best_hard_link_from_an_older_store_is_reported_and_replaced_by_a_copy(
    tmp_path: Path,
) -> None:
    store = _saved_store(tmp_path)
    copy = store.root / BEST
    copy.unlink()
    os.link(store.best().path, copy)
    problems = store.verify()
    assert [(p.kind, p.file) for p in problems] == [("best", BEST)]
    assert "hard link" in problems[0].message
    assert "does not hold" not in problems[0].message
    assert store.sync().relinked == [BEST]
    assert not os.path.samefile(copy, store.best().path)
    assert store.verify() == []


@pytest.mark.parametrize("action", [["sync"], ["list"], ["verify"], ["best"], ["readme"]])
def test_a_mistyped_root_is_refused_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    typo = tmp_path / "saved_modles"
    assert main(["models", *action, "--root", str(typo)]) == 1
    err = capsys.readouterr().err
    assert f"no model store at {typo}" in err
    assert "Traceback" not in err
    assert not typo.exists()


def test_a_store_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the model store"):
        ModelStore(blocker / "saved_models")
    with pytest.raises(StoreError, match="is not a directory"):
        ModelStore(blocker)
