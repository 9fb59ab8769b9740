"""Specs generated from a transformers checkpoint's ``config.json``.

The transformers library describes each video model by a ``config.json`` (``model_type`` plus
sizes); its weights follow from that config alone. ``transformers_spec(config)`` writes the spec
of the same architecture at the same sizes, so any depth, width, head count, clip size or label
count of a supported model type converts, not only the published one. A value the layers of this
package cannot reproduce is refused by its key, with the values that would work.

Supported (the video-classification model of each type, as ``architectures`` in the config
names it):

- ``videomae``: ``VideoMAEForVideoClassification``
- ``timesformer``: ``TimesformerForVideoClassification``
- ``vivit``: ``VivitForVideoClassification``
- ``vjepa2``: ``VJEPA2ForVideoClassification``

The weights are renamed by the key map ``key_maps/transformers/<model_type>.yaml``. Nothing here
imports the transformers library: a config is plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = [
    "TRANSFORMERS_MODEL_TYPES",
    "read_transformers_config",
    "transformers_spec",
]

Spec = dict[str, Any]
Node = dict[str, Any]

# transformers' activation names (ACT2FN) -> this package's ViTBlock activations. gelu_fast,
# gelu_new and gelu_pytorch_tanh are the same tanh approximation written three ways (they agree
# to float rounding).
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_python_tanh": "gelu_tanh",
    "quick_gelu": "quick_gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}

_CLASSES = {
    "videomae": "VideoMAEForVideoClassification",
    "timesformer": "TimesformerForVideoClassification",
    "vivit": "VivitForVideoClassification",
    "vjepa2": "VJEPA2ForVideoClassification",
}
TRANSFORMERS_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_CLASSES))
"""The ``model_type`` values whose video classifiers convert."""


class _Config:
    """A config's values with transformers' defaults, refusing values by their key."""

    def __init__(self, raw: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> None:
        self.raw = raw
        self.defaults = defaults
        self.where = where

    def __getitem__(self, key: str) -> Any:
        return self.raw.get(key, self.defaults[key])

    def refuse(self, key: str, valid: str) -> CheckpointError:
        return CheckpointError(
            f"{self.where}: {key}={self[key]!r} is not supported for "
            f"{self.raw.get('model_type')}; supported: {valid}"
        )

    def integer(self, key: str, minimum: int = 1) -> int:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.refuse(key, f"an integer >= {minimum}")
        return value

    def number(self, key: str) -> float:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.refuse(key, "a number >= 0")
        return float(value)

    def pair(self, key: str) -> tuple[int, int]:
        """An integer for both image dimensions, or a list of two."""
        value = self[key]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value, value
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        ):
            return int(value[0]), int(value[1])
        raise self.refuse(key, "an integer >= 1 or a list of two")

    def one_of(self, key: str, *valid: Any) -> Any:
        value = self[key]
        if value not in valid:
            raise self.refuse(key, ", ".join(repr(v) for v in valid))
        return value

    def activation(self, key: str = "hidden_act") -> str:
        value = self[key]
        if value not in _ACTIVATIONS:
            raise self.refuse(key, ", ".join(sorted(_ACTIVATIONS)))
        return _ACTIVATIONS[value]

    def probability(self, key: str) -> float:
        value = self.number(key)
        if value > 1:
            raise self.refuse(key, "a number from 0 to 1")
        return value

    def num_labels(self) -> int:
        labels = self.raw.get("id2label")
        count = len(labels) if isinstance(labels, Mapping) else self.raw.get("num_labels", 2)
        if not isinstance(count, int) or count < 1:
            raise CheckpointError(
                f"{self.where}: {count!r} labels; a video classifier needs at least one "
                "(set id2label or num_labels)"
            )
        return count


_VIDEOMAE = {
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "num_frames": 16,
    "tubelet_size": 2,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "layer_norm_eps": 1e-12,
    "qv_bias": True,
    "use_mean_pooling": True,
}
_TIMESFORMER = {
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "num_frames": 8,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "attention_type": "divided_space_time",
    "drop_path_rate": 0,
}
_VIVIT = {
    "image_size": 224,
    "num_frames": 32,
    "tubelet_size": [2, 16, 16],
    "num_channels": 3,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu_fast",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
}
_VJEPA2 = {
    "patch_size": 16,
    "crop_size": 256,
    "frames_per_clip": 64,
    "tubelet_size": 2,
    "hidden_size": 1024,
    "in_chans": 3,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "drop_path_rate": 0.0,
    "mlp_ratio": 4.0,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "num_pooler_layers": 3,
}


def _heads_divide(c: _Config, width_key: str = "hidden_size") -> tuple[int, int]:
    width, heads = c.integer(width_key), c.integer("num_attention_heads")
    if width % heads:
        raise c.refuse(
            "num_attention_heads",
            f"a divisor of {width_key}={width}, e.g. "
            f"{[n for n in range(1, min(width, 32) + 1) if width % n == 0][-4:]}",
        )
    return width, heads


def _clip_grid(
    c: _Config, frames: int, image: tuple[int, int], tubelet: tuple[int, int, int], keys: str
) -> None:
    """Refuse a clip smaller than one tubelet (the reference would have no tokens)."""
    if frames < tubelet[0] or image[0] < tubelet[1] or image[1] < tubelet[2]:
        raise CheckpointError(
            f"{c.where}: the clip {frames}x{image[0]}x{image[1]} is smaller than one patch "
            f"{list(tubelet)} ({keys})"
        )


def _spec(
    c: _Config,
    *,
    name: str,
    frames: int,
    image: tuple[int, int],
    channels: int,
    backbone: list[Node],
    neck: Node,
    description: str,
) -> Spec:
    return {
        "spec_version": 1,
        "name": name,
        "version": "hf",
        "description": description,
        "init": "vit",
        "input": {"channels": channels, "frames": frames, "height": image[0], "width": image[1]},
        "backbone": backbone,
        "neck": neck,
        "heads": {"action": {"type": "ClassificationHead", "num_classes": c.num_labels()}},
    }


def _tokens(width: int, tubelet: tuple[int, int, int], *, per_frame: bool = False) -> list[Node]:
    """The clip cut into tubelets, each projected to ``width``, as a time-major sequence."""
    embed: Node = {"name": "embed", "type": "TubeletEmbedding", "dim": width}
    embed |= {"tubelet": list(tubelet), "position": "none"}
    if per_frame:
        embed["per_frame"] = True
    return [embed, {"name": "tokens", "type": "Flatten", "start_dim": 0, "end_dim": 2}]


def _dropouts(c: _Config, hidden: str | None, attention: str) -> dict[str, float]:
    """The block's dropout rates, left out where zero (they act in training only)."""
    rates = {
        "dropout": c.probability(hidden) if hidden else 0.0,
        "attention_dropout": c.probability(attention),
    }
    return {key: rate for key, rate in rates.items() if rate}


