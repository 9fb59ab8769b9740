"""The command line never shows a traceback: every error is one message and a documented exit
code (0 ok, 1 failed, 2 invalid input, 3 internal error), whatever the arguments."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_interpreter import __version__, build_model, save_model
from video_interpreter.cli import _spec_commands, main

from .conftest import tiny_spec


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good spec, a bad one, an alias bomb, a checkpoint (with a NaN loss) and a folder."""
    root = tmp_path_factory.mktemp("cli")
    good = root / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_spec()), encoding="utf-8")
    bad = root / "bad.yaml"
    bad.write_text("spec_version: 1\nname: [\n", encoding="utf-8")
    bomb = root / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
    bomb.write_text(yaml.safe_dump(tiny_spec()) + "\n".join(lines) + "\n", encoding="utf-8")
    checkpoint = root / "good.pth"
    save_model(build_model(tiny_spec()), checkpoint, loss=float("nan"), epoch=1)
    folder = root / "folder"
    folder.mkdir()
    return {"good": good, "bad": bad, "bomb": bomb, "checkpoint": checkpoint, "folder": folder}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--version"], capsys)
    assert (code, out.strip()) == (0, f"video-interpreter {__version__}")


def test_schema_into_a_folder_is_refused_with_exit_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["schema", "-o", str(files["folder"])], capsys)
    assert code == 2
    assert err == f"error: {files['folder']} is a folder; give the name of a file to write\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["schema", "-o", "{missing}/schema.json"],
        ["diagram", "{good}", "-o", "{missing}/d.mmd"],
        ["diagram", "--zoo", "--out-dir", "{missing}"],
        ["convert", "{checkpoint}", "{missing}/c.safetensors"],
        ["models", "readme", "-o", "{missing}/README.md"],
    ],
)
def test_outputs_into_a_missing_folder_are_refused_not_created(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "typo"
    names = {key: str(value) for key, value in files.items()} | {"missing": str(missing)}
    code, _, err = _run([arg.format(**names) for arg in argv], capsys)
    assert code == 2
    assert f"{missing} does not exist (create it first)" in err
    assert not missing.exists()


def test_a_diagram_format_that_contradicts_the_suffix_is_refused(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.svg"
    code, _, err = _run(
        ["diagram", str(files["good"]), "--format", "mermaid", "-o", str(out)], capsys
    )
    assert code == 2
    assert "format 'mermaid' does not match" in err
    assert "name the file x.mmd" in err
    assert not out.exists()


def test_validate_of_a_checkpoint_points_to_inspect(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["validate", str(files["checkpoint"])], capsys)
    assert code == 2
    assert "is a checkpoint, not a spec: `video-interpreter inspect`" in err


def test_an_override_problem_is_blamed_on_the_override(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["validate", str(files["good"]), "--set", "heads.action.y=1"], capsys)
    assert code == 2
    assert err.startswith("--set heads.action.y=1: heads.action.y: unknown key 'y'")


def test_limits_are_named_and_raised_from_the_command_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["validate", str(files["bomb"])], capsys)
    assert code == 2
    assert "Limits.values" in err
    assert "--limit values=..." in err
    code, _, err = _run(["--limit", "values=10", "validate", str(files["good"])], capsys)
    assert (code, "over the limit of 10 (Limits.values)" in err) == (2, True)
    code, _, err = _run(["--limit", "nodes=10", "validate", str(files["good"])], capsys)
    assert code == 2
    assert "NAME one of file_bytes, values" in err


def test_inspect_json_writes_a_nan_loss_as_null(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["inspect", str(files["checkpoint"]), "--json"], capsys)

    def refuse(text: str) -> Any:
        raise AssertionError(f"{text} is not JSON")

    assert code == 0
    assert json.loads(out, parse_constant=refuse)["loss"] is None


def test_an_os_error_is_one_line_with_exit_1(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(path: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_spec_commands, "export_schema", refuse)
    out = files["folder"] / "schema.json"
    code, _, err = _run(["schema", "-o", str(out)], capsys)
    assert (code, err) == (1, f"error: Permission denied: {out}\n")


def test_an_unexpected_error_is_one_line_with_exit_3_unless_traceback_is_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(_spec_commands, "_layers", broken)
    code, _, err = _run(["layers"], capsys)
    assert code == 3
    assert err.startswith("error: unexpected RuntimeError: boom (this is a bug")
    with pytest.raises(RuntimeError, match="boom"):
        main(["--traceback", "layers"])


# -- fuzz: arguments drawn from commands, flags, good and hostile files ----------------------

COMMANDS = [
    ["validate"],
    ["build", "--meta"],
    ["schema"],
    ["summary"],
    ["diagram"],
    ["inspect"],
    ["convert"],
    ["models", "list"],
    ["models", "verify"],
    ["models", "show"],
    ["models", "readme"],
]
FLAGS = [
    "--set",
    "-o",
    "--format",
    "--json",
    "--input",
    "--depth",
    "--root",
    "--check",
    "--limit",
    "--zoo",
    "--batch-size",
    "--spec",
    "--allow-external-extends",
]
VALUES = [
    "heads.action.num_classes=3",
    "heads.x.y=1",
    "extends=v1",
    "backbone[0].out_channels=1e400",
    "backbone[0].out_channels=8.0",
    "backbone[0].name=training",
    "=",
    "mermaid",
    "svg",
    "dot",
    "3x4x16x16",
    "0x0x0x0",
    "-1",
    "99999999999999999999",
    "values=5",
    "nesting=0",
    "",
    "-",
    "v1x",
    "tiny_resnet",
    "x.svg",
    "out.mmd",
    "out.safetensors",
]


@st.composite
def arguments(draw: st.DrawFn, files: dict[str, Path]) -> list[str]:
    """A command, its positional files, then flags with values, sometimes shuffled."""
    paths = st.sampled_from([*(str(path) for path in files.values()), "v1x", "tiny_resnet"])
    free = st.one_of(st.sampled_from(VALUES), paths, st.text(alphabet="ab-=./[]{}$", max_size=6))
    argv = [*draw(st.sampled_from(COMMANDS)), *draw(st.lists(paths, min_size=1, max_size=2))]
    for _ in range(draw(st.integers(0, 3))):
        argv += [draw(st.sampled_from(FLAGS)), draw(free)]
    if draw(st.booleans()):
        argv = draw(st.permutations(argv))
    return argv


@pytest.fixture
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # default outputs (schema, store, README) land nowhere real
    return tmp_path


@pytest.mark.usefixtures("in_empty_folder")
def test_random_arguments_never_show_a_traceback(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=arguments(files))
    def check(argv: list[str]) -> None:
        start = time.perf_counter()
        code, _, err = _run(argv, capsys)
        seen.append(code)
        assert code in (0, 1, 2), (argv, err)
        assert "Traceback" not in err, (argv, err)
        assert time.perf_counter() - start < 10, argv

    seen: list[int] = []
    check()
    assert {0, 2} <= set(seen)  # the draws reach commands that work and ones that refuse
