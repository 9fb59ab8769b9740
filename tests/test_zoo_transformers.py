"""The transformers library's video classifiers convert to specs of this package with their
weights: the spec generated from the checkpoint's config.json, the weights renamed by the model
type's key map, the same parameter count and the same outputs (eval, within 1e-5).

Nothing is downloaded: each reference is built from a small config with torch's random
initialisation and written with ``save_pretrained``, as a user's checkpoint directory would be.
transformers takes clips as (B, T, C, H, W); this package as (B, C, T, H, W).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import (
    PreTrainedConfig,
    PreTrainedModel,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VivitConfig,
    VivitForVideoClassification,
    VJEPA2Config,
    VJEPA2ForVideoClassification,
)

from video_interpreter import CheckpointError, build_model, load_model
from video_interpreter.checkpoint import import_transformers
from video_interpreter.cli import main
from video_interpreter.errors import KeyMapError
from video_interpreter.spec import load_spec
from video_interpreter.zoo import (
    TRANSFORMERS_MODEL_TYPES,
    convert_state_dict,
    export_state_dict,
    key_map,
    transformers_spec,
)

Factory = Callable[..., tuple[PreTrainedConfig, type[PreTrainedModel]]]


def videomae(**sizes: Any) -> tuple[PreTrainedConfig, type[PreTrainedModel]]:
    return VideoMAEConfig(**sizes), VideoMAEForVideoClassification


def timesformer(**sizes: Any) -> tuple[PreTrainedConfig, type[PreTrainedModel]]:
    return TimesformerConfig(**sizes), TimesformerForVideoClassification


def vivit(**sizes: Any) -> tuple[PreTrainedConfig, type[PreTrainedModel]]:
    return VivitConfig(**sizes), VivitForVideoClassification


def vjepa2(**sizes: Any) -> tuple[PreTrainedConfig, type[PreTrainedModel]]:
    config = VJEPA2Config(
        pred_hidden_size=12, pred_num_attention_heads=2, pred_num_hidden_layers=1, **sizes
    )
    return config, VJEPA2ForVideoClassification


WIDTH = {"hidden_size": 24, "num_attention_heads": 2, "num_hidden_layers": 2}
# Per model type: a small config, then one of another depth, width, head count, clip length and
# image size that no other test uses.
CONFIGS: dict[str, tuple[Factory, dict[str, Any], dict[str, Any]]] = {
    "videomae": (
        videomae,
        {**WIDTH, "intermediate_size": 40, "image_size": 32, "patch_size": 8, "num_frames": 4},
        {
            "hidden_size": 36,
            "num_attention_heads": 3,
            "num_hidden_layers": 3,
            "intermediate_size": 20,
            "image_size": [48, 40],
            "patch_size": 8,
            "num_frames": 6,
            "tubelet_size": 3,
            "qv_bias": False,
            "hidden_act": "gelu_new",
        },
    ),
    "timesformer": (
        timesformer,
        {**WIDTH, "intermediate_size": 40, "image_size": 32, "patch_size": 8, "num_frames": 4},
        {
            "hidden_size": 30,
            "num_attention_heads": 5,
            "num_hidden_layers": 3,
            "intermediate_size": 16,
            "image_size": 36,
            "patch_size": 12,
            "num_frames": 5,
            "qkv_bias": False,
        },
    ),
    "vivit": (
        vivit,
        {
            **WIDTH,
            "intermediate_size": 40,
            "image_size": 32,
            "tubelet_size": [2, 8, 8],
            "num_frames": 4,
        },
        {
            "hidden_size": 40,
            "num_attention_heads": 4,
            "num_hidden_layers": 1,
            "intermediate_size": 48,
            "image_size": [24, 40],
            "tubelet_size": [3, 8, 10],
            "num_frames": 7,
            "hidden_act": "gelu",
        },
    ),
    "vjepa2": (
        vjepa2,
        {**WIDTH, "crop_size": 32, "patch_size": 8, "frames_per_clip": 4, "num_pooler_layers": 1},
        {
            "hidden_size": 48,
            "num_attention_heads": 3,  # heads of 16: rotary thirds of 4, 4 channels unturned
            "num_hidden_layers": 3,
            "mlp_ratio": 2.5,
            "crop_size": 40,
            "patch_size": 10,
            "frames_per_clip": 6,
            "tubelet_size": 3,
            "num_pooler_layers": 2,
            "drop_path_rate": 0.1,
        },
    ),
}


def parameter_count(model: nn.Module, *, skip: str | None = None) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if skip is None or skip not in n)


def reference(factory: Factory, num_labels: int = 5, **sizes: Any) -> PreTrainedModel:
    config, cls = factory(num_labels=num_labels, **sizes)
    torch.manual_seed(0)
    model: PreTrainedModel = cls(config)
    nn.Module.eval(model)
    return model


def clip_of(model: PreTrainedModel) -> torch.Tensor:
    """A batch of two random clips (B, C, T, H, W) at the size the reference's config names."""
    c = model.config
    if c.model_type == "vjepa2":
        frames, size, channels = c.frames_per_clip, c.crop_size, c.in_chans
    else:
        frames, size, channels = c.num_frames, c.image_size, c.num_channels
    height, width = (size, size) if isinstance(size, int) else size
    return torch.randn(2, channels, frames, height, width)