def _encoder_block(c: _Config, heads: int, qkv_bias: str, **options: object) -> Node:
    """The ``ViTBlock`` of VideoMAE, TimeSformer and ViViT, read from the config's shared keys;
    ``options`` are a model type's own (attention layout, fused qkv)."""
    return {
        "type": "ViTBlock",
        "heads": heads,
        "mlp_dim": c.integer("intermediate_size"),
        **options,
        "qkv_bias": qkv_bias,
        "activation": c.activation(),
        "norm_eps": c.number("layer_norm_eps"),
        **_dropouts(c, "hidden_dropout_prob", "attention_probs_dropout_prob"),
    }


def _blocks(times: int, block: Node, name: str = "blocks", drop_path: float = 0.0) -> Node:
    """``times`` copies of ``block``; with stochastic depth, rising linearly from 0 in the first
    block to ``drop_path`` in the last (as TimeSformer and V-JEPA 2 set it), one node each."""
    if not drop_path:
        return {"name": name, "type": "Repeat", "times": times, "layer": block}
    rates = [drop_path * i / (times - 1) if times > 1 else 0.0 for i in range(times)]
    return {
        "name": name,
        "type": "Sequential",
        "layers": [{**block, "drop_path": r} for r in rates],
    }


def _describe(what: str, c: _Config, width: int, heads: int, clip: str) -> str:
    layers = c.integer("num_hidden_layers")
    return (
        f"{what} from a transformers config: {layers} layers, width {width}, {heads} heads, "
        f"{clip} clips, {c.num_labels()} classes"
    )


