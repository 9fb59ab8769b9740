"""``demo``: the main job end to end, over the public API.

Validate every spec, build v1 (module tree, parameters, summary), draw it, score it on a small
synthetic clip set, save it into the model store, reload it with its sha256 checked, and
regenerate the registry table in ``models/README.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..diagram import render_diagram
from ..model import build_model
from ..spec import ClipShape, load_spec
from ..store import ModelStore
from ..summary import summarize

__all__ = ["register"]


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="validate, build, summarise, draw, store and reload v1")
    demo.add_argument("--spec", default="configs/v1.yaml", help="the spec to build (default v1)")
    demo.add_argument("--specs-dir", type=Path, default=Path("architectures/configs"))
    demo.add_argument("--root", type=Path, default=Path("models/saved_models"), help="the store")
    demo.add_argument("--readme", type=Path, default=Path("models/README.md"))
    demo.add_argument("--diagram", type=Path, default=Path("build/v1.svg"))
    demo.add_argument("--clips", type=int, default=8, help="synthetic clips to score")
    demo.set_defaults(handler=_demo)


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def _synthetic_clips(
    count: int, shape: ClipShape, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of noise with one bright frame; the label is that frame's position (mod classes)."""
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn((count, *shape), generator=generator) * 0.1
    labels = torch.randint(0, shape.frames, (count,), generator=generator)
    clips[torch.arange(count), :, labels] += 1.0
    return clips, labels % classes


def _demo(args: argparse.Namespace) -> int:
    _section("validate every spec")
    for path in sorted(args.specs_dir.glob("*.yaml")):
        spec = load_spec(path)
        print(f"ok  {path}  ({spec.name} {spec.version}, {spec.fingerprint[:12]})")

    _section(f"build {args.spec}")
    model = build_model(args.spec).eval()
    print(model)
    total = sum(p.numel() for p in model.parameters())
    print(f"\n{model.spec.name} {model.spec.version}: {total:,} parameters")

    _section("summary (meta device)")
    print(summarize(model.spec, depth=2).to_text())
    written = render_diagram(model.spec, args.diagram)
    print(f"\ndiagram: {written}")

    _section("score on synthetic clips (untrained weights)")
    head = model.spec.head_names[0]
    classes = int(model.spec["heads"][head]["num_classes"])
    clips, labels = _synthetic_clips(args.clips, model.spec.input, classes)
    with torch.inference_mode():
        logits = model(clips)[head]
    accuracy = float((logits.argmax(dim=1) == labels).float().mean())
    print(f"top-1 accuracy on {args.clips} synthetic clips: {accuracy:.4f}")

    _section(f"store in {args.root}")
    store = ModelStore(args.root)
    entry = store.save(
        model,
        metrics={"acc": accuracy},
        notes=f"demo: untrained weights, top-1 on {args.clips} synthetic clips",
    )
    print(f"saved {entry.path} (sha256 {entry.sha256[:16]}...)")
    reloaded = store.load(entry).eval()
    with torch.inference_mode():
        same = torch.equal(reloaded(clips)[head], logits)
    print(f"reloaded with sha256 verified; identical outputs: {same}")
    print(f"best: {store.best(model.spec.name, model.spec.version).path}")
    print(f"registry table written to {store.write_readme(args.readme)}:\n")
    print(store.render_table())
    return 0 if same else 1
