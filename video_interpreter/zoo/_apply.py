"""Applying a key map to a state dict (import) and reading it backwards (export).

Import: ``transforms`` in order over the working state dict (an output may feed a later
transform; an output nothing consumes is a model key, not renamed), then each source key no
transform consumed is dropped by ``drop``, renamed by the first matching rule, or left
``unmapped``. Export undoes that: rules read backwards for the keys no transform produced,
transforms undone in reverse order, and the result mapped forward again on the meta device,
which must give back exactly the keys and shapes it started from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import KeyMapError
from ..layers import closest_names
from ._keymap import KeyMap, KeyMapSource, Rule, Transform, resolve_key_map
from ._ops import FORWARD, INVERSE, OpError, inverse_problem
from ._templates import InvertedPattern, invert_pattern

__all__ = ["AppliedTransform", "MappedStateDict", "apply_key_map", "export_state_dict"]

Shape = tuple[int, ...]


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class AppliedTransform:
    """One application of a transform: the keys it consumed and produced, with shapes."""

    op: str
    index: int
    sources: tuple[tuple[str, Shape], ...]
    targets: tuple[tuple[str, Shape], ...]

    def __str__(self) -> str:
        def side(keys: tuple[tuple[str, Shape], ...], empty: str) -> str:
            return " + ".join(f"{k} {_shape_text(s)}" for k, s in keys) or empty

        sources = side(self.sources, "(no source tensor)")
        return (
            f"{self.op} (transforms[{self.index}]): {sources} -> {side(self.targets, '(dropped)')}"
        )


@dataclass
class MappedStateDict:
    """A source state dict after a key map: the model's keys, and what happened to each key."""

    state_dict: dict[str, torch.Tensor]
    renamed: dict[str, str] = field(default_factory=dict)  # source key -> target key
    dropped: list[str] = field(default_factory=list)
    transformed: list[AppliedTransform] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # no transform, rule or drop covers them
    notes: list[str] = field(default_factory=list)  # source modules without a counterpart


def _where(t: Transform, key: str) -> str:
    return f"{t.label}, applied to {key!r}"


def _run_forward(
    t: Transform, working: dict[str, torch.Tensor], produced: set[str]
) -> list[AppliedTransform]:
    """Every application of ``t`` to ``working`` (changed in place)."""
    applied: list[AppliedTransform] = []
    if t.pattern is None:  # a fill with a shape: one key, no source
        matches: list[tuple[str, re.Match[str] | None]] = [("", None)]
    else:
        matches = [(k, m) for k in list(working) if (m := t.pattern.search(k)) is not None]
    for key, match in matches:
        if key and key not in working:
            continue  # consumed by an earlier application of this entry
        keeps = t.op in ("fill", "copy")  # the matched key stays for rules or later entries
        consumed = [] if keeps else [key, *(i.expand(match) for i in t.inputs)]
        read = [key] if keeps and key else consumed
        absent = [k for k in read if k not in working]
        if t.op == "drop" and t.like is not None and t.like.expand(match) not in working:
            # export restores the dropped key from this one at this very point: it must be here
            absent.append(t.like.expand(match))
        if absent:
            near = closest_names(absent[0], list(working), n=1)
            raise KeyMapError(
                f"{_where(t, key)}: it needs {absent[0]!r}, which the state dict does not hold"
                + (f" (closest: {near[0]!r})" if near else "")
            )
        outputs = [o.expand(match) for o in t.outputs]
        tensors = [working[k] for k in read]
        try:
            results = FORWARD[t.op](t, tensors)
        except OpError as exc:
            raise KeyMapError(f"{_where(t, key or outputs[0])}: {exc}") from None
        for k in consumed:
            del working[k]
            produced.discard(k)
        for k, tensor in zip(outputs, results, strict=True):
            if k in working:
                raise KeyMapError(
                    f"{_where(t, key or k)}: it produces {k!r}, which the state dict already holds"
                )
            working[k] = tensor
            produced.add(k)
        applied.append(
            AppliedTransform(
                t.op,
                t.index,
                tuple((k, tuple(x.shape)) for k, x in zip(read, tensors, strict=True)),
                tuple((k, tuple(x.shape)) for k, x in zip(outputs, results, strict=True)),
            )
        )
    return applied