def check_converted(model: PreTrainedModel, tmp_path: Path) -> None:
    """save_pretrained, convert with import_transformers, load: same parameters and outputs."""
    source = tmp_path / "hf"
    model.save_pretrained(source)
    saved, report = import_transformers(source, tmp_path / "ours.safetensors")
    assert report.ok
    ours = load_model(saved.path).eval()
    # V-JEPA 2's classifier carries its pretraining predictor, which classification never runs.
    assert parameter_count(ours) == parameter_count(model, skip="vjepa2.predictor.")
    clip = clip_of(model)
    with torch.no_grad():
        expected = model(clip.transpose(1, 2)).logits
        actual = ours(clip)["action"]
    assert expected.abs().max() > 0  # a real comparison, not of two zero tensors
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_a_small_transformers_model_converts_with_its_outputs(
    model_type: str, tmp_path: Path
) -> None:
    factory, small, _ = CONFIGS[model_type]
    check_converted(reference(factory, **small), tmp_path)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_another_size_of_each_model_type_converts_with_its_outputs(
    model_type: str, tmp_path: Path
) -> None:
    factory, _, other = CONFIGS[model_type]
    check_converted(reference(factory, num_labels=7, **other), tmp_path)


def test_timesformer_with_joint_attention_converts(tmp_path: Path) -> None:
    factory, small, _ = CONFIGS["timesformer"]
    check_converted(reference(factory, **small, attention_type="joint_space_time"), tmp_path)


def test_stochastic_depth_rises_linearly_over_the_blocks() -> None:
    config = {"model_type": "timesformer", "num_hidden_layers": 3, "drop_path_rate": 0.2}
    blocks = transformers_spec(config)["backbone"][4]
    assert blocks["type"] == "Sequential"
    assert [layer["drop_path"] for layer in blocks["layers"]] == [0.0, 0.1, 0.2]
    model = build_model(transformers_spec(config), device="meta")
    assert model.get_submodule("backbone.blocks.2").drop_path == 0.2


