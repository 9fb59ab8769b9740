"""examples/adapt.py's steps: a saved 400-class v1 checkpoint adapted to a 10-class, 8-frame,
128x128 spec and saved into a model store."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from video_interpreter import ModelStore, build_model, load_model, save_model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "adapt.py"


def _example() -> ModuleType:
    found = importlib.util.spec_from_file_location("adapt_example", EXAMPLE)
    assert found is not None
    assert found.loader is not None
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_example_adapts_a_400_class_v1_checkpoint_into_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _example()
    torch.manual_seed(0)
    source_model = build_model("v1")
    source = save_model(source_model, tmp_path / "k400_v1.pth").path
    store = ModelStore(tmp_path / "store")
    spec = example.target_spec(10, 8, 128)
    entry = example.adapt_into_store(source, store, spec, val_clips=1, batch_size=1)

    printed = capsys.readouterr().out
    assert "heads.action.fc.weight (400, 512) -> (10, 512): head 'action' re-initialised" in printed
    assert (entry.name, entry.version) == ("video_interpreter", "v1-10c-8x128")
    assert store.best("video_interpreter", "v1-10c-8x128").file == entry.file
    stored = load_model(entry.path)
    assert tuple(stored.spec.input) == (3, 8, 128, 128)
    # The backbone came across unchanged; only the head is new.
    before, after = source_model.state_dict(), stored.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("backbone."))
    assert after["heads.action.fc.weight"].shape == (10, 512)
    assert entry.metrics["acc"] in (0.0, 1.0)  # evaluated on one 8x128x128 clip
