"""Where spec files are found: as given, in the project's ``architectures/``, or in the copy of
``architectures/`` shipped inside the installed package; and by bare name (``v1``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SPEC_SUFFIXES", "architecture_roots", "find_spec_file", "known_spec_names"]

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


def _candidates(name: str) -> list[str]:
    if Path(name).suffix.lower() in SPEC_SUFFIXES:
        return [name]
    return [f"{prefix}{name}{suffix}" for prefix in ("", "configs/") for suffix in SPEC_SUFFIXES]


def find_spec_file(name: str | Path, *, relative_to: Path | None = None) -> Path | None:
    """The first existing file for ``name``, searched where the module docstring says."""
    text = str(name)
    bases = [relative_to or Path.cwd(), *architecture_roots()]
    for base in bases:
        for candidate in _candidates(text):
            path = base / candidate
            if path.is_file():
                return path
    return None


def known_spec_names() -> list[str]:
    """Names that ``build_model(name)`` accepts, e.g. ``v1``, ``r3d_18``."""
    names: set[str] = set()
    for root in architecture_roots():
        for path in (root / "configs").glob("*"):
            if path.suffix.lower() in SPEC_SUFFIXES and not path.name.startswith("_"):
                names.add(path.stem)
    return sorted(names)
