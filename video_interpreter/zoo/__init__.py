"""Weight import from other libraries' state dicts through declarative key-mapping rules.

A rule file ``key_maps/<source>/<architecture>.yaml`` (shipped with the package) says how each
source key becomes a key of the spec ``architectures/configs/<architecture>.yaml``::

    architecture: r3d_18
    source: torchvision
    rules:                 # first rule whose regex matches a source key renames it
      - {match: '^fc\\.(.*)$', replace: 'heads.action.fc.\\1'}
      - {match: '^(.*)$', replace: 'backbone.\\1'}
    drop: []               # regexes of source keys with no counterpart (dropped, reported)

No per-key code: a new architecture is a new rule file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import CheckpointError, RegistryError
from ..layers import closest_names
from ._catalog import ZOO, Accuracy, Library, ZooModel, list_models, model_info

__all__ = [
    "ZOO",
    "Accuracy",
    "KeyMap",
    "Library",
    "MappedStateDict",
    "ZooModel",
    "convert_state_dict",
    "key_map",
    "known_key_maps",
    "list_models",
    "model_info",
]

_KEY_MAPS = Path(__file__).resolve().parent / "key_maps"


@dataclass(frozen=True)
class KeyMap:
    architecture: str
    source: str
    rules: tuple[tuple[re.Pattern[str], str], ...]
    drop: tuple[re.Pattern[str], ...] = ()

    def target_key(self, key: str) -> str | None:
        """The key in this package's model, or None when the key is dropped."""
        if any(p.search(key) for p in self.drop):
            return None
        for pattern, replacement in self.rules:
            if pattern.search(key):
                return pattern.sub(replacement, key)
        raise CheckpointError(
            f"{self.source} key {key!r} matches no rule of the {self.architecture} key map"
        )


@dataclass
class MappedStateDict:
    state_dict: dict[str, torch.Tensor]
    renamed: dict[str, str] = field(default_factory=dict)  # source key -> target key
    dropped: list[str] = field(default_factory=list)


def known_key_maps(source: str = "torchvision") -> list[str]:
    """The architectures with a shipped key map from ``source``'s state dicts.

    Examples:
        >>> from video_interpreter.zoo import known_key_maps
        >>> "r3d_18" in known_key_maps("torchvision"), "x3d_s" in known_key_maps("pytorchvideo")
        (True, True)
    """
    return sorted(p.stem for p in (_KEY_MAPS / source).glob("*.yaml"))


def key_map(architecture: str, source: str = "torchvision") -> KeyMap:
    """The key map that renames ``source``'s state-dict keys for ``architecture``'s spec; an
    unknown one is a ``RegistryError`` naming the closest known.

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
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return KeyMap(
        architecture=raw["architecture"],
        source=raw["source"],
        rules=tuple((re.compile(r["match"]), r["replace"]) for r in raw.get("rules", [])),
        drop=tuple(re.compile(p) for p in raw.get("drop", [])),
    )


def convert_state_dict(
    architecture: str, state_dict: Mapping[str, torch.Tensor], source: str = "torchvision"
) -> MappedStateDict:
    """Rename ``state_dict``'s keys to those of the spec ``architecture`` by its rule file.

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
    out = MappedStateDict({})
    for key, tensor in state_dict.items():
        target = rules.target_key(key)
        if target is None:
            out.dropped.append(key)
            continue
        if target in out.state_dict:
            raise CheckpointError(
                f"{source} keys {_source_of(out, target)!r} and {key!r} both map to {target!r}"
            )
        out.state_dict[target] = tensor
        if target != key:
            out.renamed[key] = target
    return out


def _source_of(mapped: MappedStateDict, target: str) -> str:
    return next((s for s, t in mapped.renamed.items() if t == target), target)
