"""``fit``: train a model epoch by epoch, saving every epoch into a ``ModelStore``; on top of
the store stage.

Each epoch trains on the training set in an order drawn from ``(seed, epoch)`` alone, evaluates
on the validation set, saves a training checkpoint (weights, optimizer, scheduler and RNG states,
loss and metrics) and the model ranked by its validation accuracy, then prunes the store to the
last ``keep_last`` of each. The order depends on nothing else and the checkpoint holds every
other state, so a run stopped after any epoch and continued with ``store.resume`` ends with the
same weights as a run that never stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import seed_of
from ..errors import TrainingError
from ..store import Entry, ModelStore

__all__ = ["EpochResult", "evaluate", "fit", "train_one_epoch"]

logger = logging.getLogger(__name__)

Examples = Dataset[tuple[torch.Tensor, int]]  # (clip (C, T, H, W), label)


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of ``fit`` measured and what it left in the store."""

    epoch: int  # 1-based
    epochs: int
    train_loss: float
    val_loss: float
    val_acc: float
    lr: float  # the learning rate at the end of the epoch
    seconds: float
    checkpoint: Entry  # {name}_{version}_epoch_{epoch:04d}.pth: resumable training state
    model: Entry  # {name}_{version}_acc_{val_acc}.pth: the weights, ranked by val_acc
    best: Entry  # the best saved model so far
    pruned: tuple[Entry, ...]  # files removed by retention after this epoch


def _head_of(model: nn.Module, head: str | None) -> str:
    spec = getattr(model, "spec", None)
    heads: tuple[str, ...] = getattr(spec, "head_names", ())
    if head is None and len(heads) == 1:
        return heads[0]
    if head is None or head not in heads:
        given = "no head was named" if head is None else f"head {head!r} is not among them"
        raise TrainingError(
            f"the model's heads are {', '.join(heads) or 'unknown'} and {given}; pass head= "
            "with the classification head to train (a model built with build_model)"
        )
    return head


