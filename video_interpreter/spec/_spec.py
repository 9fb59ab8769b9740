"""``ArchitectureSpec``: a resolved, validated, immutable spec with a fingerprint; ``load_spec``."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from ..errors import Problem, SpecError
from ..layers import LAYERS, LayerRegistry, SampleType, spec_types
from ._blocks import expand_definitions
from ._compose import Composed, compose
from ._limits import Limits, current_limits, raised_limits
from ._lookup import SPEC_SUFFIXES, find_spec_file, known_spec_names
from ._preprocess import fill_preprocess_defaults
from ._source import SourceMap
from ._validate import schema_problems

__all__ = [
    "ARCHITECTURE_KEYS",
    "ArchitectureSpec",
    "ClipShape",
    "SpecSource",
    "load_spec",
]

# What the fingerprint covers: everything that decides modules, weights and outputs.
ARCHITECTURE_KEYS = ("spec_version", "input", "backbone", "neck", "heads")
_ORDER = (
    "spec_version",
    "name",
    "version",
    "description",
    "init",
    "input",
    "preprocess",
    "backbone",
    "neck",
    "heads",
)


class ClipShape(NamedTuple):
    channels: int
    frames: int
    height: int
    width: int


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _canonical_numbers(value: Any) -> Any:
    """4.0 and 4 are the same architecture."""
    if isinstance(value, dict):
        return {k: _canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True, eq=False)
class ArchitectureSpec:
    """A spec after ``extends``, overrides, interpolation, validation and default filling.

    Immutable: ``to_dict()`` returns a fresh plain copy. Two specs are equal when their resolved
    contents are; ``fingerprint`` hashes only the architecture (not name, version, description,
    init or preprocess), so a checkpoint can prove which architecture its weights belong to;
    ``preprocess_fingerprint`` hashes the preprocess section on its own.
    """

    _data: Mapping[str, Any]
    source: str | None = None
    _smap: SourceMap = field(default_factory=SourceMap, repr=False)

    @classmethod
    def from_resolved(
        cls, data: Mapping[str, Any], *, source: str | None = None, smap: SourceMap | None = None
    ) -> ArchitectureSpec:
        ordered = {k: data[k] for k in _ORDER if k in data}
        return cls(_freeze(ordered), source, smap or SourceMap())  # _freeze copies every container

    # -- contents ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self._data["name"])

    @property
    def version(self) -> str:
        return str(self._data["version"])

    @property
    def description(self) -> str:
        return str(self._data.get("description", ""))

    @property
    def init(self) -> str:
        return str(self._data.get("init", "torch"))

    @property
    def input(self) -> ClipShape:
        clip = self._data["input"]
        return ClipShape(clip["channels"], clip["frames"], clip["height"], clip["width"])

    @property
    def preprocess(self) -> dict[str, Any] | None:
        """The ``preprocess`` section (a fresh plain copy, defaults written out), or None."""
        section = self._data.get("preprocess")
        return None if section is None else dict(_thaw(section))

    @property
    def preprocess_fingerprint(self) -> str | None:
        """sha256 of the preprocess section alone (None without one): the same weights fed
        another way keep their architecture ``fingerprint`` and get another of these."""
        section = self.preprocess
        if section is None:
            return None
        text = json.dumps(_canonical_numbers(section), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(self._data["heads"])

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _thaw(self._data)
        return result

    def architecture(self) -> dict[str, Any]:
        """The part of the spec the fingerprint covers, canonicalised."""
        data = self.to_dict()
        arch: dict[str, Any] = _canonical_numbers({k: data.get(k) for k in ARCHITECTURE_KEYS})
        return arch

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.architecture(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArchitectureSpec) and self.to_dict() == other.to_dict()

    # Immutable: copies may share it (copy.deepcopy of a model, an EMA copy); pickles carry the
    # plain resolved dict (torch.save of a whole model, multiprocessing).
    def __copy__(self) -> ArchitectureSpec:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ArchitectureSpec:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_unpickle_spec, (self.to_dict(), self.source))

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.name, self.version))

    def __repr__(self) -> str:
        return (
            f"ArchitectureSpec(name={self.name!r}, version={self.version!r}, "
            f"fingerprint={self.fingerprint[:12]!r}, source={self.source!r})"
        )

    # -- errors -----------------------------------------------------------------------------
    def locate(self, error: SpecError) -> SpecError:
        """The same problems, with file:line:col filled in from where this spec was written."""
        located: list[Problem] = []
        for p in error.problems:
            if p.file is None:
                p = self._smap.problem(p.message, p.path, value=p.value, hint=p.hint)
            located.append(p)
        return SpecError(located)

    def types(self, registry: LayerRegistry = LAYERS) -> dict[str, SampleType]:
        """The type after the input, the backbone, the neck and each head (``heads.<name>``),
        propagated by the layers' declarations: no module is built, no tensor made."""
        try:
            return spec_types(self._data, registry)
        except SpecError as exc:
            raise self.locate(exc) from None

    def check_shapes(self, registry: LayerRegistry = LAYERS) -> None:
        """Check that every node takes the type the node before it gives."""
        self.types(registry)


