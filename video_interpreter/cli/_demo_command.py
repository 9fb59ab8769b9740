"""``demo``: the main job end to end, over the public API.

Validate every spec; train a small spec on ``MovingSquares`` for a few epochs with
``training.fit`` (the loop ``examples/train.py`` runs), every epoch saved into the model store
and the store pruned; show the store (files by the naming convention, the best model, what
pruning removed, the registry table written into ``models/README.md``); summarise and draw the
trained model; reload it with its sha256 checked and compare outputs; write the best model's card
into the store and a Hub-style model directory beside the store, and load that back. Run again
after an interruption, it resumes from the store's latest checkpoint.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..data import MovingSquares
from ..diagram import GraphvizNotFoundError, render_diagram
from ..model import VideoInterpreter, build_model
from ..sharing import from_pretrained, save_pretrained
from ..spec import load_spec
from ..store import Entry, ModelStore, format_value
from ..summary import summarize
from ..training import evaluate, fit
from ._arguments import non_negative_int, positive_int
from ._store_commands import tracker_option

__all__ = ["register"]

_EXIT_INVALID = 2
_LR, _WEIGHT_DECAY, _BATCH = 1e-2, 0.05, 32  # as examples/train.py's defaults


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="validate every spec; train, store, summarise, draw and reload a small model"
    )
    demo.add_argument("--spec", default="tiny_r2plus1d", help="the spec to train")
    demo.add_argument("--specs-dir", type=Path, default=Path("architectures/configs"))
    demo.add_argument("--root", type=Path, default=Path("models/saved_models"), help="the store")
    demo.add_argument("--readme", type=Path, default=Path("models/README.md"))
    demo.add_argument("--diagram", type=Path, help="default: build/<spec name>.svg")
    demo.add_argument(
        "--pretrained",
        type=Path,
        help="the model directory to write (default: beside the store, "
        "pretrained/<name>_<version>)",
    )
    demo.add_argument("--epochs", type=positive_int, default=5)
    demo.add_argument("--clips", type=positive_int, default=512, help="training clips")
    demo.add_argument("--val-clips", type=positive_int, default=256, help="validation clips")
    demo.add_argument("--keep", type=positive_int, default=2, help="files of each kind to keep")
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument(
        "--trackers",
        nargs="+",
        type=tracker_option,
        default=[],
        metavar="TRACKER",
        help="mirror every saved model: mlflow:TRACKING_URI, wandb:[ENTITY/]PROJECT, "
        "wandb-offline:[ENTITY/]PROJECT",
    )
    demo.set_defaults(handler=_demo)


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def _validate_specs(specs_dir: Path) -> bool:
    paths = sorted(specs_dir.glob("*.yaml")) if specs_dir.is_dir() else []
    if not paths:
        found = "has no *.yaml spec" if specs_dir.is_dir() else "does not exist"
        print(
            f"error: {specs_dir} {found}; run the demo from the repository's root (where "
            "architectures/configs is), or pass --specs-dir DIR",
            file=sys.stderr,
        )
        return False
    for path in paths:
        spec = load_spec(path)
        print(f"ok  {path}  ({spec.name} {spec.version}, {spec.fingerprint[:12]})")
    return True


def _describe(entry: Entry) -> str:
    size = f"{entry.size_bytes / 1024:.0f} KiB"
    if entry.kind == "checkpoint":
        return f"{entry.file:<40} training checkpoint, epoch {entry.epoch}, {size}"
    best = ", the best" if entry.is_best else ""
    acc = "-" if entry.value is None else format_value(entry.value)
    return f"{entry.file:<40} model, epoch {entry.epoch}, acc {acc}{best}, {size}"


def _demo(args: argparse.Namespace) -> int:
    _section(f"validate every spec in {args.specs_dir}")
    if not _validate_specs(args.specs_dir):
        return _EXIT_INVALID

    _section(f"train {args.spec} on MovingSquares into {args.root}")
    torch.manual_seed(args.seed)  # the initial weights
    model = build_model(args.spec)
    spec = model.spec
    train_set = MovingSquares("train", size=args.clips, shape=spec.input, seed=args.seed)
    val_set = MovingSquares("val", size=args.val_clips, shape=spec.input, seed=args.seed)
    params = sum(p.numel() for p in model.parameters())
    clip = "x".join(str(d) for d in spec.input)
    print(f"{spec.name} {spec.version}: {params:,} parameters; clips of {clip} (C x T x H x W)")
    print(
        f"{len(train_set)} training and {len(val_set)} validation clips, "
        f"{len(MovingSquares.CLASSES)} classes ({', '.join(MovingSquares.CLASSES)}): chance 0.25"
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LR, weight_decay=_WEIGHT_DECAY)
    steps = args.epochs * math.ceil(len(train_set) / _BATCH)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=_LR, total_steps=steps)
    print(f"AdamW, one-cycle schedule to lr {_LR} over {steps} steps; batches of {_BATCH}")
    store = ModelStore(args.root, trackers=args.trackers)
    _repair(store)
    checkpoint = store.resume(model, optimizer, scheduler)
    done = (checkpoint.epoch or 0) if checkpoint is not None else 0
    if checkpoint is None:
        print(f"no checkpoint of {spec.name} {spec.version} in {args.root}: starting at epoch 1")
    elif scheduler.total_steps != steps:  # the restored schedule was planned for other options
        print(
            f"error: {args.root} holds a run of {spec.name} {spec.version} at epoch {done}, "
            f"scheduled over {scheduler.total_steps} steps; --epochs {args.epochs} and --clips "
            f"{args.clips} make {steps}. Pass the options that run started with to continue "
            "it, or another --root to start afresh",
            file=sys.stderr,
        )
        return _EXIT_INVALID
    elif done == args.epochs:
        print(f"resumed from {checkpoint.path.name}: all {args.epochs} epochs are already done")
    else:
        print(f"resumed from {checkpoint.path.name}: continuing at epoch {done + 1}")
    started = time.perf_counter()
    pruned: list[Entry] = []
    for result in fit(
        model,
        optimizer,
        train_set,
        val_set,
        store,
        epochs=args.epochs,
        scheduler=scheduler,
        start_epoch=done,
        batch_size=_BATCH,
        seed=args.seed,
        keep_last=args.keep,
        notes=f"demo: MovingSquares, {len(train_set)} clips",
    ):
        print(
            f"epoch {result.epoch}/{result.epochs}  train loss {result.train_loss:.4f}  "
            f"val loss {result.val_loss:.4f}  val acc {result.val_acc:.4f}  "
            f"({result.seconds:.1f} s)"
        )
        pruned.extend(result.pruned)
    trained = time.perf_counter() - started

    _section(f"the store: {args.root}")
    best = _show_store(store, model, pruned, args)

    _section(f"the trained model: {spec.name} {spec.version}")
    print(summarize(model, depth=2).to_text())
    print(f"\ndiagram: {_draw(model, args.diagram or Path('build') / f'{spec.name}.svg')}")

    _section("reload from the store, sha256 checked")
    ok = _reload(store, model, best, val_set)

    _section("share: the model card and a Hub-style model directory")
    directory = args.pretrained or args.root.parent / "pretrained" / f"{spec.name}_{spec.version}"
    ok = _share(store, best, directory, val_set) and ok

    _section("summary")
    print(
        f"best validation accuracy {format_value(best.value or 0.0)} (epoch {best.epoch}; "
        f"chance 0.25); {args.epochs - done} epochs trained in this run in {trained:.1f} s"
    )
    print(f"store: {args.root}  best: {store.best_path(best.name, best.version)}")
    return 0 if ok else 1


def _repair(store: ModelStore) -> None:
    """A run killed in the middle of a save leaves a complete file the registry has not
    recorded yet, or a temporary file: ``sync`` adopts the one and deletes the other."""
    problems = store.verify(hashes=False)
    if not problems:
        return
    print(f"{store.root} was left inconsistent (an interrupted run?):")
    for problem in problems:
        print(f"  {problem}")
    report = store.sync()
    for what, files in (("adopted", report.adopted), ("deleted", report.deleted_leftovers)):
        if files:
            print(f"  sync {what} {', '.join(files)}")


def _show_store(
    store: ModelStore, model: VideoInterpreter, pruned: list[Entry], args: argparse.Namespace
) -> Entry:
    """The files by the naming convention, the best model, what pruning removed, and the
    registry table written into the README; returns the best model's entry."""
    spec = model.spec
    for entry in store.find(spec.name, spec.version):
        print(_describe(entry))
    best = store.best(spec.name, spec.version)
    print(f"{store.best_path(spec.name, spec.version).name:<40} the best model: {best.file}")
    print(f"\npruning kept the last {args.keep} of each kind and the best; this run removed:")
    for entry in pruned:
        print(f"  {entry.file}")
    if not pruned:
        print("  nothing")
    written = store.write_readme(args.readme)
    print(f"\nregistry table, written into {written}:\n")
    print(store.render_table())
    return best


