"""The public API is what docs/api.md documents: each public package's ``__all__`` equals the
``members`` list of its section there, so neither changes without the other; every public
function's docstring carries an example, and every example runs."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import video_interpreter

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def public_modules() -> list[str]:
    subpackages = [
        f"video_interpreter.{info.name}"
        for info in pkgutil.iter_modules(video_interpreter.__path__)
        if not info.name.startswith("_") and info.name != "architectures"
    ]
    return ["video_interpreter", *sorted(subpackages)]


def documented_members() -> dict[str, list[str]]:
    """``{module: members}`` from each ``::: module`` block of the API page."""
    text = API_PAGE.read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    for match in re.finditer(r"^::: (\S+)\n((?:    .*\n)+)", text, flags=re.MULTILINE):
        block = match.group(2)
        members = block.split("members:\n", 1)[1] if "members:\n" in block else ""
        sections[match.group(1)] = re.findall(r"^        - (\S+)$", members, flags=re.MULTILINE)
    return sections


def test_every_public_module_has_a_section() -> None:
    assert sorted(documented_members()) == sorted(public_modules())


@pytest.mark.parametrize("name", public_modules())
def test_all_matches_the_api_page(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    documented = documented_members().get(name, [])
    missing, extra = (
        sorted(set(exported) - set(documented)),
        sorted(set(documented) - set(exported)),
    )
    assert (missing, extra) == ([], []), (
        f"{name}.__all__ and docs/api.md differ: add {missing} to the page's members list, "
        f"remove {extra} from it (or change __all__ back)"
    )
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.__all__ names {attribute}, which is missing"


def public_functions() -> list[tuple[str, object]]:
    """Every function (and class method defined here) that a public ``__all__`` exports."""
    seen: dict[int, tuple[str, object]] = {}
    for name in public_modules():
        module = importlib.import_module(name)
        for attribute in module.__all__:
            value = getattr(module, attribute)
            if inspect.isfunction(value) and value.__module__.startswith("video_interpreter"):
                seen.setdefault(id(value), (f"{value.__module__}.{value.__qualname__}", value))
    return sorted(seen.values(), key=lambda item: item[0])


def has_example(function: object) -> bool:
    return ">>> " in (inspect.getdoc(function) or "")


def test_every_public_function_has_an_example() -> None:
    lacking = sorted(name for name, function in public_functions() if not has_example(function))
    assert not lacking, f"public functions without an example in their docstring: {lacking}"


def docstring_modules() -> list[ModuleType]:
    """Every module of the package, so the examples of classes and methods run too."""
    names = [
        info.name
        for info in pkgutil.walk_packages(video_interpreter.__path__, "video_interpreter.")
        if ".architectures" not in info.name and not info.name.endswith("__main__")
    ]
    return [importlib.import_module(name) for name in ["video_interpreter", *names]]


@pytest.mark.parametrize("module", docstring_modules(), ids=lambda module: module.__name__)
def test_examples_run(module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module.__name__):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} example(s) failed in {module.__name__}"
