"""``video-interpreter inspect`` and ``convert``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from video_interpreter.checkpoint import load_model, read_metadata, save_model
from video_interpreter.cli import main

from .test_checkpoint import outputs, tiny_model, tiny_spec


def test_inspect_prints_architecture_metrics_tensors_and_training_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = save_model(
        model, tmp_path / "run.pth", optimizer=optimizer, epoch=3, metrics={"acc": 0.75}
    )
    assert main(["inspect", str(saved.path), "--sha256"]) == 0
    out = capsys.readouterr().out
    assert "architecture    tiny t1" in out
    assert f"fingerprint     {model.spec.fingerprint}" in out
    assert "metrics         acc=0.75" in out
    assert "tensors         9 (1.5 kB)" in out
    assert "training state  optimizer, rng" in out
    assert f"sha256          {saved.sha256}" in out


def test_inspect_json_is_the_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = save_model(tiny_model(), tmp_path / "tiny.safetensors", notes="n")
    assert main(["inspect", str(saved.path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "tiny"
    assert data["notes"] == "n"
    assert data["tensor_count"] == 9
    assert data["training_state"] == []
    assert data["spec"] == tiny_model().spec.to_dict()


def test_inspect_of_an_unsafe_pickle_fails_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    assert main(["inspect", str(path)]) == 1
    assert "refused to unpickle" in capsys.readouterr().err


def test_convert_round_trips_between_the_two_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model()
    saved = save_model(model, tmp_path / "tiny.pth", epoch=5, metrics={"acc": 0.5})
    middle, back = tmp_path / "tiny.safetensors", tmp_path / "back.pth"
    assert main(["convert", str(saved.path), str(middle)]) == 0
    assert main(["convert", str(middle), str(back)]) == 0
    assert "wrote" in capsys.readouterr().out
    torch.testing.assert_close(outputs(load_model(back)), outputs(model))
    meta = read_metadata(back)
    assert (meta.epoch, dict(meta.metrics)) == (5, {"acc": 0.5})
    assert meta.created == read_metadata(saved.path).created


def test_convert_refuses_to_drop_training_state_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = save_model(model, tmp_path / "run.pth", optimizer=optimizer)
    target = tmp_path / "run.safetensors"
    assert main(["convert", str(saved.path), str(target)]) == 1
    assert "--drop-training-state" in capsys.readouterr().err
    assert not target.exists()
    assert main(["convert", "--drop-training-state", str(saved.path), str(target)]) == 0


def test_convert_of_a_plain_state_dict_takes_its_spec(tmp_path: Path) -> None:
    model = tiny_model()
    plain = tmp_path / "plain.pth"
    torch.save(model.state_dict(), plain)
    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(json.dumps(tiny_spec()))
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", str(plain), str(out), "--spec", str(spec_file)]) == 0
    torch.testing.assert_close(outputs(load_model(out)), outputs(model))


def test_convert_with_the_wrong_number_of_paths_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["convert", str(tmp_path / "only_one.pth")])
    with pytest.raises(SystemExit, match="2"):
        main(["convert", "--from", "torchvision", "a.pth", "b.pth"])


@pytest.mark.slow
def test_convert_from_torchvision_gives_torchvisions_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model("r2plus1d_18", weights=None).eval()
    source = tmp_path / "r2plus1d_18_torchvision.pth"
    torch.save(reference.state_dict(), source)
    out = tmp_path / "r2plus1d_18.pth"
    assert main(["convert", "--from", "torchvision", "r2plus1d_18", str(source), str(out)]) == 0
    assert "224 loaded, 0 missing, 0 unexpected" in capsys.readouterr().out
    ours = load_model(out).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), atol=1e-5, rtol=0)
    assert read_metadata(out).notes == (
        "imported from torchvision r2plus1d_18 (r2plus1d_18_torchvision.pth)"
    )