def test_a_live_models_state_dict_names_import_too() -> None:
    """save_pretrained writes the hub's names (VideoMAE's q_bias, ViViT's encoder.layer); a live
    model's state_dict() has transformers' module names. The key maps take both."""
    for model_type in ("videomae", "vivit"):
        factory, small, _ = CONFIGS[model_type]
        model = reference(factory, **small)
        config = {**model.config.to_dict(), "architectures": [type(model).__name__]}
        ours = build_model(transformers_spec(config)).eval()
        mapped = convert_state_dict(model_type, model.state_dict(), source="transformers")
        ours.load_state_dict(mapped.state_dict, strict=True)
        clip = clip_of(model)
        with torch.no_grad():
            torch.testing.assert_close(
                ours(clip)["action"], model(clip.transpose(1, 2)).logits, rtol=0, atol=1e-5
            )


def test_the_command_line_converts_a_checkpoint_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    factory, small, _ = CONFIGS["vivit"]
    model = reference(factory, **small)
    model.save_pretrained(tmp_path / "hf")
    out = tmp_path / "vivit.pth"
    assert main(["convert", "--from", "transformers", str(tmp_path / "hf"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 missing, 0 unexpected" in printed
    assert f"wrote {out}" in printed
    clip = clip_of(model)
    with torch.no_grad():
        torch.testing.assert_close(
            load_model(out).eval()(clip)["action"],
            model(clip.transpose(1, 2)).logits,
            rtol=0,
            atol=1e-5,
        )


def test_a_pytorch_model_bin_directory_converts(tmp_path: Path) -> None:
    factory, small, _ = CONFIGS["videomae"]
    model = reference(factory, **small)
    model.save_pretrained(tmp_path / "hf")
    weights = load_file(tmp_path / "hf" / "model.safetensors")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(weights, tmp_path / "hf" / "pytorch_model.bin")
    saved, report = import_transformers(tmp_path / "hf", tmp_path / "ours.pth")
    assert "pytorch_model.bin" in report.source
    clip = clip_of(model)
    with torch.no_grad():
        torch.testing.assert_close(
            load_model(saved.path).eval()(clip)["action"],
            model(clip.transpose(1, 2)).logits,
            rtol=0,
            atol=1e-5,
        )


def test_v_jepa_2s_predictor_is_dropped_and_reported(tmp_path: Path) -> None:
    factory, small, _ = CONFIGS["vjepa2"]
    reference(factory, **small).save_pretrained(tmp_path / "hf")
    _, report = import_transformers(tmp_path / "hf", tmp_path / "ours.pth")
    assert report.dropped
    assert all(key.startswith("vjepa2.predictor.") for key in report.dropped)


@pytest.mark.parametrize("model_type", ["timesformer", "videomae", "vivit"])
def test_a_converted_model_exports_back_to_the_files_names_bit_for_bit(
    model_type: str, tmp_path: Path
) -> None:
    factory, small, _ = CONFIGS[model_type]
    reference(factory, **small).save_pretrained(tmp_path / "hf")
    saved, _ = import_transformers(tmp_path / "hf", tmp_path / "ours.safetensors")
    exported = export_state_dict(load_model(saved.path), key_map(model_type, "transformers"))
    written = load_file(tmp_path / "hf" / "model.safetensors")
    assert sorted(exported) == sorted(written)
    for key, tensor in written.items():
        assert torch.equal(exported[key], tensor), key


def test_v_jepa_2_does_not_export_back_without_its_predictor() -> None:
    with pytest.raises(KeyMapError, match=r"drop .*vjepa2.*predictor.* discards source tensors"):
        export_state_dict(
            build_model("vjepa2_vitl", device="meta"), key_map("vjepa2", "transformers")
        )


# -- refusals -----------------------------------------------------------------------------------


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_type": "bert"}, r"model_type='bert' is not supported; supported: timesformer"),
        (
            {"model_type": "videomae", "architectures": ["VideoMAEForPreTraining"]},
            r"architectures=\['VideoMAEForPreTraining'\] is not supported for videomae",
        ),
        (
            {"model_type": "videomae", "use_mean_pooling": False},
            r"use_mean_pooling=False is not supported for videomae; supported: True",
        ),
        (
            {"model_type": "timesformer", "attention_type": "space_only"},
            r"attention_type='space_only' is not supported.*divided_space_time",
        ),
        (
            {"model_type": "timesformer", "image_size": [224, 224]},
            r"image_size=\[224, 224\] is not supported for timesformer; supported: one integer",
        ),
        (
            {"model_type": "vivit", "hidden_act": "gelu_10"},
            r"hidden_act='gelu_10' is not supported for vivit; supported: gelu, gelu_fast",
        ),
        (
            {"model_type": "vivit", "hidden_size": 30, "num_attention_heads": 4},
            r"num_attention_heads=4 is not supported for vivit; supported: a divisor of "
            r"hidden_size=30",
        ),
        (
            {"model_type": "vjepa2", "drop_path_rate": 1.5},
            r"drop_path_rate=1.5 is not supported for vjepa2; supported: a number from 0 to 1",
        ),
        (
            {"model_type": "vivit", "num_frames": 1},
            r"the clip 1x224x224 is smaller than one patch \[2, 16, 16\]",
        ),
        ({"model_type": "vivit", "id2label": {}}, r"0 labels; a video classifier needs"),
        (
            {"model_type": "videomae", "hidden_dropout_prob": 2},
            r"hidden_dropout_prob=2 is not supported for videomae; supported: a number from 0 to 1",
        ),
        (
            {"model_type": "vivit", "tubelet_size": 16},
            r"tubelet_size=16 is not supported for vivit; supported: a list of three integers",
        ),
    ],
)
def test_unsupported_config_values_are_refused_by_name(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    folder = write_config(tmp_path, config)
    with pytest.raises(CheckpointError, match=message) as caught:
        import_transformers(folder, tmp_path / "out.pth")
    assert str(folder / "config.json") in str(caught.value)
    assert not (tmp_path / "out.pth").exists()


def test_a_directory_without_config_or_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"is not a directory; pass the folder"):
        import_transformers(tmp_path / "missing", tmp_path / "out.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no config.json"):
        import_transformers(tmp_path / "empty", tmp_path / "out.pth")
    folder = write_config(tmp_path, {"model_type": "vivit"})
    with pytest.raises(CheckpointError, match=r"holds no weights: expected one of model.safe"):
        import_transformers(folder, tmp_path / "out.pth")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    factory, small, _ = CONFIGS["vivit"]
    reference(factory, **small).save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text(encoding="utf-8"))
    config["num_hidden_layers"] = 3  # one more layer than the weights hold
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"missing"):
        import_transformers(tmp_path / "hf", tmp_path / "out.pth")


