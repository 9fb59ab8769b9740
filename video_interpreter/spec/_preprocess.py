"""The ``preprocess`` section of a spec: how a raw clip becomes what the model was trained on.

Optional, validated by the same JSON Schema as the rest of the spec (unknown and missing keys
are reported at their ``file:line:column``), resolved with its defaults written out, and kept
out of the architecture fingerprint: the same weights can be fed differently without becoming
another architecture. ``video_interpreter.model.Preprocess`` applies it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import Problem
from ._source import SourceMap

__all__ = [
    "PREPROCESS_DEFAULTS",
    "PREPROCESS_SCHEMA",
    "fill_preprocess_defaults",
    "preprocess_problems",
]

_NUMBERS = {"type": "array", "items": {"type": "number"}, "minItems": 1}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
_SIZE = {
    "anyOf": [
        _POSITIVE_INT,
        {"type": "array", "items": _POSITIVE_INT, "minItems": 2, "maxItems": 2},
    ],
    "description": "an integer or [height, width]",
}

PREPROCESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "how a raw clip is prepared for the model: values, colours, sizes, frames",
    "properties": {
        "mean": {**_NUMBERS, "description": "per channel, on the 0-1 scale"},
        "std": {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0},
            "minItems": 1,
            "description": "per channel, on the 0-1 scale",
        },
        "value_range": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 2,
            "maxItems": 2,
            "description": "[low, high] of a float clip's raw values (a uint8 clip is 0-255)",
        },
        "channel_order": {"enum": ["RGB", "BGR"], "description": "the order the model expects"},
        "frames": {**_POSITIVE_INT, "description": "frames per clip the reference samples"},
        "temporal_stride": {**_POSITIVE_INT, "description": "take every n-th frame"},
        "fps": {"type": "number", "exclusiveMinimum": 0, "description": "frames per second"},
        "resize": {
            **_SIZE,
            "description": "an integer (the shorter side, aspect kept) or [height, width]",
        },
        "crop": {**_SIZE, "description": "centre crop: an integer (square) or [height, width]"},
        "interpolation": {"enum": ["bilinear"], "description": "the resize's interpolation"},
        "antialias": {"type": "boolean", "description": "low-pass filter when shrinking"},
        "uint8_resize": {
            "enum": ["round", "native", "float"],
            "description": (
                "how a uint8 clip is resized: round (in float32, rounded to whole 0-255 levels: "
                "torchvision.transforms.functional, the video weights' transforms), native "
                "(torch's uint8 kernel on the CPU, round elsewhere: torchvision.transforms.v2 "
                "and transformers on x86 and ARM CPUs), float (scaled to 0-1 first, never "
                "rounded: pytorchvideo)"
            ),
        },
        "crop_offset": {
            "enum": ["round", "floor", "ceil"],
            "description": (
                "how half of an odd margin is rounded: round (half to even: torchvision), "
                "floor (transformers), ceil (pytorchvideo's uniform crop)"
            ),
        },
    },
    "required": ["mean", "std"],
    "additionalProperties": False,
}

# Written into every resolved spec that has a preprocess section, so it says it all.
PREPROCESS_DEFAULTS: Mapping[str, Any] = {
    "value_range": [0, 1],
    "channel_order": "RGB",
    "interpolation": "bilinear",
    "antialias": True,
    "uint8_resize": "round",
    "crop_offset": "round",
}


def fill_preprocess_defaults(data: dict[str, Any]) -> None:
    """Write the omitted keys' defaults into ``data["preprocess"]``, keys in the schema's order."""
    section = data.get("preprocess")
    if isinstance(section, dict):
        for key, default in PREPROCESS_DEFAULTS.items():
            section.setdefault(key, list(default) if isinstance(default, list) else default)
        order = list(PREPROCESS_SCHEMA["properties"])
        data["preprocess"] = dict(sorted(section.items(), key=lambda item: order.index(item[0])))


def preprocess_problems(data: Any, smap: SourceMap) -> Iterator[Problem]:
    """What the schema cannot say: one value per input channel, a stride or a rate (not both),
    and a value range that is not empty. A crop other than the input size is allowed: a spec
    whose input is overridden smaller (a quick run) keeps its reference's preprocessing."""
    section = data.get("preprocess") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return
    clip = data.get("input")
    clip = clip if isinstance(clip, dict) else {}  # a section given on its own has no input
    channels = clip.get("channels")
    for key in ("mean", "std"):
        values = section.get(key)
        if isinstance(values, list) and isinstance(channels, int) and len(values) != channels:
            yield smap.problem(
                f"{key} has {len(values)} values, the input has {channels} channels; give one "
                "value per channel",
                ("preprocess", key),
                value=values,
            )
    mean, std = section.get("mean"), section.get("std")
    if (
        isinstance(mean, list)
        and isinstance(std, list)
        and len(mean) != len(std)
        and not isinstance(channels, int)  # with channels, said above
    ):
        yield smap.problem(
            f"mean has {len(mean)} values and std {len(std)}; give one of each per channel",
            ("preprocess", "std"),
            value=std,
        )
    if "temporal_stride" in section and "fps" in section:
        yield smap.problem(
            "give temporal_stride or fps, not both: a clip is sampled by one of them",
            ("preprocess", "fps"),
            key=True,
        )
    bounds = section.get("value_range")
    if isinstance(bounds, list) and len(bounds) == 2 and not bounds[0] < bounds[1]:
        yield smap.problem(
            f"value_range {bounds} is empty; write [low, high] with low < high, e.g. [0, 1]",
            ("preprocess", "value_range"),
            value=bounds,
        )
