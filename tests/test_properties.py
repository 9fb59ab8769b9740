"""Property-based: whatever document a user feeds in, only SpecError ever comes out."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_interpreter import SpecError, load_spec

from .conftest import spec_paths

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "${input.frames}",
            "${oc.env:HOME}",
            "${",
            "$",
            "}",
            "${a.b",
            "???",
            "Conv3d",
            "ReLU",
            "Sequential",
            "v1",
            "configs/v1.yaml",
        ]
    ),
)
KEYS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "type",
            "name",
            "extends",
            "backbone",
            "heads",
            "neck",
            "input",
            "layers",
            "spec_version",
            "out_channels",
            "kernel_size",
            "a.b",
            "[0]",
            "${x}",
        ]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _only_spec_errors(source: Any, **kwargs: Any) -> None:
    try:
        load_spec(source, **kwargs)
    except SpecError as exc:
        problems = exc.problems
    else:
        return
    assert problems
    assert all(str(p) for p in problems)


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_text_gives_a_spec_or_a_spec_error(tmp_path: Path, text: str) -> None:
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"doc{suffix}"
        path.write_text(text, encoding="utf-8")
        _only_spec_errors(path)


@SETTINGS
@given(document=DOCUMENTS)
def test_arbitrary_documents_give_a_spec_or_a_spec_error(tmp_path: Path, document: Any) -> None:
    as_yaml = tmp_path / "doc.yaml"
    as_yaml.write_text(yaml.safe_dump(document), encoding="utf-8")
    _only_spec_errors(as_yaml)
    as_json = tmp_path / "doc.json"
    as_json.write_text(json.dumps(document), encoding="utf-8")
    _only_spec_errors(as_json)
    if isinstance(document, dict):
        _only_spec_errors(document)


REAL_SPECS = {name: load_spec(name).to_dict() for name in ("tiny_resnet", "tiny_transformer")}


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(REAL_SPECS[draw(st.sampled_from(sorted(REAL_SPECS)))])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(spec_paths(spec)[1:]))
        parent: Any = spec
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "rename", "insert"]))
        if action == "replace":
            parent[path[-1]] = draw(DOCUMENTS)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(KEYS)] = parent.pop(path[-1])
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(DOCUMENTS)
        elif isinstance(parent, list):
            parent.insert(path[-1], draw(DOCUMENTS))
    return spec


@SETTINGS
@given(spec=mutated_specs(), overrides=st.lists(st.text(max_size=20), max_size=2))
def test_mutated_real_specs_give_a_spec_or_a_spec_error(
    tmp_path: Path, spec: dict[str, Any], overrides: list[str]
) -> None:
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    _only_spec_errors(path)
    _only_spec_errors(spec, overrides=overrides)
