"""Write a ``Graph`` as Graphviz DOT or Mermaid text (SVG and PNG come from DOT via ``dot``)."""

from __future__ import annotations

from ._graph import Box, Graph, Group, Item, Part

__all__ = ["to_dot", "to_mermaid"]

# Fill colours per part of the model: grey input, blue backbone, amber neck, green heads.
_FILL: dict[Part, tuple[str, str]] = {  # (box, frame)
    "input": ("#e8e8e8", "#f6f6f6"),
    "backbone": ("#dbe9fb", "#f2f7fd"),
    "neck": ("#fdebc8", "#fef7e8"),
    "head": ("#d7f0d7", "#f0faf0"),
    "model": ("#dbe9fb", "#f2f7fd"),
}


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_item(item: Item, indent: str, out: list[str]) -> None:
    box_fill, frame_fill = _FILL[item.part]
    if isinstance(item, Box):
        label = "\\n".join(_dot_text(line) for line in item.lines)
        shape = ', shape=oval, style="filled"' if item.part == "input" else ""
        tooltip = f', tooltip="{_dot_text(item.tooltip)}"' if item.tooltip else ""
        out.append(f'{indent}{item.id} [label="{label}", fillcolor="{box_fill}"{shape}{tooltip}];')
        return
    out.append(f"{indent}subgraph cluster_{item.id} {{")
    out.append(f'{indent}  label="{_dot_text(item.label)}";')
    out.append(f'{indent}  fillcolor="{frame_fill}";')
    for child in item.items:
        _dot_item(child, indent + "  ", out)
    out.append(f"{indent}}}")


_LATERAL_DOT = ['color="#c0504d"', "penwidth=1.6"]


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text: clusters for groups, dashed edges for call order, red edges between
    pathways (fusions).

    Examples:
        >>> from video_interpreter.diagram import build_diagram
        >>> build_diagram("tiny_r2plus1d").to_dot().startswith("digraph")
        True
    """
    out = [
        "digraph architecture {",
        f'  label="{_dot_text(graph.title)}";',
        '  labelloc="t"; fontname="Helvetica"; fontsize=16;',
        "  rankdir=TB; nodesep=0.25; ranksep=0.3; newrank=true; compound=true;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11,'
        ' color="#5a6b7b", margin="0.15,0.06"];',
        '  edge [color="#5a6b7b", arrowsize=0.7];',
        '  graph [style="rounded,filled", color="#9aa8b5", fontname="Helvetica", fontsize=12,'
        ' labeljust="l"];',
    ]
    for item in graph.items:
        _dot_item(item, "  ", out)
    for edge in graph.edges:
        attrs = list({"flow": [], "call": ['style="dashed"'], "lateral": _LATERAL_DOT}[edge.style])
        if edge.tail_group:
            attrs.append(f"ltail=cluster_{edge.tail_group}")
        if edge.head_group:
            attrs.append(f"lhead=cluster_{edge.head_group}")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        out.append(f"  {edge.tail} -> {edge.head}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    # Mermaid labels are quoted: quotes and the characters Mermaid treats as markup are escaped.
    return (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def _mermaid_item(item: Item, indent: str, out: list[str]) -> None:
    if isinstance(item, Box):
        label = "<br/>".join(_mermaid_text(line) for line in item.lines)
        open_, close = ('(["', '"])') if item.part == "input" else ('["', '"]')
        out.append(f"{indent}{item.id}{open_}{label}{close}:::{item.part}")
        return
    out.append(f'{indent}subgraph {item.id}["{_mermaid_text(item.label)}"]')
    out.append(f"{indent}  direction TB")
    for child in item.items:
        _mermaid_item(child, indent + "  ", out)
    out.append(f"{indent}end")


def _groups(items: list[Item]) -> list[Group]:
    found: list[Group] = []
    for item in items:
        if isinstance(item, Group):
            found.append(item)
            found.extend(_groups(item.items))
    return found


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart text (renders on GitHub and in most Markdown viewers); thick arrows
    between pathways (fusions).

    Examples:
        >>> from video_interpreter.diagram import build_diagram
        >>> "flowchart TB" in build_diagram("tiny_r2plus1d").to_mermaid()
        True
    """
    out = ["---", f"title: {_mermaid_text(graph.title)}", "---", "flowchart TB"]
    for item in graph.items:
        _mermaid_item(item, "  ", out)
    for edge in graph.edges:
        arrow = {"flow": "-->", "call": "-.->", "lateral": "==>"}[edge.style]
        out.append(f"  {edge.tail_group or edge.tail} {arrow} {edge.head_group or edge.head}")
    for part, (box_fill, _) in _FILL.items():
        out.append(f"  classDef {part} fill:{box_fill},stroke:#5a6b7b,color:#111")
    for group in _groups(graph.items):
        out.append(f"  style {group.id} fill:{_FILL[group.part][1]},stroke:#9aa8b5")
    return "\n".join(out) + "\n"