SpecSource = str | Path | Mapping[str, Any] | ArchitectureSpec


def _unpickle_spec(data: dict[str, Any], source: str | None) -> ArchitectureSpec:
    return ArchitectureSpec.from_resolved(data, source=source)


def _fill_defaults(value: Any, schema: Mapping[str, Any], registry: LayerRegistry) -> None:
    """Write every omitted parameter's default into the nodes, so the spec says it all."""
    if schema.get("$ref") == "#/$defs/node" and isinstance(value, dict):
        entry = registry.get(value["type"])
        for key, default in entry.defaults().items():
            value.setdefault(key, copy.deepcopy(default))
        for key, param_schema in entry.params.items():
            if key in value:
                _fill_defaults(value[key], param_schema, registry)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _fill_defaults(item, schema["items"], registry)
    for branch in schema.get("anyOf", ()):
        _fill_defaults(value, branch, registry)


_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")


def _resolve_path(source: str | Path) -> Path:
    given = Path(source)
    suffix = given.suffix.lower()
    if given.is_file() and suffix not in SPEC_SUFFIXES:
        if suffix in _CHECKPOINT_SUFFIXES:
            message = (
                "this is a checkpoint, not a spec: `video-interpreter inspect` shows what it "
                "holds, and load_model(path) rebuilds its model"
            )
        else:
            message = f"not a spec file: a spec's name ends in {', '.join(SPEC_SUFFIXES)}"
        raise SpecError([Problem(message, file=str(source))])
    found = find_spec_file(source)
    if found is None and given.is_dir():
        sharded = (given / ".metadata").is_file() and (given / "metadata.json").is_file()
        message = "a folder, not a spec file" + (
            "; it holds a sharded checkpoint, which `video-interpreter consolidate` turns into "
            "one file"
            if sharded
            else ""
        )
        raise SpecError([Problem(message, file=str(source))])
    if found is None:
        names = ", ".join(known_spec_names()) or "none found"
        raise SpecError(
            [
                Problem(
                    f"spec {str(source)!r} not found (looked in the working directory, "
                    f"./architectures and the packaged architectures); known specs: {names}",
                    file=str(source),
                )
            ]
        )
    return found


def _resolve(composed: Composed, where: str | None, registry: LayerRegistry) -> ArchitectureSpec:
    """Validate a composed document and write its defaults out."""
    data, smap = expand_definitions(composed.data, composed.smap, current_limits())
    problems = schema_problems(data, smap, registry)
    if problems:
        raise SpecError(problems)
    root = {"$ref": "#/$defs/node"}
    for node in data["backbone"]:
        _fill_defaults(node, root, registry)
    if data.get("neck") is not None:
        _fill_defaults(data["neck"], root, registry)
    for node in data["heads"].values():
        _fill_defaults(node, root, registry)
    fill_preprocess_defaults(data)
    return ArchitectureSpec.from_resolved(data, source=where, smap=smap)


def load_spec(
    source: SpecSource,
    *,
    overrides: Sequence[str] = (),
    check_shapes: bool = True,
    registry: LayerRegistry = LAYERS,
    limits: Limits | None = None,
    allow_external_extends: bool = False,
) -> ArchitectureSpec:
    """Load, compose, validate and resolve a spec from a path, a spec name, or a mapping.

    Raises ``SpecError`` listing every problem with its ``file:line:col`` and spec path. With
    ``check_shapes`` the clip's type is propagated through every node (pure Python), so a node
    that cannot take what the node before it gives is reported at its line. ``limits`` bounds
    what the spec may ask for (default: ``current_limits()``); ``allow_external_extends`` lets
    ``extends`` read files outside the spec's own folder and the architectures folders.

    Examples:
        >>> from video_interpreter import load_spec
        >>> spec = load_spec("v1")
        >>> spec.name, spec.version, tuple(spec.input)
        ('video_interpreter', 'v1', (3, 16, 112, 112))
        >>> load_spec("v1", overrides=["input.frames=8"]).input.frames
        8
    """
    with raised_limits(limits or current_limits()) as chosen:
        if isinstance(source, ArchitectureSpec):
            if not overrides:
                return source
            source = source.to_dict()
        options: dict[str, Any] = {
            "limits": chosen,
            "allow_external_extends": allow_external_extends,
        }
        if isinstance(source, Mapping):
            spec = _resolve(compose(source, overrides, **options), None, registry)
        else:
            path = _resolve_path(source)
            spec = _resolve(compose(path, overrides, **options), str(path), registry)
        if check_shapes:
            spec.check_shapes(registry)
        return spec
