"""``--help``, ``--version`` and ``models list`` answer without importing torch, and say exactly
what the full parser says."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from video_interpreter.cli._main import COMMANDS, _parser_for, build_parser

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import sys\n"
    "from video_interpreter.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "sys.stdout.flush()\n"
    "print('TORCH', 'torch' in sys.modules, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_fresh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=120,
    )


def test_the_light_help_lists_every_command_as_the_groups_register_them() -> None:
    full = build_parser()
    commands = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert [(c.dest, c.help) for c in commands._choices_actions] == list(COMMANDS)
    assert _parser_for(["--help"]).format_help() == full.format_help()


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_do_not_import_torch(argv: list[str]) -> None:
    result = run_fresh(*argv)
    assert "TORCH False" in result.stderr
    if argv == ["--version"]:
        assert result.stdout.startswith("video-interpreter ")
    elif argv == ["--help"]:
        assert "models" in result.stdout
        assert result.returncode == 0
    else:
        assert result.returncode == 2  # a command is required, as before


def test_models_list_reads_the_registry_without_torch(tmp_path: Path) -> None:
    from video_interpreter import build_model
    from video_interpreter.store import ModelStore

    store = ModelStore(tmp_path / "store")
    saved = store.save(build_model("tiny_r2plus1d"), metrics={"acc": 0.5}, epoch=1)
    table = run_fresh("models", "list", "--root", str(tmp_path / "store"))
    assert "TORCH False" in table.stderr
    assert table.returncode == 0
    assert saved.file in table.stdout
    listed = run_fresh("models", "list", "--root", str(tmp_path / "store"), "--json")
    assert [row["file"] for row in json.loads(listed.stdout)] == [
        entry.file for entry in store.find()
    ]
    missing = run_fresh("models", "list", "--root", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert "no model store at" in missing.stderr
