"""Print the Markdown table of every spec in architectures/configs for architectures/README.md.

    python benchmarks/zoo_table.py

Each spec is summarised on the meta device (nothing allocated): its parameters and its
multiply-accumulates for one clip at the spec's own input size are the summary's totals, checked
against the zoo's metadata (``video_interpreter.zoo.ZOO``). For a zoo model, the reference
library and its published Kinetics-400 accuracy come from that metadata: the library's figures
for its trained weights, not ours.
"""

from __future__ import annotations

from pathlib import Path

from video_interpreter.errors import SpecError
from video_interpreter.spec import load_spec
from video_interpreter.summary import summarize
from video_interpreter.zoo import ZOO

CONFIGS = Path(__file__).resolve().parent.parent / "architectures" / "configs"
SUFFIXES = (".yaml", ".yml", ".json")


def reference(name: str, params: int, macs: int) -> tuple[str, str, str]:
    """The reference library and its published Kinetics-400 (acc@1, acc@5) for a zoo model;
    a zoo model whose counts drift from its metadata stops the table."""
    entry = ZOO.get(name)
    if entry is None:
        return "-", "-", "-"
    if (entry.parameters, entry.macs) != (params, macs):
        raise SystemExit(
            f"{name}: {params:,} parameters and {macs:,} MACs, but the zoo metadata says "
            f"{entry.parameters:,} and {entry.macs:,}: update video_interpreter/zoo/_catalog.py"
        )
    if entry.accuracy is None:
        return entry.library, "-", "-"
    return entry.library, f"{entry.accuracy.top1:.2f}", f"{entry.accuracy.top5:.2f}"


def row(path: Path) -> list[str]:
    name = path.stem
    try:
        spec = load_spec(path, check_shapes=False)
        summary = summarize(spec, depth=0)
    except SpecError as exc:  # a spec being written: say so rather than stop the table
        return [f"`{name}`", f"does not build: {exc.problems[0].message[:80]}", *"-" * 6]
    params, macs = summary.total_params, summary.macs
    library, top1, top5 = reference(name, params, macs)
    clip = "x".join(str(n) for n in spec.input[1:])
    return [
        f"`{name}`",
        spec.description or spec.name,
        clip,
        f"{params:,}",
        f"{macs / 1e9:.3f}",
        library,
        top1,
        top5,
    ]


def table() -> str:
    header = [
        "spec",
        "what it is",
        "input (TxHxW)",
        "parameters",
        "GMACs",
        "reference",
        "published K400 acc@1",
        "acc@5",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in sorted(p for p in CONFIGS.iterdir() if p.suffix in SUFFIXES):
        if not path.name.startswith("_"):
            lines.append("| " + " | ".join(row(path)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