def _videomae(c: _Config) -> Spec:
    c.one_of("use_mean_pooling", True)
    width, heads = _heads_divide(c)
    image, patch = c.pair("image_size"), c.pair("patch_size")
    frames, tubelet_frames = c.integer("num_frames"), c.integer("tubelet_size")
    tubelet = (tubelet_frames, patch[0], patch[1])
    _clip_grid(c, frames, image, tubelet, "num_frames, image_size, tubelet_size, patch_size")
    block = _encoder_block(c, heads, "qv" if c.one_of("qv_bias", True, False) else "none")
    backbone = [
        *_tokens(width, tubelet),
        {"name": "pos", "type": "SinusoidalPositions"},
        _blocks(c.integer("num_hidden_layers"), block),
    ]
    neck = {
        "type": "Sequential",
        "layers": [{"type": "TokenPool"}, {"name": "fc_norm", "type": "LayerNorm", "eps": 1e-5}],
    }
    clip = f"{frames}x{image[0]}x{image[1]}"
    return _spec(
        c,
        name="videomae",
        frames=frames,
        image=image,
        channels=c.integer("num_channels"),
        backbone=backbone,
        neck=neck,
        description=_describe("VideoMAE", c, width, heads, clip),
    )


def _timesformer(c: _Config) -> Spec:
    attention = c.one_of("attention_type", "divided_space_time", "joint_space_time")
    width, heads = _heads_divide(c)
    # TimeSformer's layers compute the patch grid as image_size // patch_size: integers only.
    for key in ("image_size", "patch_size"):
        if not isinstance(c[key], int) or isinstance(c[key], bool):
            raise c.refuse(key, "one integer (TimeSformer's layers divide it as a number)")
    size, patch, frames = c.integer("image_size"), c.integer("patch_size"), c.integer("num_frames")
    _clip_grid(c, frames, (size, size), (1, patch, patch), "image_size, patch_size")
    block = _encoder_block(
        c,
        heads,
        "all" if c.one_of("qkv_bias", True, False) else "none",
        attention="divided" if attention == "divided_space_time" else "joint",
        fused_qkv=True,
    )
    backbone = [
        *_tokens(width, (1, patch, patch), per_frame=True),
        {"name": "cls", "type": "AddClassToken"},
        {"name": "pos", "type": "SpaceTimePositions"},
        _blocks(c.integer("num_hidden_layers"), block, drop_path=c.probability("drop_path_rate")),
        {"name": "norm", "type": "LayerNorm", "eps": c.number("layer_norm_eps")},
    ]
    return _spec(
        c,
        name="timesformer",
        frames=frames,
        image=(size, size),
        channels=c.integer("num_channels"),
        backbone=backbone,
        neck={"type": "ClassToken"},
        description=_describe("TimeSformer", c, width, heads, f"{frames}x{size}x{size}"),
    )


def _vivit(c: _Config) -> Spec:
    width, heads = _heads_divide(c)
    image, frames = c.pair("image_size"), c.integer("num_frames")
    tubelet = c["tubelet_size"]
    if not (
        isinstance(tubelet, list | tuple)
        and len(tubelet) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in tubelet)
    ):
        raise c.refuse("tubelet_size", "a list of three integers >= 1 [T, H, W]")
    size = (int(tubelet[0]), int(tubelet[1]), int(tubelet[2]))
    _clip_grid(c, frames, image, size, "num_frames, image_size, tubelet_size")
    block = _encoder_block(c, heads, "all" if c.one_of("qkv_bias", True, False) else "none")
    backbone = [
        *_tokens(width, size),
        {"name": "cls", "type": "AddClassToken"},
        {"name": "pos", "type": "LearnedPositions"},
        _blocks(c.integer("num_hidden_layers"), block),
        {"name": "norm", "type": "LayerNorm", "eps": c.number("layer_norm_eps")},
    ]
    clip = f"{frames}x{image[0]}x{image[1]}"
    return _spec(
        c,
        name="vivit",
        frames=frames,
        image=image,
        channels=c.integer("num_channels"),
        backbone=backbone,
        neck={"type": "ClassToken"},
        description=_describe("ViViT", c, width, heads, clip),
    )


