"""The demo: trains into a store it names, shows the store and the table, reloads with equal
outputs; killed and rerun, it resumes to the same weights; bad options get clear errors."""

from __future__ import annotations

import contextlib
import io
import runpy
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from video_interpreter import EpochResult, ModelStore
from video_interpreter.cli import _demo_command, main
from video_interpreter.cli._arguments import EXIT_INTERRUPTED
from video_interpreter.training import fit as real_fit

CONFIGS = Path(__file__).resolve().parents[1] / "architectures" / "configs"


def _demo(folder: Path, *options: str) -> int:
    """The demo on 2 epochs of 64 clips (32 to validate), every path inside ``folder``."""
    specs = folder / "configs"
    if not specs.is_dir():
        specs.mkdir(parents=True)
        shutil.copy(CONFIGS / "tiny_r2plus1d.yaml", specs)
    readme = folder / "README.md"
    if not readme.exists():
        readme.write_text("# Models\n\n<!-- registry:start -->\n<!-- registry:end -->\n")
    paths = ["--specs-dir", str(specs), "--root", str(folder / "store"), "--readme", str(readme)]
    small = ["--epochs", "2", "--clips", "64", "--val-clips", "32", "--keep", "1"]
    return main(["demo", *paths, "--diagram", str(folder / "model.mmd"), *small, *options])


def _last_weights(folder: Path) -> dict[str, torch.Tensor]:
    store = ModelStore(folder / "store", create=False)
    return store.load(store.find(kind="model")[-1]).state_dict()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A demo run that was never interrupted, and what it printed."""
    folder = tmp_path_factory.mktemp("demo")
    out = io.StringIO()  # a module-scoped fixture cannot take capsys
    with contextlib.redirect_stdout(out):
        assert _demo(folder) == 0
    return folder, out.getvalue()


def test_the_demo_writes_the_card_and_a_model_directory_beside_the_store(
    finished: tuple[Path, str],
) -> None:
    folder, out = finished
    (card,) = (folder / "store" / "cards").glob("*.md")  # the best model's
    assert card.with_suffix(".svg").is_file()
    directory = folder / "pretrained" / "tiny_r2plus1d_v1"
    held = sorted(p.name for p in directory.iterdir())
    assert held == ["README.md", "config.json", "diagram.svg", "model.safetensors"]
    assert "from_pretrained gives the outputs of the stored best model: True" in out


def test_the_demo_trains_into_the_store_and_shows_it(finished: tuple[Path, str]) -> None:
    folder, out = finished
    assert "no checkpoint of tiny_r2plus1d v1" in out
    assert "epoch 1/2  train loss" in out
    assert "epoch 2/2  train loss" in out
    files = sorted(p.name for p in (folder / "store").glob("*.pth"))
    assert "tiny_r2plus1d_v1_epoch_0002.pth" in files
    assert "tiny_r2plus1d_v1_best.pth" in files
    assert "tiny_r2plus1d_v1_epoch_0001.pth" not in files  # pruned, and the demo says so
    assert "  tiny_r2plus1d_v1_epoch_0001.pth" in out.split("this run removed:")[1]
    assert "outputs equal to those of the model in memory: True" in out
    assert "recorded" in out
    assert ": the same" in out
    assert (folder / "model.mmd").is_file()
    table = (folder / "README.md").read_text().split("<!-- registry:start -->")[1]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows[0] == "| Model Name | Version | Date | Accuracy | Notes |"
    assert len(rows) >= 3
    assert all(row.count(" | ") == 4 for row in rows)
    assert any("**best**" in row and "| tiny_r2plus1d | v1 |" in row for row in rows[2:])


def test_a_killed_demo_run_again_resumes_and_ends_with_the_same_weights(
    tmp_path: Path,
    finished: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def killed_after_one_epoch(*args: Any, **kwargs: Any) -> Iterator[EpochResult]:
        for result in real_fit(*args, **kwargs):
            yield result
            raise KeyboardInterrupt  # Ctrl-C during the second epoch

    monkeypatch.setattr(_demo_command, "fit", killed_after_one_epoch)
    assert _demo(tmp_path) == EXIT_INTERRUPTED  # the command line's exit status for Ctrl-C
    monkeypatch.undo()
    capsys.readouterr()

    assert _demo(tmp_path) == 0
    out = capsys.readouterr().out
    assert "resumed from tiny_r2plus1d_v1_epoch_0001.pth: continuing at epoch 2" in out
    assert "epoch 1/2  train loss" not in out
    expected, actual = _last_weights(finished[0]), _last_weights(tmp_path)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)

    assert _demo(tmp_path) == 0
    assert "all 2 epochs are already done" in capsys.readouterr().out


def test_the_demo_refuses_to_continue_a_run_with_other_options(
    finished: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    assert _demo(tmp_path, "--epochs", "3") == 2
    assert "scheduled over 4 steps; --epochs 3 and --clips 64 make 6" in capsys.readouterr().err


def test_a_negative_clip_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["demo", "--clips", "-1"])
    err = capsys.readouterr().err
    assert "argument --clips: expected an integer >= 1, got -1" in err
    assert "Traceback" not in err


def test_the_demo_outside_the_repository_says_where_it_looks_for_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "architectures/configs does not exist; run the demo from the repository's root" in err
    assert not (tmp_path / "models").exists()  # nothing written


def test_the_example_script_trains_and_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = Path(__file__).resolve().parents[1] / "examples" / "train.py"
    small = ["--store", str(tmp_path), "--epochs", "2", "--clips", "32", "--val-clips", "16"]

    def run(*options: str) -> str:
        monkeypatch.setattr(sys, "argv", [str(script), *small, *options])
        runpy.run_path(str(script), run_name="__main__")
        return capsys.readouterr().out

    first = run()
    assert "epoch 2/2" in first
    assert "best: tiny_r2plus1d_v1_acc_" in first
    store = ModelStore(tmp_path, create=False)
    assert [e.epoch for e in store.find(kind="checkpoint")] == [1, 2]
    again = run("--resume")
    assert "resumed after epoch 2" in again
    assert "epoch 1/2" not in again
    with pytest.raises(SystemExit, match="2"):
        run("--resume", "--epochs", "3")
    assert "resume with the --epochs, --clips and --batch-size" in capsys.readouterr().err


def test_the_demo_repairs_what_a_save_cut_short_left_behind(
    finished: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    leftover = tmp_path / "store" / ".tiny_r2plus1d_v1_epoch_0003.pth.1a2b3c4d.tmp"
    leftover.write_bytes(b"half a checkpoint")
    assert _demo(tmp_path) == 0
    out = capsys.readouterr().out
    assert "was left inconsistent (an interrupted run?)" in out
    assert f"sync deleted {leftover.name}" in out
    assert not leftover.exists()