def apply_key_map(key_map: KeyMap, state_dict: Mapping[str, torch.Tensor]) -> MappedStateDict:
    r"""``state_dict`` (the source library's) as the model's keys and tensors.

    Never raises for keys it cannot place: they are listed in ``unmapped`` for the caller to
    report with the model's keys (``import_state_dict`` refuses them). A transform that does not
    fit its tensors, or two keys sent to one, raise ``KeyMapError``.

    Examples:
        >>> import torch
        >>> from video_interpreter.zoo import apply_key_map, key_map_from_dict
        >>> km = key_map_from_dict({"source": "mine", "transforms": [{"concat": {
        ...     "from": [r"^(.*)\.q$", r"\1.k", r"\1.v"], "to": r"\1.qkv", "dim": 0}}]})
        >>> parts = {f"attn.{n}": torch.ones(2, 4) for n in "qkv"}
        >>> mapped = apply_key_map(km, {**parts, "stray": torch.zeros(1)})
        >>> mapped.state_dict["attn.qkv"].shape, mapped.unmapped
        (torch.Size([6, 4]), ['stray'])
    """
    working = dict(state_dict)
    produced: set[str] = set()
    target_name = key_map.architecture or "the model"
    out = MappedStateDict(
        {},
        notes=[
            f"{key_map.source} module {name!r} has no counterpart in {target_name}: {why}"
            for name, why in key_map.no_counterpart.items()
        ],
    )
    for t in key_map.transforms:
        out.transformed.extend(_run_forward(t, working, produced))
    origin: dict[str, str] = {}
    for key, tensor in working.items():
        if key in produced:
            target = key
        elif any(p.search(key) for p in key_map.drop):
            out.dropped.append(key)
            continue
        else:
            names = (rule.rename(key) for rule in key_map.rules)
            renamed = next((name for name in names if name is not None), None)
            if renamed is None:
                out.unmapped.append(key)
                continue
            target = renamed
            if target != key:
                out.renamed[key] = target
        if target in out.state_dict:
            raise KeyMapError(
                f"{key_map.source} keys {origin[target]!r} and {key!r} both map to {target!r} "
                f"(key map {key_map.origin})"
            )
        out.state_dict[target] = tensor
        origin[target] = key
    return out


# -- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reversed:
    """A transform read backwards: ``regex`` finds its applications among the model's keys
    (its first output; for a drop, its ``like`` key), ``inverted`` rebuilds the key its pattern
    matched. A drop by shape has no key to find (``regex`` None): its one key is restored."""

    transform: Transform
    inverted: InvertedPattern | None
    regex: re.Pattern[str] | None
    outputs: tuple[re.Pattern[str], ...] = ()  # every key it produces (fill and split too)


def _reversed(t: Transform) -> _Reversed:
    problem = inverse_problem(t)
    if problem is not None:
        raise KeyMapError(f"cannot export through {t.label}: {problem}")
    try:
        if t.pattern is None:  # fill by shape: one literal key
            literal = re.compile(re.escape(t.outputs[0].expand(None)))
            return _Reversed(t, None, literal, (literal,))
        inverted = invert_pattern(t.pattern)
        outputs = tuple(inverted.regex_for(o, every_group=False) for o in t.outputs)
        if t.op == "drop" and t.like is None:  # drop by shape: from names one key
            return _Reversed(t, inverted, None)
        matched = t.like if t.op == "drop" and t.like is not None else t.outputs[0]
        return _Reversed(t, inverted, inverted.regex_for(matched), outputs)
    except ValueError as exc:
        raise KeyMapError(f"cannot export through {t.label}: {exc}") from None


