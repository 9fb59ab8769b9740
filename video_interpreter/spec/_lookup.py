"""Where spec files are found. The rule, one for every place a spec is named (``build_model``,
``load_spec``, ``VideoInterpreter``, ``extends``, ``load_model(spec=...)``, the CLI):

- A **name** is a string with no folder separator and no spec suffix (``"v1"``, ``"r3d_18"``):
  a shipped spec, looked up as ``configs/<name>.{yaml,yml,json}`` in the project's
  ``./architectures/``, then in the copy shipped inside the installed package.
- A **path** is a ``Path``, or a string with a separator or a spec suffix (``"my.yaml"``,
  ``"configs/v1.yaml"``): the file at that path (from the working directory, or from the
  spec's own folder for ``extends``), else the same relative path under the architecture
  folders above.

A local file never silently stands in for a shipped spec: a path that is found locally while a
different shipped file answers to the same path or name warns (``SpecShadowWarning``), and so
does a project spec that differs from the packaged one of its name.
"""

from __future__ import annotations

import filecmp
import os
import warnings
from pathlib import Path

from .._deprecation import user_stacklevel
from ..errors import SpecShadowWarning

__all__ = [
    "SPEC_SUFFIXES",
    "architecture_roots",
    "find_spec_file",
    "is_spec_name",
    "known_spec_names",
]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_PACKAGED = Path(__file__).resolve().parent.parent / "architectures"


def architecture_roots() -> list[Path]:
    """The project's ``architectures/`` (from the working directory), then the packaged copy."""
    roots = [Path.cwd() / "architectures", _PACKAGED]
    unique: list[Path] = []
    for root in roots:
        if root.is_dir() and all(root.resolve() != seen.resolve() for seen in unique):
            unique.append(root)
    return unique


def is_spec_name(source: str | Path) -> bool:
    """Whether ``source`` is a spec name (``"v1"``) rather than a path (``"v1.yaml"``).

    Examples:
        >>> from video_interpreter.spec._lookup import is_spec_name
        >>> is_spec_name("v1"), is_spec_name("v1.yaml"), is_spec_name("configs/v1")
        (True, False, False)
    """
    if isinstance(source, Path):
        return False
    has_separator = "/" in source or os.sep in source or bool(os.altsep and os.altsep in source)
    return not has_separator and Path(source).suffix.lower() not in SPEC_SUFFIXES


def _differ(a: Path, b: Path) -> bool:
    return a.resolve() != b.resolve() and not filecmp.cmp(a, b, shallow=False)


def _shipped(relative: str) -> list[Path]:
    """Files under the architecture folders answering to a relative path or a file name."""
    found = []
    for root in architecture_roots():
        for candidate in (root / relative, root / "configs" / relative):
            if candidate.is_file():
                found.append(candidate)
    return found


def _warn(local: Path, shipped: Path, wanted: str) -> None:
    warnings.warn(
        f"{wanted!r} reads {local}, which differs from the shipped spec {shipped} of the same "
        f"name: pass the name {Path(wanted).stem!r} for the shipped spec, or rename the local "
        "file to silence this",
        SpecShadowWarning,
        stacklevel=user_stacklevel(),
    )


def _by_name(name: str) -> Path | None:
    found = [
        root / "configs" / f"{name}{suffix}"
        for root in architecture_roots()
        for suffix in SPEC_SUFFIXES
        if (root / "configs" / f"{name}{suffix}").is_file()
    ]
    if not found:
        return None
    first = found[0]
    for other in found[1:]:
        if other.stem == first.stem and _differ(first, other):
            _warn(first, other, name)
            break
    return first


def find_spec_file(name: str | Path, *, relative_to: Path | None = None) -> Path | None:
    """The file for a spec name or path, by the rule of the module docstring; None if absent.

    Examples:
        >>> from video_interpreter.spec._lookup import find_spec_file
        >>> find_spec_file("v1").name
        'v1.yaml'
    """
    base = relative_to or Path.cwd()
    text = str(name)
    if is_spec_name(name):
        found = _by_name(text)
        if found is not None:
            return found
        legacy = [base / f"{text}{suffix}" for suffix in SPEC_SUFFIXES]
        local = next((path for path in legacy if path.is_file()), None)
        if local is not None:
            warnings.warn(
                f"the bare name {text!r} found {local}: a bare name means a shipped spec, and "
                f"reading a local file by name is deprecated (removed in 0.3); pass the path "
                f"{local.name!r}",
                DeprecationWarning,
                stacklevel=user_stacklevel(),
            )
        return local
    path = Path(name)
    local = path if path.is_absolute() else base / path
    if local.is_file():
        if not path.is_absolute():
            for shipped in _shipped(text):
                if _differ(local, shipped):
                    _warn(local, shipped, text)
                    break
        return local
    if path.is_absolute():
        return None
    candidates = _shipped(text)
    return candidates[0] if candidates else None


def known_spec_names() -> list[str]:
    """Names that ``build_model(name)`` accepts, e.g. ``v1``, ``r3d_18``.

    Examples:
        >>> from video_interpreter.spec import known_spec_names
        >>> "v1" in known_spec_names()
        True
    """
    names: set[str] = set()
    for root in architecture_roots():
        for path in (root / "configs").glob("*"):
            if path.suffix.lower() in SPEC_SUFFIXES and not path.name.startswith("_"):
                names.add(path.stem)
    return sorted(names)
