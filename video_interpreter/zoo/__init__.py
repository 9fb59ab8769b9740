"""Weight import from other libraries' state dicts through declarative key maps, and export back.

A key map (``key_maps/<source>/<architecture>.yaml`` shipped with the package, or a user's file)
says how each source tensor becomes a tensor of the spec ``architecture``::

    architecture: videomae_base
    source: transformers
    transforms:            # in order, before renames: tensors joined, cut, reshaped, filled
      - concat: {from: ['^blocks\\.(\\d+)\\.q\\.weight$', 'blocks.\\1.k.weight',
                       'blocks.\\1.v.weight'], to: 'backbone.blocks.\\1.attn.qkv.weight', dim: 0}
    rules:                 # the first rule whose regex matches a source key renames it
      - {match: '^fc\\.(.*)$', replace: 'heads.action.fc.\\1'}
    drop: []               # regexes of source keys with no counterpart (dropped, reported)
    no_counterpart: {}     # source modules without weights that the target lacks -> why

No per-architecture code: a new architecture is a new file, checked against
``key_map.schema.json``. Transforms with an inverse make a key map reversible
(``export_state_dict``). For the transformers library the spec itself is generated from a
checkpoint's ``config.json`` (``transformers_spec``) and the key map is per model type
(``key_maps/transformers/videomae.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import KeyMapError, RegistryError
from ..layers import closest_names
from ._apply import AppliedTransform, MappedStateDict, apply_key_map, export_state_dict
from ._catalog import ZOO, Accuracy, Library, ZooModel, list_models, model_info
from ._keymap import OPERATIONS as OPERATIONS
from ._keymap import KeyMap, KeyMapSource, key_map_from_dict, read_key_map
from ._keymap import Rule as Rule
from ._keymap import Transform as Transform
from ._keymap import key_map_schema as key_map_schema
from ._keymap import resolve_key_map as resolve_key_map
from ._transformers import TRANSFORMERS_MODEL_TYPES, read_transformers_config, transformers_spec

__all__ = [
    "TRANSFORMERS_MODEL_TYPES",
    "ZOO",
    "Accuracy",
    "AppliedTransform",
    "KeyMap",
    "KeyMapSource",
    "Library",
    "MappedStateDict",
    "ZooModel",
    "apply_key_map",
    "convert_state_dict",
    "export_state_dict",
    "key_map",
    "key_map_from_dict",
    "known_key_maps",
    "list_models",
    "model_info",
    "read_key_map",
    "read_transformers_config",
    "transformers_spec",
]

_KEY_MAPS = Path(__file__).resolve().parent / "key_maps"


def known_key_maps(source: str = "torchvision") -> list[str]:
    """The architectures with a key map shipped for ``source`` (``torchvision``,
    ``pytorchvideo``; ``transformers``: model types).

    Examples:
        >>> from video_interpreter.zoo import known_key_maps
        >>> "r3d_18" in known_key_maps("torchvision"), "x3d_s" in known_key_maps("pytorchvideo")
        (True, True)
    """
    return sorted(p.stem for p in (_KEY_MAPS / source).glob("*.yaml"))


def key_map(architecture: str, source: str = "torchvision") -> KeyMap:
    """The key map shipped with the package for ``source``'s ``architecture``; an unknown one
    is a ``RegistryError`` naming the closest known.

    Examples:
        >>> from video_interpreter.zoo import key_map
        >>> key_map("r3d_18").source
        'torchvision'
    """
    path = _KEY_MAPS / source / f"{architecture}.yaml"
    if not path.is_file():
        known = known_key_maps(source)
        near = closest_names(architecture, known)
        raise RegistryError(
            f"no {source} key map for {architecture!r}; known: {', '.join(known) or 'none'}"
            + (f" (did you mean {near[0]}?)" if near else "")
        )
    return read_key_map(path)


def convert_state_dict(
    architecture: str, state_dict: Mapping[str, torch.Tensor], source: str = "torchvision"
) -> MappedStateDict:
    """``state_dict`` mapped by the shipped key map of ``source``'s ``architecture``; refused
    (``KeyMapError``) when a source key is covered by no transform, rule or drop.

    Examples:
        >>> import torch
        >>> import torchvision
        >>> from video_interpreter import build_model
        >>> from video_interpreter.zoo import convert_state_dict
        >>> with torch.device("meta"):
        ...     reference = torchvision.models.video.r3d_18()
        >>> mapped = convert_state_dict("r3d_18", reference.state_dict())
        >>> model = build_model("r3d_18", device="meta")
        >>> model.load_state_dict(mapped.state_dict, strict=True, assign=True)
        <All keys matched successfully>
    """
    rules = key_map(architecture, source)
    mapped = apply_key_map(rules, state_dict)
    if mapped.unmapped:
        shown = ", ".join(repr(k) for k in mapped.unmapped[:5])
        more = f" and {len(mapped.unmapped) - 5} more" if len(mapped.unmapped) > 5 else ""
        raise KeyMapError(
            f"{source} keys {shown}{more} match no rule of the {architecture} key map "
            f"({rules.origin})"
        )
    return mapped