def _loader(dataset: Examples, batch_size: int, seed: int, shuffle: bool) -> DataLoader[Any]:
    # A generator of the loader's own, so neither the order nor the loader's seed draws from
    # (or depends on) the global RNG that dropout and augmentation use.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _loss(logits: torch.Tensor, labels: torch.Tensor, head: str) -> torch.Tensor:
    if labels.numel() and int(labels.max()) >= logits.shape[1]:
        raise TrainingError(
            f"label {int(labels.max())} does not fit head {head!r}, which has "
            f"{logits.shape[1]} classes; use a head with at least {int(labels.max()) + 1}"
        )
    return nn.functional.cross_entropy(logits, labels)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[Any],
    *,
    head: str,
    scheduler: Any = None,
) -> float:
    """One pass over ``loader`` in train mode; ``scheduler`` (if any) steps after every batch.
    Returns the mean training loss.

    Examples:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from video_interpreter import MovingSquares, build_model
        >>> from video_interpreter.training import train_one_epoch
        >>> model = build_model("tiny_r2plus1d")
        >>> optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        >>> loader = DataLoader(MovingSquares(size=32), batch_size=16)
        >>> train_one_epoch(model, optimizer, loader, head="action") > 0   # the mean training loss
        True
    """
    model.train()
    total, count = 0.0, 0
    for clips, labels in loader:  # clips: (B, C, T, H, W), labels: (B,)
        loss = _loss(model(clips)[head], labels, head)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(labels)
        count += len(labels)
    return total / max(count, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset: Examples, *, head: str | None = None, batch_size: int = 64
) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy of ``model``'s ``head`` on ``dataset``, in eval
    mode (the model's mode is put back).

    Examples:
        >>> from video_interpreter import MovingSquares, build_model
        >>> from video_interpreter.training import evaluate
        >>> loss, accuracy = evaluate(build_model("tiny_r2plus1d"), MovingSquares("val", size=16))
        >>> 0.0 <= accuracy <= 1.0
        True
    """
    name = _head_of(model, head)
    was_training = model.training
    model.eval()
    try:
        total, correct, count = 0.0, 0, 0
        for clips, labels in _loader(dataset, batch_size, 0, shuffle=False):
            logits = model(clips)[name]
            total += float(_loss(logits, labels, name)) * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
    finally:
        model.train(was_training)
    return total / max(count, 1), correct / max(count, 1)


def _at_least(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainingError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_set: Examples,
    val_set: Examples,
    store: ModelStore,
    *,
    epochs: int,
    scheduler: Any = None,
    start_epoch: int = 0,
    batch_size: int = 32,
    seed: int = 0,
    keep_last: int = 2,
    head: str | None = None,
    notes: str = "",
) -> Iterator[EpochResult]:
    """Train ``model`` (built with ``build_model``) for epochs ``start_epoch + 1 .. epochs``,
    yielding an ``EpochResult`` after each one has been saved into ``store``.

    To continue a stopped run, restore it first and start after its last epoch::

        checkpoint = store.resume(model, optimizer, scheduler)   # None: nothing to resume
        for result in fit(..., start_epoch=checkpoint.epoch if checkpoint else 0): ...

    Every epoch saves ``{name}_{version}_epoch_{epoch:04d}.pth`` (``store.save_checkpoint``:
    weights, optimizer and scheduler states, RNG states, training loss and metrics) and
    ``{name}_{version}_acc_{val_acc}.pth`` (``store.save``: ranked by ``acc``, the validation
    accuracy; the store keeps the best), then ``store.prune(keep_last)``. ``scheduler`` steps
    after every batch. The arguments are checked here, before any training; a store that
    already holds later checkpoints of this model is refused, so two runs never mix.

    Examples:
        >>> import torch
        >>> from video_interpreter import ModelStore, MovingSquares, build_model, fit
        >>> model = build_model("tiny_r2plus1d")
        >>> optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        >>> train, val = MovingSquares("train", size=32), MovingSquares("val", size=16)
        >>> store = ModelStore("store")
        >>> for result in fit(model, optimizer, train, val, store, epochs=1, batch_size=16):
        ...     print(result.epoch, result.model.file)
        1 tiny_r2plus1d_v1_acc_...pth
    """
    name = _head_of(model, head)
    epochs = _at_least("epochs", epochs, 1)
    start_epoch = _at_least("start_epoch", start_epoch, 0)
    if start_epoch > epochs:
        raise TrainingError(f"start_epoch {start_epoch} is past the last epoch ({epochs})")
    batch_size = _at_least("batch_size", batch_size, 1)
    seed = _at_least("seed", seed, 0)
    keep_last = _at_least("keep_last", keep_last, 1)
    spec = getattr(model, "spec", None)
    if spec is not None:
        latest = store.latest_checkpoint(spec.name, spec.version)
        if latest is not None and (latest.epoch or 0) > start_epoch:
            raise TrainingError(
                f"{store.root} already holds {latest.file} (epoch {latest.epoch}) of "
                f"{spec.name} {spec.version}; continue that run with store.resume(model, "
                "optimizer, scheduler), or train into another store"
            )
    return _epochs(
        model,
        optimizer,
        scheduler,
        train_set,
        val_set,
        store,
        range(start_epoch + 1, epochs + 1),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        keep_last=keep_last,
        head=name,
        notes=notes,
    )


def _epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train_set: Examples,
    val_set: Examples,
    store: ModelStore,
    numbers: range,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    keep_last: int,
    head: str,
    notes: str,
) -> Iterator[EpochResult]:
    for epoch in numbers:
        started = time.perf_counter()
        # The order of an epoch depends only on (seed, epoch): a resumed run draws the same.
        order = seed_of(seed, epoch)
        loader = _loader(train_set, batch_size, order, shuffle=True)
        train_loss = train_one_epoch(model, optimizer, loader, head=head, scheduler=scheduler)
        val_loss, val_acc = evaluate(model, val_set, head=head, batch_size=2 * batch_size)
        metrics = {"acc": val_acc, "val_loss": val_loss}
        note = f"epoch {epoch}/{epochs}" + (f"; {notes}" if notes else "")
        checkpoint = store.save_checkpoint(
            model,
            epoch=epoch,
            step=epoch * len(loader),
            loss=train_loss,
            metrics=metrics,
            optimizer=optimizer,
            scheduler=scheduler,
            notes=note,
        )
        saved = store.save(model, metrics=metrics, epoch=epoch, loss=train_loss, notes=note)
        pruned = store.prune(keep_last, name=saved.name, version=saved.version)
        kept = {entry.file: entry for entry in pruned.kept}
        result = EpochResult(
            epoch=epoch,
            epochs=epochs,
            train_loss=train_loss,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=float(optimizer.param_groups[0]["lr"]),
            seconds=time.perf_counter() - started,
            checkpoint=checkpoint,
            model=kept.get(saved.file, saved),
            best=store.best(saved.name, saved.version),
            pruned=pruned.removed,
        )
        logger.info("epoch %d/%d: val acc %.4f (%s)", epoch, epochs, val_acc, saved.file)
        yield result