def _vjepa2(c: _Config) -> Spec:
    width, heads = _heads_divide(c)
    for key in ("patch_size", "crop_size"):
        if not isinstance(c[key], int) or isinstance(c[key], bool):
            raise c.refuse(key, "one integer (V-JEPA 2 takes square patches and crops)")
    patch, crop = c.integer("patch_size"), c.integer("crop_size")
    frames, tubelet = c.integer("frames_per_clip"), c.integer("tubelet_size")
    _clip_grid(c, frames, (crop, crop), (tubelet, patch, patch), "frames_per_clip, crop_size")
    ratio = c["mlp_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
        raise c.refuse("mlp_ratio", "a number > 0")
    activation = c.activation()
    eps = c.number("layer_norm_eps")
    block = {
        "type": "ViTBlock",
        "heads": heads,
        "mlp_dim": int(width * ratio),
        "rotary": True,
        "qkv_bias": "all" if c.one_of("qkv_bias", True, False) else "none",
        "activation": activation,
        "norm_eps": eps,
        **_dropouts(c, None, "attention_probs_dropout_prob"),
    }
    # The attentive pooler's own layers: biases always, an MLP 4x wide whatever mlp_ratio says.
    pool_block = {
        "type": "ViTBlock",
        "heads": heads,
        "mlp_dim": 4 * width,
        "activation": activation,
        "norm_eps": eps,
    }
    backbone = [
        *_tokens(width, (tubelet, patch, patch)),
        _blocks(c.integer("num_hidden_layers"), block, drop_path=c.probability("drop_path_rate")),
        {"name": "norm", "type": "LayerNorm", "eps": eps},
    ]
    pooler_layers = c.integer("num_pooler_layers", minimum=0)
    if pooler_layers:
        backbone.append(_blocks(pooler_layers, pool_block, name="pool_blocks"))
    neck = {
        "type": "AttentionPool",
        "heads": heads,
        "mlp_dim": 4 * width,
        "activation": activation,
        "norm_eps": eps,
    }
    return _spec(
        c,
        name="vjepa2",
        frames=frames,
        image=(crop, crop),
        channels=c.integer("in_chans"),
        backbone=backbone,
        neck=neck,
        description=_describe("V-JEPA 2", c, width, heads, f"{frames}x{crop}x{crop}"),
    )


_BUILDERS: dict[str, tuple[Mapping[str, Any], Callable[[_Config], Spec]]] = {
    "videomae": (_VIDEOMAE, _videomae),
    "timesformer": (_TIMESFORMER, _timesformer),
    "vivit": (_VIVIT, _vivit),
    "vjepa2": (_VJEPA2, _vjepa2),
}


def transformers_spec(config: Mapping[str, Any], *, where: str = "config.json") -> Spec:
    """The spec (a plain mapping, ready for ``build_model``) of the transformers video
    classifier that ``config`` (a ``config.json``'s content) describes.

    Keys the config leaves out take transformers' defaults. A ``model_type`` other than
    ``TRANSFORMERS_MODEL_TYPES``, an ``architectures`` entry other than the type's video
    classifier, or a value the layers cannot reproduce raises ``CheckpointError`` naming the
    key and what would be valid; ``where`` names the config in messages.

    Example::

        >>> spec = transformers_spec({"model_type": "vivit", "num_hidden_layers": 2,
        ...                           "num_frames": 4, "image_size": 32,
        ...                           "tubelet_size": [2, 16, 16], "num_labels": 5})
        >>> spec["backbone"][4]["times"], spec["heads"]["action"]["num_classes"]
        (2, 5)
    """
    model_type = config.get("model_type")
    if model_type not in _BUILDERS:
        raise CheckpointError(
            f"{where}: model_type={model_type!r} is not supported; supported: "
            f"{', '.join(TRANSFORMERS_MODEL_TYPES)}"
        )
    wanted = _CLASSES[model_type]
    classes = config.get("architectures") or [wanted]
    if list(classes) != [wanted]:
        raise CheckpointError(
            f"{where}: architectures={list(classes)!r} is not supported for {model_type}; "
            f"supported: [{wanted!r}] (the video classifier; save that model's checkpoint)"
        )
    defaults, build = _BUILDERS[model_type]
    return build(_Config(config, defaults, where))


def read_transformers_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a transformers checkpoint directory, as a dict.

    Examples:
        >>> import json
        >>> from pathlib import Path
        >>> from video_interpreter.zoo import read_transformers_config
        >>> Path("vivit").mkdir()
        >>> _ = Path("vivit/config.json").write_text(json.dumps({"model_type": "vivit"}))
        >>> read_transformers_config("vivit")["model_type"]
        'vivit'
    """
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{directory} has no config.json; a transformers checkpoint directory holds "
            "config.json and model.safetensors (or pytorch_model.bin), as save_pretrained writes"
        )
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} holds {type(loaded).__name__}, expected a JSON object")
    return loaded
