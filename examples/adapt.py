"""Bring a saved 400-class v1 checkpoint into a 10-class, 8-frame, 128x128 spec and store it.

    python examples/adapt.py k400_v1.pth                      # adapt, evaluate, store
    python examples/adapt.py k400_v1.pth --epochs 2           # adapt, fine-tune, store each epoch
    python examples/adapt.py k400_v1.pth --make-source        # write a stand-in source first

The new spec is v1 with three overrides (head, frames, size) and its own version. The weights
come across by the rules v1's layers declare: the head is re-initialised (another class count),
and nothing else changes, since convolutions do not depend on the clip size. The load report
lists every tensor adapted; a tensor with no rule would be refused. The adapted model goes into
the model store, ranked by its validation accuracy on MovingSquares (fine-tuned with --epochs).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from video_interpreter import ModelStore, build_model, load_model, save_model
from video_interpreter.data import MovingSquares
from video_interpreter.spec import ArchitectureSpec, load_spec
from video_interpreter.store import Entry
from video_interpreter.training import evaluate, fit


def target_spec(classes: int, frames: int, size: int) -> ArchitectureSpec:
    """v1 with another head, clip length and size, under a version of its own."""
    return load_spec(
        "v1",
        overrides=[
            f"heads.action.num_classes={classes}",
            f"input.frames={frames}",
            f"input.height={size}",
            f"input.width={size}",
            f"version=v1-{classes}c-{frames}x{size}",
        ],
    )


def adapt_into_store(
    source: Path,
    store: ModelStore,
    spec: ArchitectureSpec,
    *,
    epochs: int = 0,
    clips: int = 64,
    val_clips: int = 32,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
) -> Entry:
    """Adapt ``source`` to ``spec``, fine-tune it for ``epochs`` (0: evaluate only) on
    MovingSquares, and save it into ``store``; return the store's entry for it."""
    torch.manual_seed(seed)  # the re-initialised head's draw
    model, report = load_model(source, spec=spec, adapt=True, return_report=True)
    print(report)
    val_set = MovingSquares("val", size=val_clips, shape=spec.input, seed=seed)
    if epochs == 0:
        loss, acc = evaluate(model, val_set, batch_size=batch_size)
        return store.save(
            model, metrics={"acc": acc, "loss": loss}, notes=f"adapted from {source.name}"
        )
    train_set = MovingSquares("train", size=clips, shape=spec.input, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(train_set) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for result in fit(
        model,
        optimizer,
        train_set,
        val_set,
        store,
        epochs=epochs,
        scheduler=scheduler,
        batch_size=batch_size,
        seed=seed,
        notes=f"fine-tuned from {source.name}",
    ):
        print(f"epoch {result.epoch}: val acc {result.val_acc:.4f} -> {result.model.file}")
    return store.best(spec.name, spec.version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a saved 400-class v1 checkpoint")
    parser.add_argument("--make-source", action="store_true", help="first write a stand-in")
    parser.add_argument("--store", default="models/saved_models", help="the model store")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=0, help="fine-tuning epochs (0: none)")
    parser.add_argument("--clips", type=int, default=64, help="training clips per epoch")
    parser.add_argument("--val-clips", type=int, default=32)
    args = parser.parse_args()
    if args.make_source:  # random weights standing in for a Kinetics-400 run's
        save_model(build_model("v1"), args.source, notes="stand-in 400-class v1")
    spec = target_spec(args.classes, args.frames, args.size)
    entry = adapt_into_store(
        args.source,
        ModelStore(args.store),
        spec,
        epochs=args.epochs,
        clips=args.clips,
        val_clips=args.val_clips,
    )
    print(f"stored {entry.file} ({spec.name} {spec.version}, val acc {entry.metrics['acc']:.4f})")


if __name__ == "__main__":
    main()
