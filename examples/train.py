"""Train a spec on MovingSquares for a few epochs, saving every epoch into a model store.

    python examples/train.py                   # tiny_r2plus1d, 5 epochs, into models/saved_models
    python examples/train.py --resume          # after an interruption: go on where it stopped
    python examples/train.py --spec my.yaml --epochs 10 --store runs/mine

Every epoch leaves a training checkpoint in the store ({name}_{version}_epoch_0003.pth: weights,
optimizer, scheduler and RNG states, training loss) and the model named by its validation
accuracy ({name}_{version}_acc_0.97.pth); the store keeps the best one ({name}_{version}_best.pth)
and prunes all but the last --keep of each. Stopped at any point and rerun with --resume, the
run ends with the same weights as a run that never stopped.
"""

from __future__ import annotations

import argparse
import math

import torch

from video_interpreter import ModelStore, build_model
from video_interpreter.data import MovingSquares
from video_interpreter.training import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="tiny_r2plus1d", help="a spec file or a spec name")
    parser.add_argument("--store", default="models/saved_models", help="the model store")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--clips", type=int, default=512, help="training clips per epoch")
    parser.add_argument("--val-clips", type=int, default=256, help="validation clips")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW's peak learning rate")
    parser.add_argument("--keep", type=int, default=2, help="checkpoints and models to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the store's last run")
    args = parser.parse_args()

    # The model and the data: the spec says the clip shape; the head needs >= 4 classes.
    torch.manual_seed(args.seed)  # the initial weights (and dropout, if the spec has any)
    model = build_model(args.spec)
    train_set = MovingSquares("train", size=args.clips, shape=model.spec.input, seed=args.seed)
    val_set = MovingSquares("val", size=args.val_clips, shape=model.spec.input, seed=args.seed)
    params = sum(p.numel() for p in model.parameters())
    print(f"{model.spec.name} {model.spec.version}: {params:,} parameters, {len(train_set)} clips")

    # AdamW, and a one-cycle schedule over every batch of the run (warm-up, then annealing).
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps = args.epochs * math.ceil(len(train_set) / args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)

    # The store; with --resume, weights, optimizer, scheduler and RNGs come back from the latest
    # checkpoint (its sha256 checked against the registry) and training goes on after it.
    store = ModelStore(args.store)
    done = 0
    if args.resume:
        checkpoint = store.resume(model, optimizer, scheduler)
        done = checkpoint.epoch or 0 if checkpoint else 0
        if scheduler.total_steps != steps:
            parser.error("resume with the --epochs, --clips and --batch-size the run began with")
        print(f"resumed after epoch {done}" if done else "nothing to resume: starting afresh")

    # Each epoch: train, evaluate, save the checkpoint and the ranked model, prune.
    for result in fit(
        model,
        optimizer,
        train_set,
        val_set,
        store,
        epochs=args.epochs,
        scheduler=scheduler,
        start_epoch=done,
        batch_size=args.batch_size,
        seed=args.seed,
        keep_last=args.keep,
    ):
        print(
            f"epoch {result.epoch}/{result.epochs}: train loss {result.train_loss:.4f}, "
            f"val loss {result.val_loss:.4f}, val acc {result.val_acc:.4f} "
            f"({result.seconds:.1f} s) -> {result.checkpoint.file}, {result.model.file}"
        )
        for entry in result.pruned:
            print(f"  pruned {entry.file}")

    best = store.best(model.spec.name, model.spec.version)
    print(f"best: {best.file} (val acc {best.metrics['acc']:.4f}, epoch {best.epoch})")


if __name__ == "__main__":
    main()
