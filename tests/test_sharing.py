"""Sharing a model: model cards whose front matter parses and whose figures are the summary's,
Hub-style directories that load back bit-identically in a fresh process (from a directory and
from a pre-filled Hugging Face cache, offline), refused when the config is another architecture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import tiny_spec
from video_interpreter import (
    CheckpointError,
    ModelStore,
    SpecError,
    build_model,
    from_pretrained,
    save_model,
    save_pretrained,
    summarize,
    write_model_card,
)
from video_interpreter.cli import main
from video_interpreter.sharing import CONFIG_NAME, WEIGHTS_NAME

ROOT = Path(__file__).resolve().parents[1]


def _front_matter(card: Path) -> dict[str, Any]:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    end = text.index("\n---\n", 4)
    data = yaml.safe_load(text[4:end])
    assert isinstance(data, dict)
    return data


def _fed_spec() -> dict[str, Any]:
    spec = tiny_spec(name="fed")
    spec["preprocess"] = {"mean": [0.45] * 3, "std": [0.225] * 3, "resize": 18, "crop": 16}
    return spec


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(_fed_spec())
    path = tmp_path / "fed.pth"
    save_model(
        model,
        path,
        epoch=7,
        step=70,
        loss=0.5,
        metrics={"acc": 0.75, "top5": 1.0},
        notes="trained on MovingSquares",
        monitor=("acc", "max"),
    )
    return path


def test_card_front_matter_parses_and_its_figures_are_the_summarys(
    checkpoint: Path, tmp_path: Path
) -> None:
    out = write_model_card(checkpoint, tmp_path / "cards" / "fed.md", license="apache-2.0")
    summary = summarize(checkpoint, depth=2)  # the depth the card lists
    meta = _front_matter(out)
    assert meta["library_name"] == "video_interpreter"
    assert meta["pipeline_tag"] == "video-classification"
    assert "video-classification" in meta["tags"]
    assert meta["license"] == "apache-2.0"
    assert meta["metrics"] == ["acc", "top5"]
    assert meta["fingerprint"] == summary.fingerprint
    assert meta["parameters"] == summary.total_params
    assert meta["macs"] == summary.macs
    text = out.read_text(encoding="utf-8")
    assert f"| parameters | {summary.total_params:,} |" in text
    assert f"| MACs per clip | {summary.macs:,} |" in text
    assert summary.to_markdown().strip() in text
    assert "| epoch | 7 |" in text
    assert "| acc | 0.75 |" in text
    assert "trained on MovingSquares" in text
    assert "| `crop` | `16` |" in text  # the preprocessing table
    assert "![fed v1](fed.svg)" in text
    assert (out.parent / "fed.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_card_of_a_spec_has_no_license_or_training_state(tmp_path: Path) -> None:
    out = write_model_card("tiny_r2plus1d", tmp_path / "tiny.md")
    meta = _front_matter(out)
    assert "license" not in meta
    assert "metrics" not in meta
    assert "no training state recorded" in out.read_text(encoding="utf-8")


def test_card_command_writes_card_and_diagram(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "card.md"
    assert main(["card", str(checkpoint), str(out), "--license", "mit"]) == 0
    assert _front_matter(out)["license"] == "mit"
    assert (tmp_path / "card.svg").is_file()
    assert main(["card", str(checkpoint), str(tmp_path / "missing" / "card.md")]) == 2


def test_store_writes_a_card_beside_each_saved_model_on_request(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model = build_model(_fed_spec())
    entry = store.save(model, metrics={"acc": 0.5}, epoch=1, notes="first run", card=True)
    card = store.card_path(entry)
    assert card == tmp_path / "store" / "cards" / f"{Path(entry.file).stem}.md"
    assert _front_matter(card)["sha256"] == entry.sha256
    assert "first run" in card.read_text(encoding="utf-8")
    assert store.verify() == []  # the cards folder is not among the store's files
    plain = store.save(model, metrics={"acc": 0.6}, epoch=2)
    assert not store.card_path(plain).exists()


_RUN = textwrap.dedent(
    """\
    import sys, torch
    from video_interpreter import from_pretrained
    model = from_pretrained(sys.argv[1]).eval()
    with torch.inference_mode():
        outputs = model(torch.load(sys.argv[2]))
    torch.save(dict(outputs), sys.argv[3])
    """
)


def _outputs_in_fresh_process(
    source: str, clip: Path, tmp_path: Path, env: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    out = tmp_path / "outputs.pt"
    # The same thread count as this process: another count sums floats in another order.
    threads = str(torch.get_num_threads())
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads, **(env or {})}
    subprocess.run(
        [sys.executable, "-c", _RUN, source, str(clip), str(out)],
        check=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    loaded: dict[str, torch.Tensor] = torch.load(out)
    return loaded


def _round_trip(spec: Any, clip_shape: tuple[int, ...], tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(spec).eval()
    directory = save_pretrained(model, tmp_path / "model", license="apache-2.0")
    assert sorted(p.name for p in directory.iterdir()) == [
        "README.md",
        "config.json",
        "diagram.svg",
        "model.safetensors",
    ]
    assert json.loads((directory / CONFIG_NAME).read_text()) == model.spec.to_dict()
    clip = torch.randn(clip_shape, generator=torch.Generator().manual_seed(1))
    torch.save(clip, tmp_path / "clip.pt")
    with torch.inference_mode():
        expected = model(clip)
    got = _outputs_in_fresh_process(str(directory), tmp_path / "clip.pt", tmp_path)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(got[name], value), name


@pytest.mark.slow
def test_v1_round_trips_through_a_directory_bit_identically(tmp_path: Path) -> None:
    _round_trip("v1", (1, 3, 8, 32, 32), tmp_path)


@pytest.mark.slow
def test_a_zoo_model_round_trips_through_a_directory_bit_identically(tmp_path: Path) -> None:
    _round_trip("x3d_xs", (1, 3, 4, 160, 160), tmp_path)


def _fill_hub_cache(directory: Path, cache: Path, repo_id: str) -> None:
    """The layout huggingface_hub's cache gives a downloaded snapshot."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    shutil.copytree(directory, storage / "snapshots" / commit)


