"""Key patterns and key templates, and how a pattern is read backwards for export.

A key map matches source keys with regexes and names the keys it produces with templates that
refer to the regex's groups (``\\1``, ``\\g<name>``). Export reads that backwards: a template
becomes a regex (each group stands for what the source pattern's group matched), and the source
pattern becomes a template of its groups. Only patterns whose every wildcard sits inside a
capturing group can be read backwards; anything else is refused with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["InvertedPattern", "Ref", "Template", "invert_pattern"]


@dataclass(frozen=True)
class Ref:
    """A reference to a group of the entry's pattern: its number or its name."""

    group: int | str


Part = str | Ref


def _parse(text: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()

    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            literal.append(char)
            i += 1
            continue
        if i + 1 == len(text):
            raise ValueError("a template cannot end with a backslash")
        following = text[i + 1]
        if following.isdigit():
            end = i + 2 if i + 2 < len(text) and not text[i + 2].isdigit() else i + 3
            end = min(end, len(text))
            flush()
            parts.append(Ref(int(text[i + 1 : end])))
            i = end
        elif following == "g":
            close = text.find(">", i)
            if not text.startswith("<", i + 2) or close < 0:
                raise ValueError("write a group reference as \\g<1> or \\g<name>")
            name = text[i + 3 : close]
            flush()
            parts.append(Ref(int(name) if name.isdigit() else name))
            i = close + 1
        elif following == "\\":
            literal.append("\\")
            i += 2
        else:
            raise ValueError(
                f"unknown escape \\{following}: a template is a key, not a regex (write '.' "
                "for a dot); it knows \\1, \\g<name> and \\\\"
            )
    flush()
    return tuple(parts)


@dataclass(frozen=True)
class Template:
    """A key with references to the groups of a pattern (``backbone.blocks.\\1.attn``)."""

    text: str
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text``; ``ValueError`` says what is wrong with it."""
        return cls(text, _parse(text))

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(p for p in self.parts if isinstance(p, Ref))

    def check_against(self, pattern: re.Pattern[str] | None) -> str | None:
        """Why the references cannot be filled from ``pattern``'s groups, or None."""
        for ref in self.refs:
            if pattern is None:
                return "it refers to a group, but its entry has no pattern to take groups from"
            if isinstance(ref.group, int) and not 0 < ref.group <= pattern.groups:
                count = pattern.groups
                return (
                    f"\\{ref.group} refers to group {ref.group}, but '{pattern.pattern}' has "
                    f"{count} group{'s' if count != 1 else ''}"
                )
            if isinstance(ref.group, str) and ref.group not in pattern.groupindex:
                known = ", ".join(pattern.groupindex) or "none"
                return f"\\g<{ref.group}> names no group of '{pattern.pattern}' (named: {known})"
        return None

    def expand(self, match: re.Match[str] | None) -> str:
        """The key this template names for ``match`` (an unmatched group gives '')."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif match is not None:
                out.append(match.group(part.group) or "")
        return "".join(out)


@dataclass(frozen=True)
class InvertedPattern:
    """A source pattern read backwards: the key as a template of its top-level groups, and the
    sub-pattern each group matched, to recognise the group's text in a produced key."""

    pattern: re.Pattern[str]
    key: tuple[Part, ...]
    groups: Mapping[int, str]

    def number(self, ref: Ref) -> int:
        if isinstance(ref.group, int):
            return ref.group
        return self.pattern.groupindex[ref.group]

    def regex_for(self, template: Template, *, every_group: bool = True) -> re.Pattern[str]:
        """A regex that matches exactly the keys ``template`` produces from this pattern's
        matches; ``ValueError`` when it uses a group that cannot be read back, or (with
        ``every_group``) loses one, so that the source key could not be rebuilt from it."""
        out: list[str] = []
        seen: set[int] = set()
        for part in template.parts:
            if isinstance(part, str):
                out.append(re.escape(part))
                continue
            number = self.number(part)
            if number not in self.groups:
                raise ValueError(
                    f"'{template.text}' uses group {number}, which is inside another group of "
                    f"'{self.pattern.pattern}'; refer to the outer group instead"
                )
            if number in seen:
                out.append(f"(?P=_g{number})")
            else:
                seen.add(number)
                out.append(f"(?P<_g{number}>{self.groups[number]})")
        lost = sorted(n for n in set(self.groups) - seen if _literal(self.groups[n]) is None)
        if lost and every_group:
            raise ValueError(
                f"'{template.text}' does not use group {lost[0]} of '{self.pattern.pattern}', "
                "so the source key cannot be rebuilt from it"
            )
        return re.compile("".join(out))

    def source_key(self, match: re.Match[str]) -> str:
        """The source key whose groups ``match`` (of ``regex_for``) recovered; a group the
        template does not use matched the one text it can (``(weight)``)."""
        out: list[str] = []
        for part in self.key:
            if isinstance(part, str):
                out.append(part)
                continue
            number = self.number(part)
            text = match.groupdict().get(f"_g{number}")
            out.append(text if text is not None else _literal(self.groups[number]) or "")
        return "".join(out)


def _literal(body: str) -> str | None:
    """The one text a group's pattern matches when it is plain (``weight``, ``norm\\.0``)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            if i + 1 == len(body) or body[i + 1].isalnum():
                return None
            out.append(body[i + 1])
            i += 2
            continue
        if char in _WILDCARDS or char == "(":
            return None
        out.append(char)
        i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    """The index of the ``)`` closing the group opened at ``start``."""
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _closing_class(text, i)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced parentheses")  # re.compile has already refused this


def _capturing(body: str) -> int:
    """How many capturing groups ``body`` (a group's inside) opens."""
    count = 0
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _closing_class(body, i)
        elif char == "(" and (not body.startswith("?", i + 1) or body.startswith("?P<", i + 1)):
            count += 1
        i += 1
    return count


def _closing_class(text: str, start: int) -> int:
    """The index of the ``]`` closing the character class opened at ``start``."""
    i = start + 1
    if i < len(text) and text[i] == "^":
        i += 1
    if i < len(text) and text[i] == "]":
        i += 1
    while i < len(text) and text[i] != "]":
        i += 2 if text[i] == "\\" else 1
    return i


_WILDCARDS = ".^$*+?{}[]|)"


def invert_pattern(pattern: re.Pattern[str]) -> InvertedPattern:
    """``pattern`` read backwards, or ``ValueError`` saying why it cannot be.

    It must be anchored (``^...$``) and hold every wildcard inside a capturing group:
    ``^blocks\\.(\\d+)\\.(.*)$`` reads back as ``blocks.\\1.\\2``.
    """
    text = pattern.pattern
    if not text.startswith("^"):
        raise ValueError(f"'{text}' is not anchored: start it with ^ (and end it with $)")
    key: list[Part] = []
    literal: list[str] = []
    groups: dict[int, str] = {}
    number = 0
    i = 1
    while i < len(text):
        char = text[i]
        if char == "$" and i == len(text) - 1:
            break
        if char == "\\":
            following = text[i + 1]
            if following.isalnum():
                raise ValueError(
                    f"\\{following} in '{text}' stands for more than one key outside a group; "
                    "put it in a capturing group"
                )
            literal.append(following)
            i += 2
            continue
        if char == "(":
            close = _closing(text, i)
            body = text[i + 1 : close]
            if body.startswith("?P<"):
                body = body[body.index(">") + 1 :]
            elif body.startswith("?"):
                raise ValueError(
                    f"the group ({body}) in '{text}' does not capture; make it a capturing group"
                )
            if close + 1 < len(text) and text[close + 1] in "*+?{":
                raise ValueError(f"a repeated group in '{text}' cannot be read back")
            if re.search(r"\\\d|\(\?P=", body):
                raise ValueError(f"a back-reference inside a group of {text!r} cannot be read back")
            number += 1
            groups[number] = body
            if literal:
                key.append("".join(literal))
                literal.clear()
            key.append(Ref(number))
            number += _capturing(body)
            i = close + 1
            continue
        if char in _WILDCARDS:
            raise ValueError(
                f"{char!r} in '{text}' stands for more than one key outside a group; "
                "put it in a capturing group (or escape it)"
            )
        literal.append(char)
        i += 1
    else:
        raise ValueError(f"'{text}' is not anchored: end it with $")
    if literal:
        key.append("".join(literal))
    return InvertedPattern(pattern, tuple(key), groups)
