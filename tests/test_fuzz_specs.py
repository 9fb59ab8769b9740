"""Hostile specs, drawn at random: alias and merge-key graphs, interpolation chains, deep
nesting and huge or non-finite values in a real spec. Each loads or raises ``SpecError`` (never
another exception), and in bounded time."""

from __future__ import annotations

import copy
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_interpreter import Problem, SpecError, build_model, load_spec

from .conftest import spec_paths, tiny_spec

SECONDS = 10.0  # per input, far above what a bounded input takes
MEMORY = 500 * 2**20  # growth of the peak per input
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TINY_YAML = yaml.safe_dump(tiny_spec(), sort_keys=False)


def _bounded(source: Any, **kwargs: Any) -> None:
    """Load (and build on meta) ``source``: a spec or a SpecError, in bounded time."""
    start = time.perf_counter()
    peak = _peak_bytes()
    problems: tuple[Problem, ...] = ()
    try:
        spec = load_spec(source, **kwargs)
        build_model(spec, device="meta")
    except SpecError as exc:
        problems = exc.problems
        assert problems
    else:  # a spec that loads holds only what builds what it says
        assert all(math.isfinite(number) for number in _floats(spec.to_dict()))
    for problem in problems:
        assert problem.message.strip()
        assert "frame #" not in problem.message  # no C++ stack in a problem
    assert time.perf_counter() - start < SECONDS
    assert _peak_bytes() - peak < MEMORY


