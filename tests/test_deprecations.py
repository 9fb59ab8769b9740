"""Renamed public names and call forms keep working for one release, with a DeprecationWarning
that names the replacement; giving both the old and the new name is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from video_interpreter import build_model, resume, save_model
from video_interpreter.distributed import (
    consolidate,
    load_sharded,
    load_sharded_model,
    save_sharded,
)


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    save_sharded(build_model("tiny_r2plus1d"), tmp_path / "run", step=7)
    return tmp_path / "run"


def test_resume_takes_the_model_first(tmp_path: Path) -> None:
    model = build_model("tiny_r2plus1d")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_model(model, tmp_path / "c.pth", optimizer=optimizer, epoch=2)
    assert resume(model, tmp_path / "c.pth", optimizer).epoch == 2
    with pytest.deprecated_call(match=r"resume\(model, path, \.\.\.\)"):
        assert resume(tmp_path / "c.pth", model, optimizer).epoch == 2  # type: ignore[arg-type]


def test_load_sharded_takes_the_model_first(sharded: Path) -> None:
    model = build_model("tiny_r2plus1d")
    assert load_sharded(model, sharded).step == 7
    with pytest.deprecated_call(match=r"load_sharded\(model, directory"):
        assert load_sharded(sharded, model).step == 7  # type: ignore[arg-type]


def test_renamed_options_still_work(sharded: Path, tmp_path: Path) -> None:
    model = build_model("tiny_r2plus1d")
    with pytest.deprecated_call(match="check_digests"):
        load_sharded(model, sharded, verify=False)
    with pytest.deprecated_call(match="restore_rng="):
        load_sharded(model, sharded, restore_rng_state=False)
    with pytest.deprecated_call(match="check_digests"):
        consolidate(sharded, tmp_path / "one.pth", verify=True)
    with pytest.deprecated_call(match="check_digests"):
        load_sharded_model(sharded, verify=True)
    with pytest.deprecated_call(match="save_rng"):
        save_sharded(model, tmp_path / "again", rng=False)


def test_old_and_new_name_together_or_unknown_names_are_errors(sharded: Path) -> None:
    model = build_model("tiny_r2plus1d")
    with pytest.raises(TypeError, match="both check_digests= and its deprecated name verify="):
        load_sharded(model, sharded, check_digests=False, verify=False)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        load_sharded(model, sharded, verfy=False)


def test_the_warning_points_at_the_callers_line(sharded: Path) -> None:
    with pytest.deprecated_call() as record:
        load_sharded(sharded, build_model("tiny_r2plus1d"))  # type: ignore[arg-type]
    assert record[0].filename == __file__


def test_summary_source_is_now_model_source() -> None:
    import video_interpreter.summary as summary

    with pytest.deprecated_call(match="ModelSource"):
        assert summary.Source is summary.ModelSource


def test_one_clip_shape_and_one_depth_default() -> None:
    import inspect

    from video_interpreter.diagram import build_diagram, render_diagram
    from video_interpreter.spec import ClipShape
    from video_interpreter.summary import DEFAULT_DEPTH, parse_clip_shape, summarize

    assert isinstance(parse_clip_shape("3x4x8x8"), ClipShape)
    for function in (summarize, build_diagram, render_diagram):
        assert inspect.signature(function).parameters["depth"].default == DEFAULT_DEPTH