def _reload(
    store: ModelStore, model: VideoInterpreter, best: Entry, val_set: MovingSquares
) -> bool:
    """The last saved model gives the outputs of the model in memory; the best one scores the
    validation accuracy recorded for it. Both are loaded with their sha256 checked."""
    spec = model.spec
    last = store.find(spec.name, spec.version, kind="model")[-1]
    reloaded = store.load(last).eval()
    clips = torch.stack([val_set[i][0] for i in range(min(8, len(val_set)))])
    model.eval()
    with torch.inference_mode():
        same = all(torch.equal(reloaded(clips)[h], model(clips)[h]) for h in spec.head_names)
    print(f"last model {last.file} (sha256 {last.sha256[:12]}...)")
    print(f"  outputs equal to those of the model in memory: {same}")
    _, accuracy = evaluate(store.load(best), val_set)
    agrees = accuracy == best.value
    print(f"best model {best.file} (sha256 {best.sha256[:12]}...)")
    print(
        f"  val acc {format_value(accuracy)}, recorded {format_value(best.value or 0.0)}: "
        f"{'the same' if agrees else 'DIFFERENT'}"
    )
    return same and agrees


def _share(store: ModelStore, best: Entry, directory: Path, val_set: MovingSquares) -> bool:
    """The best model's card in the store, the model as a directory from_pretrained loads
    with the same outputs."""
    print(f"model card: {store.write_card(best)}")
    save_pretrained(best.path, directory, notes=f"best {best.name} {best.version} of the demo")
    held = ", ".join(sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")))
    print(f"model directory: {directory} ({held})")
    clips = torch.stack([val_set[i][0] for i in range(min(8, len(val_set)))])
    stored, shared = store.load(best).eval(), from_pretrained(directory).eval()
    with torch.inference_mode():
        same = all(torch.equal(shared(clips)[h], stored(clips)[h]) for h in stored.spec.head_names)
    print(f"  from_pretrained gives the outputs of the stored best model: {same}")
    return same


def _draw(model: torch.nn.Module, out: Path) -> str:
    try:
        return str(render_diagram(model, out))
    except GraphvizNotFoundError:
        mermaid = render_diagram(model, out.with_suffix(".mmd"))
        return f"{mermaid} (Graphviz's dot is not installed, so Mermaid instead of {out.suffix})"
