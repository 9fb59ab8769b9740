"""``ModelSummary``: the figures of one summary and their renderings (text, Markdown, JSON).

Plain data: it holds no module, so it can be stored, compared and rebuilt from its JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LayerRow", "ModelSummary", "format_bytes", "format_count"]

Shape = tuple[int, ...]


def format_count(value: int) -> str:
    """A large count in short form: ``663.83M``, ``40.52G``; small ones exact."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix}"
    return str(value)


def format_bytes(value: int) -> str:
    """Bytes in decimal units (MB = 10^6 bytes, as torchinfo reports them)."""
    for factor, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= factor:
            return f"{value / factor:,.2f} {unit}"
    return f"{value} B"


def _operations(value: int) -> str:
    # Giga-operations with three decimals: the precision torchvision publishes.
    short = f"{value / 1e9:,.3f} G" if value >= 1e9 else format_count(value)
    return f"{short} ({value:,})"


def _shape(shape: Shape | None) -> str:
    if shape is None:
        return "--"
    return "(" + ", ".join(str(n) for n in shape) + ")"


@dataclass(frozen=True)
class LayerRow:
    """One module of the table. Counts cover the module's whole subtree, each tensor once;
    ``macs`` covers every call of it. ``recursive`` marks a second call of the same module.
    ``inputs`` are the graph nodes a node of a graph backbone reads (``input``: the clip), and
    the node a neck or head reads in a graph model; empty elsewhere."""

    path: str  # module path as in the state dict ("backbone.layer1.0"); "" for the model
    type: str
    depth: int
    output_shape: Shape | None  # batch included; None when the module was not called itself
    params: int
    trainable_params: int
    macs: int
    recursive: bool = False
    inputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "path": self.path,
            "type": self.type,
            "depth": self.depth,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "recursive": self.recursive,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerRow:
        shape = data.get("output_shape")
        return cls(
            path=str(data["path"]),
            type=str(data["type"]),
            depth=int(data["depth"]),
            output_shape=None if shape is None else tuple(int(n) for n in shape),
            params=int(data["params"]),
            trainable_params=int(data["trainable_params"]),
            macs=int(data["macs"]),
            recursive=bool(data.get("recursive", False)),
            inputs=tuple(str(name) for name in data.get("inputs", ())),
        )


@dataclass(frozen=True)
class ModelSummary:
    """Layer table and totals of a model for one input batch.

    ``macs`` are multiply-accumulates (the figure torchvision publishes as "GFLOPS"),
    ``flops = 2 * macs``; both counted by ``torch.utils.flop_counter.FlopCounterMode``, so
    attention matmuls count too. ``activation_bytes`` estimates one forward pass's activations:
    the output of every leaf module (what autograd may keep for backward), batch included.
    """

    name: str
    model_type: str
    input_shape: Shape  # batch included
    device: str
    depth: int
    rows: tuple[LayerRow, ...]
    outputs: Mapping[str, Shape]
    total_params: int
    trainable_params: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int
    flops: int
    fingerprint: str | None = None
    macs: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "macs", self.flops // 2)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    # -- the table ---------------------------------------------------------------------------
    def _shown(self) -> list[tuple[str, str]]:
        """Per row, the (params, macs) cells: a row whose children are listed shows only what
        its children do not hold, so each column sums to the total (torchinfo's convention)."""
        cells: list[tuple[str, str]] = []
        for index, row in enumerate(self.rows):
            if row.recursive:
                cells.append(("(recursive)", "(recursive)"))
                continue
            params, macs = row.params, row.macs
            for child in self._children(index):
                if not child.recursive:
                    params -= child.params
                    macs -= child.macs
            cells.append(
                (f"{params:,}" if params > 0 else "--", format_count(macs) if macs > 0 else "--")
            )
        return cells

    def _children(self, index: int) -> list[LayerRow]:
        depth = self.rows[index].depth
        children = []
        for row in self.rows[index + 1 :]:
            if row.depth <= depth:
                break
            if row.depth == depth + 1:
                children.append(row)
        return children

    @property
    def is_graph(self) -> bool:
        """Whether any row names its inputs (a graph backbone): the table then lists them."""
        return any(row.inputs for row in self.rows)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = ["Layer", "Type", "Output shape", "Param #", "MACs"]
        graph = self.is_graph
        if graph:
            header.insert(2, "Inputs")
        body = []
        for row, (params, macs) in zip(self.rows, self._shown(), strict=True):
            name = row.path or self.name
            cells = ["  " * row.depth + name, row.type, _shape(row.output_shape), params, macs]
            if graph:
                cells.insert(2, ", ".join(row.inputs) or "--")
            body.append(cells)
        return header, body

    def _totals(self) -> list[tuple[str, str]]:
        return [
            ("Total params", f"{self.total_params:,}"),
            ("Trainable params", f"{self.trainable_params:,}"),
            ("Non-trainable params", f"{self.non_trainable_params:,}"),
            ("MACs", _operations(self.macs)),
            ("FLOPs", _operations(self.flops)),
            ("Parameter memory", format_bytes(self.param_bytes)),
            ("Buffer memory", format_bytes(self.buffer_bytes)),
            ("Activation memory (forward, estimate)", format_bytes(self.activation_bytes)),
        ]

    def _title(self) -> str:
        return (
            f"{self.name} ({self.model_type}) on input {_shape(self.input_shape)}, "
            f"device {self.device}, depth {self.depth}"
        )

    # -- renderings --------------------------------------------------------------------------
    def to_text(self) -> str:
        header, body = self._table()
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        right = {len(header) - 2, len(header) - 1}

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(width) if i in right else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [self._title(), rule, line(header), rule, *(line(r) for r in body), rule]
        label_width = max(len(label) for label, _ in self._totals())
        lines += [f"{label + ':':<{label_width + 1}} {value}" for label, value in self._totals()]
        lines.append(rule)
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        header, body = self._table()

        def cell(text: str) -> str:
            return text.strip().replace("|", "\\|")

        lines = [f"**{self._title()}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join(["---"] * (len(header) - 2) + ["---:", "---:"]) + " |")
        for row, cells in zip(self.rows, body, strict=True):
            path = f"`{row.path}`" if row.path else f"**{cell(self.name)}**"
            lines.append("| " + " | ".join([path, *(cell(c) for c in cells[1:])]) + " |")
        lines += ["", "| Total | Value |", "| --- | ---: |"]
        lines += [f"| {label} | {value} |" for label, value in self._totals()]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_type": self.model_type,
            "fingerprint": self.fingerprint,
            "input_shape": list(self.input_shape),
            "device": self.device,
            "depth": self.depth,
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "activation_bytes": self.activation_bytes,
            "macs": self.macs,
            "flops": self.flops,
            "layers": [row.to_dict() for row in self.rows],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent) + ("\n" if indent is not None else "")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSummary:
        """Rebuild a summary from ``to_dict()``; derived figures are recomputed."""
        return cls(
            name=str(data["name"]),
            model_type=str(data["model_type"]),
            fingerprint=data.get("fingerprint"),
            input_shape=tuple(int(n) for n in data["input_shape"]),
            device=str(data["device"]),
            depth=int(data["depth"]),
            rows=tuple(LayerRow.from_dict(row) for row in data["layers"]),
            outputs={k: tuple(int(n) for n in v) for k, v in data["outputs"].items()},
            total_params=int(data["total_params"]),
            trainable_params=int(data["trainable_params"]),
            param_bytes=int(data["param_bytes"]),
            buffer_bytes=int(data["buffer_bytes"]),
            activation_bytes=int(data["activation_bytes"]),
            flops=int(data["flops"]),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelSummary:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)
