"""One rule for a string naming a spec: a bare name is a shipped spec, anything with a folder or
a spec suffix is a path; a local file that shadows a different shipped spec warns."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from video_interpreter import SpecShadowWarning, build_model, load_spec

CONFIGS = Path(__file__).resolve().parent.parent / "architectures" / "configs"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no ./architectures here: names resolve to the packaged specs
    return tmp_path


def test_a_name_is_the_shipped_spec_even_beside_a_local_file(elsewhere: Path) -> None:
    shutil.copy(CONFIGS / "tiny_r2plus1d.yaml", elsewhere / "v1.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_spec("v1").name == "video_interpreter"


def test_a_path_reads_the_local_file_and_warns_when_it_shadows(elsewhere: Path) -> None:
    (elsewhere / "configs").mkdir()
    shutil.copy(CONFIGS / "tiny_r2plus1d.yaml", elsewhere / "configs" / "v1.yaml")
    with pytest.warns(SpecShadowWarning, match=r"pass the name 'v1' for the shipped spec"):
        spec = load_spec("configs/v1.yaml")
    assert spec.name == "tiny_r2plus1d"
    with pytest.warns(SpecShadowWarning) as record:
        build_model("configs/v1.yaml", device="meta")
    assert record[0].filename == __file__  # the warning points at the caller's line


def test_an_identical_local_copy_does_not_warn(elsewhere: Path) -> None:
    (elsewhere / "configs").mkdir()
    shutil.copy(CONFIGS / "v1.yaml", elsewhere / "configs" / "v1.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_spec("configs/v1.yaml").name == "video_interpreter"


def test_a_path_not_found_locally_falls_back_to_the_shipped_folders(elsewhere: Path) -> None:
    assert load_spec("configs/r3d_18.yaml").name == "r3d_18"


def test_a_local_file_by_bare_name_still_loads_with_a_deprecation(elsewhere: Path) -> None:
    shutil.copy(CONFIGS / "tiny_r2plus1d.yaml", elsewhere / "mine.yaml")
    with pytest.deprecated_call(match="pass the path 'mine.yaml'"):
        assert load_spec("mine").name == "tiny_r2plus1d"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_spec("mine.yaml").name == "tiny_r2plus1d"
