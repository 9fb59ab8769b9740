"""The README's five-minute tour runs as written: its Python blocks in order, with its YAML
block as ``tiny.yaml``, and its validation error as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from video_interpreter.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def tour() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow  # builds and runs full-size v1 once on the CPU
def test_the_tour_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    section = tour()
    (yaml_block,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    (tmp_path / "tiny.yaml").write_text(yaml_block, encoding="utf-8")
    namespace: dict[str, object] = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL):
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["list_models"]("r*") == ["r2plus1d_18", "r2plus1d_r50", "r3d_18"]  # type: ignore[operator]
    assert (tmp_path / "v1.svg").is_file()
    assert (tmp_path / "models" / "saved_models" / "tiny_v1_acc_0.95.pth").is_file()

    # The error shown for output_size: 0 is the one printed.
    (tmp_path / "tiny.yaml").write_text(
        yaml_block.replace("output_size: 1", "output_size: 0"), encoding="utf-8"
    )
    capsys.readouterr()
    assert main(["validate", "tiny.yaml"]) == 2
    (shown,) = re.findall(r"\$ video-interpreter validate tiny.yaml\n(.*)\n", section)
    assert capsys.readouterr().err.strip() == shown.replace("/home/me", str(Path.cwd()))
