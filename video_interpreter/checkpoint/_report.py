"""``LoadReport``: what loading weights into a model did, key by key, grouped by module; the
``LoadError`` that carries it; and ``spec_diff`` for architectures that do not match."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError
from ..spec import ArchitectureSpec
from ..zoo import AppliedTransform

__all__ = [
    "AdaptedTensor",
    "DtypeMismatch",
    "LoadError",
    "LoadReport",
    "ShapeMismatch",
    "module_group",
    "spec_diff",
]

Shape = tuple[int, ...]

# Keys are grouped by their first two components ("backbone.layer1", "heads.action"): coarse
# enough to read, fine enough to say where a problem is.
_GROUP_DEPTH = 2

# Report categories: how each is labelled, and which are counted on a module's summary line.
_LABELS = {
    "loaded": "loaded",
    "reinitialized": "re-initialised",
    "inflated": "inflated",
    "adapted": "adapted",
    "missing": "missing",
    "mismatched": "shape mismatch",
    "dtype": "dtype mismatch",
    "cast": "cast",
    "remapped": "renamed",
    "transformed": "transformed",
    "unexpected": "unexpected",
    "unmapped": "unmapped",
    "dropped": "dropped",
}
_COUNTED = (
    "loaded",
    "reinitialized",
    "adapted",
    "missing",
    "mismatched",
    "dtype",
    "unexpected",
    "unmapped",
    "dropped",
)


def module_group(key: str) -> str:
    """The group a state-dict key is reported under: its module path, cut to two parts."""
    parts = key.split(".")[:-1] or ["<root>"]
    return ".".join(parts[:_GROUP_DEPTH])


def _first_key(applied: AppliedTransform) -> str:
    """The key a transform is reported under: its first output, else its first input."""
    return (applied.targets or applied.sources)[0][0]


def _shape(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class ShapeMismatch:
    key: str
    checkpoint: Shape
    model: Shape

    def __str__(self) -> str:
        return f"{self.key}: checkpoint {_shape(self.checkpoint)}, model {_shape(self.model)}"


def _dtype(dtype: str) -> str:
    return dtype.removeprefix("torch.")


@dataclass(frozen=True)
class AdaptedTensor:
    """One tensor an ``adapt=True`` load changed: its key, the source's and the model's shapes
    (None: not in the source) and the rule applied, interpolation mode included."""

    key: str
    checkpoint: Shape | None
    model: Shape | None  # None: a source tensor the model has no place for
    rule: str

    def __str__(self) -> str:
        before = "absent" if self.checkpoint is None else _shape(self.checkpoint)
        after = "absent" if self.model is None else _shape(self.model)
        return f"{self.key} {before} -> {after}: {self.rule}"


@dataclass(frozen=True)
class DtypeMismatch:
    """A key whose checkpoint tensor cannot become the model's: not both floating point (an
    integer weight, a float step counter), so no cast keeps its meaning."""

    key: str
    checkpoint: str
    model: str

    def __str__(self) -> str:
        return f"{self.key}: checkpoint {_dtype(self.checkpoint)}, model {_dtype(self.model)}"


@dataclass(frozen=True)
class LoadReport:
    """The outcome of ``load_weights``: every key of model and source accounted for.

    ``loaded``: model keys given a tensor from the source; ``missing``: model keys the source
    lacks; ``unexpected``: source keys the model lacks; ``mismatched``: keys in both with
    different shapes; ``dtype_mismatched``: keys in both whose dtypes are not both floating
    point (refused like shapes); ``cast``: keys whose floating-point tensor was converted to
    the model's floating dtype (``dtypes`` gives both); ``reinitialized``: model keys declared
    by ``reinit`` (initialised afresh,
    any source tensor ignored); ``remapped``: source key -> model key renames by ``key_map``;
    ``dropped``: source keys dropped on purpose (``key_map`` returned None, or ``reinit``
    replaced them); ``inflated``: 2D weights inflated to 3D (``inflate=``); ``adapted``: every
    tensor an ``adapt=True`` load resampled, inflated, re-initialised, recomputed or dropped,
    with its rule (heads re-initialised are also under ``reinitialized``, source heads the
    model lacks under ``dropped``); ``notes``: prefixes stripped and
    other adjustments; ``spec_diff``: how the model's architecture differs from the
    checkpoint's, when it does and that was declared. An import through a key map adds
    ``transformed`` (each transform applied: op, keys and shapes) and ``unmapped`` (source keys
    no transform, rule or drop covers; refused like unexpected keys); ``hints`` gives a key the
    closest name that might have been meant.
    """

    source: str
    target: str
    loaded: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[ShapeMismatch, ...] = ()
    dtype_mismatched: tuple[DtypeMismatch, ...] = ()
    cast: tuple[str, ...] = ()
    # key -> (checkpoint dtype, model dtype) of the cast keys
    dtypes: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    reinitialized: tuple[str, ...] = ()
    remapped: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    inflated: tuple[str, ...] = ()
    adapted: tuple[AdaptedTensor, ...] = ()
    notes: tuple[str, ...] = ()
    # key -> (checkpoint shape, model shape), for printing
    shapes: Mapping[str, tuple[Shape | None, Shape | None]] = field(
        default_factory=dict, repr=False
    )
    spec_diff: str | None = None
    transformed: tuple[AppliedTransform, ...] = ()
    unmapped: tuple[str, ...] = ()
    hints: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected, unmapped or of the wrong shape or dtype."""
        return not (
            self.missing
            or self.unexpected
            or self.unmapped
            or self.mismatched
            or self.dtype_mismatched
        )

    def _adapted_only(self) -> list[str]:
        """Adapted keys not already counted as re-initialised or dropped: each tensor once."""
        listed = {*self.reinitialized, *self.dropped}
        return [a.key for a in self.adapted if a.key not in listed]

    def by_module(self) -> dict[str, dict[str, list[str]]]:
        """``{group: {category: [keys]}}``, groups in model order, then source-only groups."""
        groups: dict[str, dict[str, list[str]]] = {}
        adapted = set(self._adapted_only())
        for kind, keys in (
            ("loaded", [key for key in self.loaded if key not in adapted]),
            ("reinitialized", self.reinitialized),
            ("inflated", self.inflated),
            ("adapted", self._adapted_only()),
            ("missing", self.missing),
            ("mismatched", [m.key for m in self.mismatched]),
            ("dtype", [m.key for m in self.dtype_mismatched]),
            ("cast", self.cast),
            ("remapped", list(self.remapped.values())),
            ("transformed", [_first_key(t) for t in self.transformed]),
            ("unexpected", self.unexpected),
            ("unmapped", self.unmapped),
            ("dropped", self.dropped),
        ):
            for key in keys:
                groups.setdefault(module_group(key), {}).setdefault(kind, []).append(key)
        return groups

    def summary(self) -> str:
        """One line: source -> target and how many keys fell in each category. A tensor an
        ``adapt`` load changed counts once: re-initialised or dropped when its rule did that,
        else adapted (not also loaded)."""
        mismatches = len(self.mismatched)
        adapted = set(self._adapted_only())
        counts = [
            f"{sum(key not in adapted for key in self.loaded)} loaded",
            f"{len(self.missing)} missing",
            f"{len(self.unexpected)} unexpected",
            f"{mismatches} shape mismatch{'es' if mismatches != 1 else ''}",
        ]
        dtypes = len(self.dtype_mismatched)
        for count, label in (
            (dtypes, f"dtype mismatch{'es' if dtypes != 1 else ''}"),
            (len(self.cast), "cast"),
            (len(self.reinitialized), "re-initialised"),
            (len(self.remapped), "renamed"),
            (len(self.transformed), "transformed"),
            (len(self.unmapped), "unmapped"),
            (len(self.inflated), "inflated"),
            (len(self._adapted_only()), "adapted"),
            (len(self.dropped), "dropped"),
        ):
            if count:
                counts.append(f"{count} {label}")
        return f"{self.source} -> {self.target}: " + ", ".join(counts)

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  note: {note}" for note in self.notes]
        mismatch: dict[str, ShapeMismatch | DtypeMismatch] = {m.key: m for m in self.mismatched}
        mismatch.update({m.key: m for m in self.dtype_mismatched})
        renamed_from = {target: source for source, target in self.remapped.items()}
        transforms: dict[str, list[AppliedTransform]] = {}
        for applied in self.transformed:
            transforms.setdefault(_first_key(applied), []).append(applied)
        adapted = {a.key: a for a in self.adapted}
        groups = self.by_module()
        width = max((len(g) for g in groups), default=0)
        for group, kinds in groups.items():
            tally = ", ".join(
                f"{len(keys)} {_LABELS[kind]}" for kind, keys in kinds.items() if kind in _COUNTED
            )
            lines.append(f"  {group:<{width}}  {tally}".rstrip())
            for kind, keys in kinds.items():
                if kind == "transformed":
                    for key in dict.fromkeys(keys):
                        lines += [f"      {'transformed':<15} {t}" for t in transforms[key]]
                    continue
                for key in keys:
                    detail = self._detail(kind, key, mismatch, renamed_from, adapted)
                    if detail:
                        hint = self.hints.get(key)
                        lines.append(
                            f"      {_LABELS[kind]:<15} {detail}" + (f" ({hint})" if hint else "")
                        )
        if self.spec_diff:
            lines.append("  the architecture differs from the checkpoint's:")
            lines += [f"    {line}" for line in self.spec_diff.splitlines()]
        return "\n".join(lines)

    def _detail(
        self,
        kind: str,
        key: str,
        mismatch: Mapping[str, ShapeMismatch | DtypeMismatch],
        renamed_from: Mapping[str, str],
        adapted: Mapping[str, AdaptedTensor],
    ) -> str | None:
        source_shape, model_shape = self.shapes.get(key, (None, None))
        if kind == "loaded":
            return None  # counted, not listed
        if key in adapted and kind in ("adapted", "reinitialized", "dropped"):
            return str(adapted[key])
        if kind in ("mismatched", "dtype"):
            return str(mismatch[key])
        if kind == "cast":
            source_dtype, model_dtype = self.dtypes[key]
            return f"{key} {_dtype(source_dtype)} -> {_dtype(model_dtype)}"
        if kind == "remapped":
            return f"{renamed_from[key]} -> {key}"
        if kind == "reinitialized":
            if source_shape is None:
                return f"{key} {_shape(model_shape or ())} (not in the checkpoint)"
            return f"{key} checkpoint {_shape(source_shape)} -> model {_shape(model_shape or ())}"
        if kind == "inflated":
            return f"{key} {_shape(source_shape or ())} -> {_shape(model_shape or ())}"
        shape = model_shape if kind == "missing" else source_shape
        return f"{key} {_shape(shape)}" if shape is not None else key