def _applications(
    r: _Reversed, working: Mapping[str, torch.Tensor], movable: set[str]
) -> list[tuple[str, str, re.Match[str] | None]]:
    """(model key found, source key its pattern matched, that forward match) per application."""
    if r.regex is None:
        assert r.inverted is not None
        source = "".join(p for p in r.inverted.key if isinstance(p, str))
        return [("", source, r.inverted.pattern.search(source))]
    found: list[tuple[str, str, re.Match[str] | None]] = []
    # a drop is found by its `like` key, which any key may be; the rest by what they produced
    candidates = list(working) if r.transform.op == "drop" else [k for k in working if k in movable]
    for key in candidates:
        match = r.regex.fullmatch(key)
        if match is None:
            continue
        if r.inverted is None:
            found.append((key, "", None))
            continue
        source = r.inverted.source_key(match)
        forward = r.inverted.pattern.search(source)
        if forward is not None:  # else the regex is wider than what the pattern produces
            found.append((key, source, forward))
    return found


def _run_inverse(
    r: _Reversed, working: dict[str, torch.Tensor], movable: set[str], ruled: set[str]
) -> None:
    """Undo every application of ``r.transform`` found among the ``movable`` keys; a key a rule
    also explains (``ruled``) is left to the rule when the transform cannot undo it."""
    t = r.transform
    for key, source, forward in _applications(r, working, movable):
        if key and key not in working:
            continue  # given back by an earlier application
        if t.op == "fill":  # check the value, then the key goes
            read, removed, restored = [key], [key], []
        elif t.op == "drop":  # the key is filled again, shaped like `like`'s key (which stays)
            read, removed, restored = ([key] if key else []), [], [source]
        else:
            read = [o.expand(forward) for o in t.outputs]
            absent = [k for k in read if k not in working]
            if absent:
                raise KeyMapError(
                    f"cannot export through {t.label}: {key!r} is there but {absent[0]!r}, "
                    "produced with it, is not"
                )
            removed = read
            restored = [source, *(i.expand(forward) for i in t.inputs)]
        try:
            results = INVERSE[t.op](t, [working[k] for k in read])
        except OpError as exc:
            if key in ruled and t.op != "fill":  # a changed fill value is refused, never renamed
                continue
            raise KeyMapError(f"cannot export {key or source!r} through {t.label}: {exc}") from None
        for k in removed:
            del working[k]
            movable.discard(k)
        for k, tensor in zip(restored, results, strict=True):
            if k in working:
                raise KeyMapError(
                    f"cannot export through {t.label}: it gives back {k!r}, which is already there"
                )
            working[k] = tensor
            movable.add(k)


@dataclass(frozen=True)
class _ReversedRule:
    rule: Rule
    inverted: InvertedPattern
    regex: re.Pattern[str]

    @property
    def spelled(self) -> int:
        """How many characters of a key the replacement spells out (not from groups)."""
        return sum(len(p) for p in self.rule.replace.parts if isinstance(p, str))


def _reversed_rules(rules: tuple[Rule, ...]) -> tuple[list[_ReversedRule], list[str]]:
    """The rules that read backwards, and why the others do not."""
    readable: list[_ReversedRule] = []
    reasons: list[str] = []
    for rule in rules:
        try:
            inverted = invert_pattern(rule.pattern)
            readable.append(_ReversedRule(rule, inverted, inverted.regex_for(rule.replace)))
        except ValueError as exc:
            reasons.append(f"{rule.label}: {exc}")
    return readable, reasons


def _rule_source(rules: tuple[Rule, ...], readable: list[_ReversedRule], key: str) -> str | None:
    """The source key a rule renames to ``key``. Where several could (``blocks.0.norm.x`` and
    ``blocks.0.conv.norm.x`` both giving ``stem.norm.x``), the rule that spells out more of
    the key wins: it was written for that key, the wider one for the rest."""
    found: list[tuple[_ReversedRule, str]] = []
    for reader in readable:
        match = reader.regex.fullmatch(key)
        if match is None:
            continue
        source = reader.inverted.source_key(match)
        # the first rule matching the source key must be this one, giving this key back
        first = next((r for r in rules if r.pattern.search(source)), None)
        if first is reader.rule and reader.rule.rename(source) == key:
            found.append((reader, source))
    if not found:
        return None
    return max(found, key=lambda pair: pair[0].spelled)[1]


def _meta(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state_dict.items()}


