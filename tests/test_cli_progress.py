"""Long commands show progress on one line of standard error, only on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from video_interpreter import ModelStore, build_model
from video_interpreter.cli import main
from video_interpreter.cli._progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_clears_it() -> None:
    stream = Terminal()
    shown = Progress(2, "hashing", stream=stream)
    shown.step(1, "a_long_file_name.pth")
    shown.step(2, "b.pth")
    shown.close()
    text = stream.getvalue()
    assert "\r[1/2] hashing: a_long_file_name.pth" in text
    assert "\r[2/2] hashing: b.pth" in text
    assert "\n" not in text
    assert text.endswith("\r")


def test_progress_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    shown = Progress(1, "drawing", stream=stream)
    shown.step(1, "v1")
    shown.close()
    assert stream.getvalue() == ""


def test_verify_reports_each_file_it_hashes(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model = build_model("tiny_r2plus1d")
    for epoch in (1, 2):
        store.save(model, metrics={"acc": 0.1 * epoch}, epoch=epoch)
    seen: list[tuple[int, int, str]] = []
    assert store.verify(progress=lambda done, total, name: seen.append((done, total, name))) == []
    assert [(done, total) for done, total, _ in seen] == [(1, 2), (2, 2)]
    assert {name for _, _, name in seen} == {entry.file for entry in store.find()}


def test_models_verify_on_a_terminal_shows_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ModelStore(tmp_path / "store")
    store.save(build_model("tiny_r2plus1d"), metrics={"acc": 0.5}, epoch=1)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["models", "verify", "--root", str(tmp_path / "store")]) == 0
    assert "[1/1] hashing: tiny_r2plus1d_v1_acc_0.5.pth" in terminal.getvalue()
    assert "all as recorded" in capsys.readouterr().out