def test_from_a_prefilled_hub_cache_offline_gives_the_same_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(_fed_spec()).eval()
    directory = save_pretrained(model, tmp_path / "model")
    _fill_hub_cache(directory, tmp_path / "hub", "org/fed")
    clip = torch.randn(2, 3, 4, 16, 16)
    torch.save(clip, tmp_path / "clip.pt")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    got = _outputs_in_fresh_process("org/fed", tmp_path / "clip.pt", tmp_path, env)
    with torch.inference_mode():
        assert torch.equal(got["action"], model(clip)["action"])
    loaded = from_pretrained("org/fed", cache_dir=tmp_path / "hub", local_files_only=True)
    assert loaded.spec == model.spec


def test_a_repo_missing_from_the_cache_offline_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"cannot get org/absent from the Hub: .*offline"):
        from_pretrained("org/absent", cache_dir=tmp_path, local_files_only=True)


def _saved_directory(tmp_path: Path) -> Path:
    return save_pretrained(build_model(_fed_spec()), tmp_path / "model")


def test_a_config_edited_to_another_architecture_is_refused_with_the_diff(
    tmp_path: Path,
) -> None:
    directory = _saved_directory(tmp_path)
    config = json.loads((directory / CONFIG_NAME).read_text())
    config["heads"]["action"]["num_classes"] = 7
    (directory / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="describes architecture") as caught:
        from_pretrained(directory)
    message = str(caught.value)
    assert "--- model.safetensors" in message
    assert "+++ config.json" in message
    assert "-  action: {type: ClassificationHead, num_classes: 5" in message
    assert "+  action: {type: ClassificationHead, num_classes: 7" in message


def test_a_config_with_other_preprocessing_keeps_the_weights(tmp_path: Path) -> None:
    directory = _saved_directory(tmp_path)
    config = json.loads((directory / CONFIG_NAME).read_text())
    config["preprocess"]["mean"] = [0.5, 0.5, 0.5]
    (directory / CONFIG_NAME).write_text(json.dumps(config))
    model = from_pretrained(directory)
    assert model.spec.preprocess is not None
    assert model.spec.preprocess["mean"] == [0.5, 0.5, 0.5]


def test_an_unknown_preprocess_key_in_the_config_is_located(tmp_path: Path) -> None:
    directory = _saved_directory(tmp_path)
    config = json.loads((directory / CONFIG_NAME).read_text())
    config["preprocess"]["sdt"] = [0.2, 0.2, 0.2]
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    with pytest.raises(SpecError, match=r"config\.json:\d+:\d+: .*unknown key 'sdt'"):
        from_pretrained(directory)


def test_changed_weights_fail_the_recorded_sha256(tmp_path: Path) -> None:
    directory = _saved_directory(tmp_path)
    weights = directory / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit of the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        from_pretrained(directory)


def test_a_directory_without_config_lists_what_it_holds(tmp_path: Path) -> None:
    directory = _saved_directory(tmp_path)
    (directory / CONFIG_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"has no config\.json \(it holds README\.md"):
        from_pretrained(directory)
    with pytest.raises(CheckpointError, match="neither a model directory"):
        from_pretrained(tmp_path / "nowhere")


def test_pretrained_command_carries_the_checkpoints_training_record(
    checkpoint: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "shared"
    assert main(["pretrained", str(checkpoint), str(directory), "--license", "mit"]) == 0
    meta = _front_matter(directory / "README.md")
    assert meta["metrics"] == ["acc", "top5"]
    assert meta["license"] == "mit"
    text = (directory / "README.md").read_text(encoding="utf-8")
    assert "| epoch | 7 |" in text
    assert "trained on MovingSquares" in text
    assert main(["pretrained", str(checkpoint), str(checkpoint)]) == 1  # a file, not a folder


def test_without_graphviz_the_card_inlines_a_mermaid_drawing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` to be found
    out = write_model_card(tiny_spec(), tmp_path / "tiny.md")
    text = out.read_text(encoding="utf-8")
    assert "```mermaid\n---\ntitle: tiny v1\n---\nflowchart TB" in text
    assert _front_matter(out)["model_name"] == "tiny"
    assert not (tmp_path / "tiny.svg").exists()
