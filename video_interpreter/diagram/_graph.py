"""The drawing's structure, independent of the output format: boxes, groups and edges.

A ``VideoInterpreter`` is drawn as input -> backbone (its nodes in order) -> neck -> one branch
per head. Modules fewer than ``depth`` levels below the backbone, the neck or a head are opened
into a group of their children; deeper modules, and modules without children, are boxes, which
give their output shape (batch excluded), their parameters and, for a stack of one kind of
block, its size ("BasicBlock3d x 2"). Inside a sequential container (or a ModuleList run as a
chain) consecutive children of the same type and output shape collapse into one box; when such
a run is opened, its first member's inside is shown.

Edges: solid where a module takes the previous one's output (a sequential container, a chain
seen in the traced forward pass), dashed where modules merely run one after the other (parallel
branches, a shortcut before the main path): the order is exact, the sums and concatenations
inside a forward are not drawn. A graph backbone (``layers.Graph``) is drawn as its wiring: each
node with an arrow from every node it reads; several pathways (each started by a node that
reads the clip) are frames side by side, and an arrow between them (a fusion) is ``lateral``;
a neck or head that reads an inner node is drawn from that node. Any other ``nn.Module`` is
drawn as input -> its children in the order they run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from ..layers import INPUT, NECK
from ..layers import Graph as LayerGraph
from ..summary import DEFAULT_DEPTH, ShapeTrace, format_count

__all__ = ["JOINT", "Box", "Edge", "Graph", "Group", "Item", "build_graph", "pathways"]

Shape = tuple[int, ...]
Part = Literal["input", "backbone", "neck", "head", "model"]


@dataclass
class Box:
    """One drawn node."""

    id: str
    lines: list[str]
    part: Part
    tooltip: str = ""


@dataclass
class Group:
    """A cluster of items drawn inside a labelled frame."""

    id: str
    label: str
    part: Part
    items: list[Item] = field(default_factory=list)


Item = Box | Group


@dataclass(frozen=True)
class Edge:
    """An arrow between two boxes. ``tail_group``/``head_group`` name the group the arrow
    leaves or enters when it links a whole group, so a renderer can clip it at the frame."""

    tail: str
    head: str
    style: EdgeStyle = "flow"
    tail_group: str | None = None
    head_group: str | None = None


@dataclass
class Graph:
    title: str
    items: list[Item]
    edges: list[Edge]


def _shape(shape: Shape | None) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")" if shape is not None else ""


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _title(name: str, module: nn.Module, count: int = 1) -> str:
    """``layer1: ResStage``; numeric names (sequence indices) and ``Sequential`` are left out."""
    kind = type(module).__name__
    times = f" x {count}" if count > 1 else ""
    named = name and not name.isdigit()
    if named and kind == "Sequential":
        return name + times
    return f"{name}: {kind}{times}" if named else f"{kind}{times}"


@dataclass
class _Flow:
    """Entry and exit box of a drawn item (and the item's group, if it is one)."""

    entry: str
    exit: str
    group: str | None = None


EdgeStyle = Literal["flow", "call", "lateral"]


def _link(before: _Flow, after: _Flow, style: EdgeStyle = "flow") -> Edge:
    return Edge(before.exit, after.entry, style, before.group, after.group)


JOINT = -1
"""The pathway of graph nodes after the pathways have merged (drawn outside any pathway)."""


def pathways(wiring: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each graph node's pathway (0, 1, ...) or ``JOINT``.

    A node that reads the clip starts a pathway; any other node continues the pathway of the
    first node it reads (a lateral fusion into the slow pathway stays in it). A merge that reads
    the last node of two or more pathways ends them: it and what follows are ``JOINT``.
    """
    lane: dict[str, int] = {}
    order = list(wiring)
    position = {name: index for index, name in enumerate(order)}
    started = 0
    for index, name in enumerate(order):
        first = wiring[name][0] if wiring[name] else INPUT
        if first == INPUT:
            lane[name], started = started, started + 1
        else:
            lane[name] = lane[first]
        reads = {lane[r] for r in wiring[name] if r != INPUT} - {JOINT}
        # A pathway goes on past this node when a later node reads one of its earlier nodes.
        going_on = {
            lane[r]
            for later in order[index + 1 :]
            for r in wiring[later]
            if r != INPUT and position[r] < index
        }
        if len(reads - going_on) > 1:
            lane[name] = JOINT
    return lane


class _Builder:
    def __init__(self, trace: ShapeTrace, depth: int) -> None:
        self.trace = trace
        self.depth = depth
        self.edges: list[Edge] = []
        self.ids: set[str] = {"input"}
        # First call of anything inside each module: orders containers that are never called
        # themselves (a ModuleList of blocks) by when their contents run.
        self.first_call: dict[str, int] = {}
        for path, index in trace.call_order.items():
            parts = path.split(".") if path else []
            for end in range(len(parts) + 1):
                prefix = ".".join(parts[:end])
                self.first_call[prefix] = min(index, self.first_call.get(prefix, index))

    def new_id(self, prefix: str, path: str) -> str:
        """A unique identifier (letters, digits, ``_``) derived from a module path."""
        base = prefix + ("".join(ch if ch.isalnum() else "_" for ch in path) or "model")
        ident, n = base, 1
        while ident in self.ids:
            n += 1
            ident = f"{base}_{n}"
        self.ids.add(ident)
        return ident

    def children(self, module: nn.Module, path: str) -> list[tuple[str, str, nn.Module]]:
        """(name, path, module) of the children to draw: a sequence in its order, any other
        module's children in the order they first run (children that never run are left out)."""
        prefix = f"{path}." if path else ""
        found = [(name, prefix + name, child) for name, child in module.named_children()]
        if isinstance(module, nn.Sequential):
            return found
        ran = [c for c in found if c[1] in self.first_call]
        return sorted(ran, key=lambda c: self.first_call[c[1]])

    def shape(self, path: str, module: nn.Module) -> Shape | None:
        """What the module returned; for a container never called itself (a ModuleList run
        in order), what its last child returned."""
        if path in self.trace.shapes or self.kind(module, path) != "list":
            return self.trace.shapes.get(path)
        last = self.children(module, path)[-1]
        return self.shape(last[1], last[2])

    def feeds(self, before: str, after: str) -> bool:
        """Whether module ``after`` took module ``before``'s output as its input."""
        tensors = self.trace.tensors
        return before in tensors and after in tensors and tensors[after][0] == tensors[before][1]

    def kind(self, module: nn.Module, path: str) -> Literal["flow", "list", "call"]:
        """``flow``: a sequential container; ``list``: a ModuleList whose items ran as a
        chain, each on the previous one's output (a stack of blocks); ``call``: anything else
        (parallel branches, a block with a shortcut)."""
        if isinstance(module, nn.Sequential):
            return "flow"
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            prefix = f"{path}." if path else ""
            items = [f"{prefix}{i}" for i in range(len(module))]
            if all(self.feeds(a, b) for a, b in itertools.pairwise(items)):
                return "list"
        return "call"

    def runs(
        self, children: list[tuple[str, str, nn.Module]]
    ) -> list[list[tuple[str, str, nn.Module]]]:
        """Consecutive children of the same type and output shape, grouped."""
        shapes = self.trace.shapes
        grouped: list[list[tuple[str, str, nn.Module]]] = []
        for child in children:
            last = grouped[-1][-1] if grouped else None
            if (
                last is not None
                and type(last[2]) is type(child[2])
                and last[1] in shapes
                and shapes.get(last[1]) == shapes.get(child[1])
            ):
                grouped[-1].append(child)
            else:
                grouped.append([child])
        return grouped

    def item(
        self, run: list[tuple[str, str, nn.Module]], level: int, part: Part
    ) -> tuple[Item, _Flow]:
        """A box or a group for one child (or one run of repeated children) at ``level``."""
        name, path, module = run[0]
        count = len(run)
        last_path = run[-1][1]
        shape = self.shape(last_path, run[-1][2])
        title = _title(name if count == 1 else f"{name}-{run[-1][0]}", module, count)
        if count > 1 and name.isdigit():
            title = _title("", module, count)
        inner = self.children(module, path)
        kind = self.kind(module, path)
        if level >= self.depth or not inner:
            params = sum(_params(m) for _, _, m in run)
            lines = [title]
            kinds = {type(child) for _, _, child in inner}
            if kind != "call" and len(inner) > 1 and len(kinds) == 1:  # a stack of one block
                lines.append(f"{kinds.pop().__name__} x {len(inner)}")
            if shape is not None:
                lines.append(_shape(shape))
            if params:
                lines.append(f"{format_count(params)} params")
            paths = path if count == 1 else f"{path} ... {last_path}"
            box = Box(self.new_id("n_", path), lines, part, tooltip=paths)
            return box, _Flow(box.id, box.id)
        label = f"{title} (first of {count} shown)" if count > 1 else title
        group = Group(self.new_id("c_", path), label, part)
        flow = self.sequence(group, inner, level + 1, part, kind)
        if len(group.items) == 1 and isinstance(group.items[0], Box):
            # A frame around one box (a stage that is one run of blocks): one box says it better.
            return self.item(run, self.depth, part)
        return group, _Flow(flow.entry, flow.exit, group.id)

    def sequence(
        self,
        group: Group,
        children: list[tuple[str, str, nn.Module]],
        level: int,
        part: Part,
        kind: Literal["flow", "list", "call"],
    ) -> _Flow:
        """Fill ``group`` with the children and link them; returns the group's entry and exit."""
        runs = self.runs(children) if kind != "call" else [[c] for c in children]
        flows: list[_Flow] = []
        for run in runs:
            item, flow = self.item(run, level, part)
            group.items.append(item)
            flows.append(flow)
        for (before, flow_a), (after, flow_b) in itertools.pairwise(zip(runs, flows, strict=True)):
            # Solid when the next item takes this one's output, dashed for mere call order.
            chained = kind == "flow" or self.feeds(before[-1][1], after[0][1])
            self.edges.append(_link(flow_a, flow_b, "flow" if chained else "call"))
        return _Flow(flows[0].entry, flows[-1].exit)

    def build(self) -> Graph:
        model, trace = self.trace.model, self.trace
        source = Box("input", ["input", _shape(trace.input_shape)], "input")
        items: list[Item] = [source]
        outlet = _Flow(source.id, source.id)
        backbone = getattr(model, "backbone", None)
        heads = getattr(model, "heads", None)
        if isinstance(backbone, nn.Module) and isinstance(heads, nn.ModuleDict):
            taps: dict[str, str] = getattr(model, "taps", {})
            nodes: dict[str, _Flow] = {}
            if isinstance(backbone, LayerGraph):
                nodes = self.wiring(outlet, items, backbone)
                outlet = nodes[backbone.output]
            else:
                outlet = self.part(outlet, items, "backbone", backbone, "backbone")
            neck = getattr(model, "neck", None)
            if isinstance(neck, nn.Module) and not isinstance(neck, nn.Identity):
                item, flow = self.item([("neck", "neck", neck)], 1, "neck")
                items.append(item)
                self.edges.append(_link(nodes.get(taps.get(NECK, ""), outlet), flow))
                outlet = flow
            for name, head in heads.items():
                item, flow = self.item([(name, f"heads.{name}", head)], 1, "head")
                items.append(item)
                self.edges.append(_link(nodes.get(taps.get(name, ""), outlet), flow))
        else:
            self.part(outlet, items, "", model, "model")
        return Graph(trace.label, items, self.edges)

    def wiring(self, source: _Flow, items: list[Item], graph: LayerGraph) -> dict[str, _Flow]:
        """A graph backbone: its nodes in a frame, an arrow from each node every node reads.
        With several pathways, each is a frame of its own inside, side by side, and an arrow
        between two pathways (a fusion) is drawn as ``lateral``."""
        group = Group(self.new_id("c_", "backbone"), "backbone", "backbone")
        lanes = pathways(graph.wiring)
        frames: dict[int, Group] = {}
        if len(set(lanes.values()) - {JOINT}) > 1:
            for name, lane in lanes.items():
                if lane != JOINT and lane not in frames:
                    frames[lane] = Group(
                        self.new_id("c_", f"backbone.pathway.{name}"),
                        f"pathway from {name}",
                        "backbone",
                    )
                    group.items.append(frames[lane])
        flows = {INPUT: source}
        for name, module in graph.named_children():
            item, flow = self.item([(name, f"backbone.{name}", module)], 1, "backbone")
            frames.get(lanes[name], group).items.append(item)
            for read in graph.wiring[name]:
                # into another pathway: a fusion (a merge that ends the pathways is plain)
                crosses = bool(frames) and read != INPUT and JOINT != lanes[name] != lanes[read]
                self.edges.append(_link(flows[read], flow, "lateral" if crosses else "flow"))
            flows[name] = flow
        items.append(group)
        return flows

    def part(
        self,
        outlet: _Flow,
        items: list[Item],
        path: str,
        module: nn.Module,
        part: Part,
    ) -> _Flow:
        """Draw ``module`` as a group of its children after ``outlet``."""
        children = self.children(module, path)
        if not children:  # a model without children: draw it as one box
            item, flow = self.item([(path, path, module)], self.depth, part)
        else:
            group = Group(self.new_id("c_", path), path or type(module).__name__, part)
            inner = self.sequence(group, children, 1, part, self.kind(module, path))
            item, flow = group, _Flow(inner.entry, inner.exit, group.id)
        items.append(item)
        self.edges.append(_link(outlet, flow))
        return flow


def build_graph(trace: ShapeTrace, *, depth: int = DEFAULT_DEPTH) -> Graph:
    """The drawing of a traced model, expanded ``depth`` levels (1: the backbone's nodes, the
    neck and the heads as single boxes)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return _Builder(trace, depth).build()