# -- the zoo's specs at transformers' default configs ---------------------------------------------

# The zoo's specs: each model type's default config (V-JEPA 2's predictor, which the classifier
# never runs, at a small size).
DEFAULTS: dict[str, Factory] = {
    "videomae_base": videomae,
    "timesformer_base": timesformer,
    "vivit_b": vivit,
    "vjepa2_vitl": vjepa2,
}


def _architecture(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("input", "backbone", "neck", "heads", "init")}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_a_zoo_spec_is_what_the_default_config_generates(name: str) -> None:
    factory = DEFAULTS[name]
    config, cls = factory(num_labels=400)
    generated = transformers_spec({**config.to_dict(), "architectures": [cls.__name__]})
    committed = load_spec(name).to_dict()
    assert _architecture(committed) == _architecture(load_spec(generated).to_dict())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_a_zoo_spec_has_the_parameters_of_the_default_model(name: str) -> None:
    factory = DEFAULTS[name]
    config, cls = factory(num_labels=400)
    with torch.device("meta"):
        model = cls(config)
    ours = build_model(name, device="meta")
    assert parameter_count(ours) == parameter_count(model, skip="vjepa2.predictor.")


def test_every_supported_model_type_has_a_key_map_and_a_test() -> None:
    assert sorted(CONFIGS) == list(TRANSFORMERS_MODEL_TYPES)