class LoadError(CheckpointError):
    """Weights do not fit the model under the requested strictness; ``.report`` says how."""

    def __init__(self, report: LoadReport, hint: str = "", *, headline: str = "") -> None:
        self.report = report
        # The headline comes first: a report can run to hundreds of lines.
        text = f"weights do not fit the model{f' ({headline})' if headline else ''}: {report}"
        if hint:
            text += f"\n{hint}"
        super().__init__(text)


def _as_yaml(spec: ArchitectureSpec | Mapping[str, Any]) -> str:
    if not isinstance(spec, ArchitectureSpec):
        spec = ArchitectureSpec.from_resolved(dict(spec))
    return spec.to_yaml()


def spec_diff(
    a: ArchitectureSpec | Mapping[str, Any],
    b: ArchitectureSpec | Mapping[str, Any],
    a_label: str = "checkpoint",
    b_label: str = "model",
) -> str:
    """A unified diff of two specs' YAML (empty when they are the same).

    Examples:
        >>> from video_interpreter import load_spec
        >>> from video_interpreter.checkpoint import spec_diff
        >>> a = load_spec("tiny_r2plus1d")
        >>> b = load_spec("tiny_r2plus1d", overrides=["heads.action.num_classes=7"])
        >>> "num_classes" in spec_diff(a, b)
        True
    """
    lines = difflib.unified_diff(
        _as_yaml(a).splitlines(), _as_yaml(b).splitlines(), a_label, b_label, lineterm=""
    )
    return "\n".join(lines)
