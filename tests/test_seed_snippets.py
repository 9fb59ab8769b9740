"""The plain PyTorch snippets of models/README.md run as written: a state dict saved, then
``VideoInterpreter()`` + ``load_state_dict``; and the training-metadata dict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from video_interpreter import VideoInterpreter, build_model, load_model

README = Path(__file__).resolve().parent.parent / "models" / "README.md"


def plain_pytorch_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Plain PyTorch", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_holds_both_snippets() -> None:
    blocks = plain_pytorch_blocks()
    assert len(blocks) == 2
    assert "VideoInterpreter()" in blocks[0]
    assert "load_state_dict(torch.load(" in blocks[0]
    assert '"optimizer_state_dict"' in blocks[1]
    assert '"epoch"' in blocks[1]


@pytest.mark.slow  # the default spec is full-size v1 (31.5 M parameters)
def test_snippets_run_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "saved_models").mkdir(parents=True)
    namespace: dict[str, object] = {}
    for block in plain_pytorch_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    model = namespace["model"]
    assert isinstance(model, VideoInterpreter)
    assert model.spec.name == "video_interpreter"
    assert model.spec.version == "v1"
    assert namespace["epoch"] == 12
    # The loaded weights are the saved ones, and the training dict loads through load_model too.
    saved = tmp_path / "models" / "saved_models" / "video_interpreter_v1_acc_0.95.pth"
    state = torch.load(saved)
    reloaded = load_model(
        tmp_path / "models" / "saved_models" / "video_interpreter_v1_epoch_0012.pth", spec="v1"
    )
    for key, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, state[key]), key


def test_default_spec_is_v1() -> None:
    model = VideoInterpreter(device="meta")
    assert model.spec.fingerprint == build_model("v1", device="meta").spec.fingerprint


def test_options_are_build_models() -> None:
    model = VideoInterpreter("tiny_r2plus1d", overrides=["heads.action.num_classes=3"])
    assert model(torch.zeros(1, 3, 8, 32, 32))["action"].shape == (1, 3)


def test_parts_constructor_is_deprecated_but_works() -> None:
    built = build_model("tiny_r2plus1d", device="meta")
    with pytest.deprecated_call(match="from_parts"):
        old = VideoInterpreter(built.spec, built.backbone, built.neck, dict(built.heads))
    assert old.spec is built.spec
    with pytest.raises(TypeError, match="from_parts"):
        VideoInterpreter(built.spec, bogus=1)