def _peak_bytes() -> int:
    """This process's peak resident memory so far (it only grows)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _floats(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [f for item in value.values() for f in _floats(item)]
    if isinstance(value, list):
        return [f for item in value for f in _floats(item)]
    return [value] if isinstance(value, float) else []


@st.composite
def alias_graphs(draw: st.DrawFn) -> str:
    """Anchors defined in terms of earlier anchors (sequences, mappings, merges), nested; half
    of them bombs, whose every level refers to the one before several times."""
    bomb = draw(st.booleans())
    lines: list[str] = []
    for index in range(draw(st.integers(6, 9) if bomb else st.integers(1, 9))):
        count = draw(st.integers(6, 12) if bomb else st.integers(1, 12))
        if index:
            earlier = st.just(index - 1) if bomb else st.integers(0, index - 1)
            refs = [f"*a{draw(earlier)}" for _ in range(count)]
        else:
            refs = ["x"] * count
        kind = draw(st.sampled_from(["seq", "map", "merge"]))
        if kind == "seq" or not index:
            body = "[" + ", ".join(refs) + "]"
        elif kind == "map":
            body = "{" + ", ".join(f"k{i}: {ref}" for i, ref in enumerate(refs)) + "}"
        else:
            body = "{<<: [" + ", ".join(f"{{m: {ref}}}" for ref in refs) + "], own: 1}"
        depth = draw(st.integers(0, 40))
        lines.append(f"a{index}: &a{index} " + "[" * depth + body + "]" * depth)
    return "\n".join(lines) + "\n"


@FUZZ
@given(graph=alias_graphs(), under=st.sampled_from(["top", "description", "heads"]))
def test_alias_and_merge_graphs_are_bounded(tmp_path: Path, graph: str, under: str) -> None:
    if under == "top":
        text = TINY_YAML + graph
    elif under == "description":
        text = TINY_YAML + "description:\n" + "".join(f"  {line}\n" for line in graph.splitlines())
    else:
        text = TINY_YAML.replace(
            "heads:\n", "heads:\n" + "".join(f"  {line}\n" for line in graph.splitlines()), 1
        )
    path = tmp_path / "graph.yaml"
    path.write_text(text, encoding="utf-8")
    _bounded(path)


@st.composite
def interpolation_chains(draw: st.DrawFn) -> dict[str, Any]:
    """Keys under ``heads`` (valid names) that refer to earlier keys, many times each; half of
    them bombs, whose every key refers to the one before several times."""
    bomb = draw(st.booleans())
    spec = tiny_spec()
    spec["description"] = draw(st.sampled_from(["${name}", "${heads.h0}", "plain"]))
    heads: dict[str, Any] = spec["heads"]
    heads["h0"] = draw(st.sampled_from(["abcdefgh", [1, 2, 3, 4, 5, 6, 7, 8], {"a": [1, 2]}]))
    for index in range(1, draw(st.integers(8, 12) if bomb else st.integers(1, 12))):
        earlier = st.just(index - 1) if bomb else st.integers(0, index - 1)
        target = "${heads.h" + str(draw(earlier)) + "}"
        copies = draw(st.integers(6, 12) if bomb else st.integers(1, 12))
        shapes = [target * copies, [target] * copies, {f"c{i}": target for i in range(copies)}]
        heads[f"h{index}"] = draw(st.sampled_from([target, *shapes] if not bomb else shapes))
    return spec


@FUZZ
@given(spec=interpolation_chains())
def test_interpolation_chains_are_bounded(spec: dict[str, Any]) -> None:
    _bounded(spec)


DEEP: list[Any] = [1]
for _ in range(40):
    DEEP = [DEEP]

HOSTILE = st.one_of(
    st.sampled_from(
        [
            10**21,
            -(10**21),
            2**63,
            1_048_576,
            100_000,
            8.0,
            float("nan"),
            float("inf"),
            -0.0,
            "training",
            "__class__",
            "forward",
            "${backbone}",
            "${heads}",
            "${.}",
            "${..}",
            "\\${x}",
            "x" * 200_000,
            DEEP,
            {"type": "Repeat", "times": 10**6, "layer": {"type": "ReLU"}},
            {"type": "ResStage", "depth": 10**5, "out_channels": 8},
            {"type": "Conv3d", "out_channels": 2**20, "kernel_size": 7},
            {"type": "Linear", "out_features": 2**24},
            8192,
            131_072,
            2**24,
        ]
    ),
    st.integers(),
    st.floats(),
)


REAL = {
    name: load_spec(name).to_dict()
    for name in ("tiny_resnet", "tiny_swin", "tiny_mvit", "tiny_two_pathway")
}


def _leaves(value: Any) -> list[tuple[Any, ...]]:
    return [p for p in spec_paths(value)[1:] if not isinstance(_at(value, p), dict | list)]


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def hostile_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A real spec with one to three values (mostly leaves) replaced by hostile ones, or nodes
    inserted into its lists."""
    spec = copy.deepcopy(REAL[draw(st.sampled_from(sorted(REAL)))])
    for _ in range(draw(st.integers(1, 3))):
        pick = st.sampled_from(_leaves(spec)) if draw(st.booleans()) else None
        path = draw(pick if pick is not None else st.sampled_from(spec_paths(spec)[1:]))
        parent: Any = spec
        for part in path[:-1]:
            parent = parent[part]
        value = copy.deepcopy(draw(HOSTILE))  # never mutate the shared hostile values
        if isinstance(parent, list) and draw(st.booleans()):
            parent.insert(path[-1], value)
        else:
            parent[path[-1]] = value
    return spec


@FUZZ
@given(spec=hostile_specs(), as_file=st.sampled_from(["mapping", ".yaml", ".json"]))
def test_hostile_values_in_real_specs_are_bounded(
    tmp_path: Path, spec: dict[str, Any], as_file: str
) -> None:
    if as_file == "mapping":
        _bounded(spec)
        return
    path = tmp_path / f"hostile{as_file}"
    text = json.dumps(spec) if as_file == ".json" else yaml.safe_dump(spec)
    path.write_text(text, encoding="utf-8")
    _bounded(path)


@FUZZ
@given(
    depth=st.integers(0, 6000),
    opener=st.sampled_from(["[", "{a: ", '{"a": ']),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_any_nesting_depth_is_bounded(tmp_path: Path, depth: int, opener: str, suffix: str) -> None:
    closer = "]" if opener == "[" else "}"
    spec = tiny_spec()
    spec["description"] = "HERE"
    text = json.dumps(spec).replace('"HERE"', opener * depth + "1" + closer * depth)
    path = tmp_path / f"deep{suffix}"
    path.write_text(text, encoding="utf-8")
    _bounded(path)


@pytest.mark.parametrize("override", ["a=" + "[" * 3000 + "]" * 3000, "a" + ".a" * 3000 + "=1"])
def test_deep_overrides_are_bounded(override: str) -> None:
    _bounded(tiny_spec(), overrides=[override])
