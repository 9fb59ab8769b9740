"""Print the Markdown table of every spec in architectures/configs for architectures/README.md.

    python benchmarks/zoo_table.py

Each spec is summarised on the meta device (nothing allocated): its parameters and its
multiply-accumulates for one clip at the spec's own input size are the summary's totals. Where
torchvision has a model of the same name, its published Kinetics-400 accuracy (``_metrics`` of
its default weights) is shown for reference: torchvision's figures for its trained weights,
not ours.
"""

from __future__ import annotations

from pathlib import Path

import torchvision

from video_interpreter.errors import SpecError
from video_interpreter.spec import load_spec
from video_interpreter.summary import summarize

CONFIGS = Path(__file__).resolve().parent.parent / "architectures" / "configs"
SUFFIXES = (".yaml", ".yml", ".json")


def torchvision_accuracy(name: str) -> tuple[str, str]:
    """torchvision's published Kinetics-400 (acc@1, acc@5) for its model ``name``, if any."""
    if name not in torchvision.models.list_models(module=torchvision.models.video):
        return "-", "-"
    weights = next(iter(torchvision.models.get_model_weights(name)))
    metrics = weights.meta["_metrics"]["Kinetics-400"]
    return f"{metrics['acc@1']:.2f}", f"{metrics['acc@5']:.2f}"


def row(path: Path) -> list[str]:
    name = path.stem
    try:
        spec = load_spec(path, check_shapes=False)
        summary = summarize(spec, depth=0)
    except SpecError as exc:  # a spec being written: say so rather than stop the table
        return [f"`{name}`", f"does not build: {exc.problems[0].message[:80]}", *"-" * 5]
    params, gmacs = summary.total_params, summary.macs / 1e9
    top1, top5 = torchvision_accuracy(name)
    clip = "x".join(str(n) for n in spec.input[1:])
    return [
        f"`{name}`",
        spec.description or spec.name,
        clip,
        f"{params:,}",
        f"{gmacs:.3f}",
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
        "torchvision K400 acc@1",
        "acc@5",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in sorted(p for p in CONFIGS.iterdir() if p.suffix in SUFFIXES):
        if not path.name.startswith("_"):
            lines.append("| " + " | ".join(row(path)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