def export_state_dict(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor], key_map: KeyMapSource
) -> dict[str, torch.Tensor]:
    """The model's weights under the source library's keys and layouts: ``key_map`` backwards.

    Renames are read backwards, concat and split undo each other, reshape goes back to
    ``source_shape``, unsqueeze is squeezed, fill is dropped (refused unless the tensor still
    holds the fill value) and a drop with ``value`` is filled again. A key map with an entry that
    has no inverse (expand, a plain ``drop``, a reshape without ``source_shape``) is refused,
    the entry named. ``key_map`` is a ``KeyMap``, a key-map file or data shaped like one. The
    result is checked by mapping it forward again.

    Examples:
        >>> import torch, torchvision
        >>> from video_interpreter import build_model
        >>> from video_interpreter.zoo import export_state_dict, key_map
        >>> source = export_state_dict(build_model("r3d_18"), key_map("r3d_18", "torchvision"))
        >>> torchvision.models.video.r3d_18().load_state_dict(source)
        <All keys matched successfully>
    """
    key_map = resolve_key_map(key_map)
    state = (
        model_or_state_dict.state_dict()
        if isinstance(model_or_state_dict, nn.Module)
        else dict(model_or_state_dict)
    )
    if key_map.drop:
        patterns = ", ".join(repr(p.pattern) for p in key_map.drop)
        raise KeyMapError(
            f"cannot export through the key map {key_map.origin}: drop [{patterns}] discards "
            "source tensors on import, so export cannot give them back (a drop transform with "
            "value: can)"
        )
    reversed_transforms = [_reversed(t) for t in key_map.transforms]
    produced = {
        k for k in state if any(o.fullmatch(k) for r in reversed_transforms for o in r.outputs)
    }
    working: dict[str, torch.Tensor] = {}
    readable, reasons = _reversed_rules(key_map.rules)
    stuck: list[str] = []
    for key, tensor in state.items():
        if key in produced:
            continue
        source = _rule_source(key_map.rules, readable, key)
        if source is None:
            stuck.append(key)
        else:
            working[source] = tensor
    if stuck:
        why = "; ".join(reasons)
        raise KeyMapError(
            f"cannot export {len(stuck)} key{'s' if len(stuck) > 1 else ''} through the key map "
            f"{key_map.origin}: no rule or transform gives {', '.join(map(repr, stuck[:5]))}"
            + (" ..." if len(stuck) > 5 else "")
            + (f" (rules that cannot be read backwards: {why})" if why else "")
        )
    working.update({k: state[k] for k in state if k in produced})
    movable = set(produced)
    # Keys a transform's output pattern matches that a rule explains too: a transform has the
    # first claim (its outputs are often in a catch-all rule's namespace); the rule the rest.
    ruled = {k: s for k in produced if (s := _rule_source(key_map.rules, readable, k))}
    for r in reversed(reversed_transforms):
        _run_inverse(r, working, movable, set(ruled))
    for key, source in ruled.items():
        if key in working and working[key] is state[key] and source not in working:
            working[source] = working.pop(key)
    _check_round_trip(key_map, working, state)
    return working


def _check_round_trip(
    key_map: KeyMap, exported: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> None:
    """Export must map forward to exactly ``state``'s keys, shapes and dtypes."""
    again = apply_key_map(key_map, _meta(exported))
    problems: list[str] = [f"{k!r} would not be mapped back" for k in again.unmapped]
    for key, tensor in state.items():
        back = again.state_dict.get(key)
        if back is None:
            problems.append(f"{key!r} would not come back")
        elif back.shape != tensor.shape or back.dtype != tensor.dtype:
            problems.append(
                f"{key!r} would come back as {_shape_text(tuple(back.shape))} {back.dtype}, "
                f"not {_shape_text(tuple(tensor.shape))} {tensor.dtype}"
            )
    problems += [f"{k!r} would appear" for k in again.state_dict if k not in state]
    if problems:
        raise KeyMapError(
            f"cannot export through the key map {key_map.origin}: the result does not map back "
            f"to the same state dict: {'; '.join(problems[:5])}"
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        )
