"""resume: training continued from a checkpoint is bit-identical to training never stopped."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from video_interpreter.checkpoint import load_checkpoint, resume, save_model
from video_interpreter.errors import CheckpointError
from video_interpreter.model import VideoInterpreter

from .test_checkpoint import tiny_model

Trainer = tuple[VideoInterpreter, torch.optim.SGD, torch.optim.lr_scheduler.StepLR]


def _trainer(seed: int) -> Trainer:
    model = tiny_model(seed=seed, dropout=0.5)  # dropout: the torch RNG state matters
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler


def _train(trainer: Trainer, steps: int) -> None:
    model, optimizer, scheduler = trainer
    model.train()
    for _ in range(steps):
        clip = torch.randn(4, 3, 4, 16, 16)  # data from the torch RNG
        if random.random() < 0.5:  # augmentation from Python's RNG
            clip = clip.flip(-1)
        target = torch.randint(0, 5, (4,))
        loss = nn.functional.cross_entropy(model(clip)["action"], target)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        scheduler.step()


def _seed(value: int) -> None:
    torch.manual_seed(value)
    random.seed(value)


def test_resumed_training_is_bit_identical_to_uninterrupted_training(tmp_path: Path) -> None:
    path = tmp_path / "run.pth"
    _seed(0)
    uninterrupted = _trainer(seed=0)
    _train(uninterrupted, 3)
    model, optimizer, scheduler = uninterrupted
    save_model(model, path, optimizer=optimizer, scheduler=scheduler, epoch=0, step=3)
    _train(uninterrupted, 4)

    _seed(12345)  # a fresh process: other seeds, other initial weights, fresh optimizer
    resumed = _trainer(seed=99)
    checkpoint = resume(resumed[0], path, *resumed[1:])
    assert (checkpoint.epoch, checkpoint.step) == (0, 3)
    _train(resumed, 4)

    expected, actual = uninterrupted[0].state_dict(), resumed[0].state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert uninterrupted[2].get_last_lr() == resumed[2].get_last_lr()
    momentum = [uninterrupted[1].state[p]["momentum_buffer"] for p in uninterrupted[0].parameters()]
    resumed_momentum = [resumed[1].state[p]["momentum_buffer"] for p in resumed[0].parameters()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, resumed_momentum, strict=True))


def test_without_rng_restoration_the_continuation_differs(tmp_path: Path) -> None:
    """The check above can fail: RNG state is what makes dropout and data repeat."""
    path = tmp_path / "run.pth"
    _seed(0)
    uninterrupted = _trainer(seed=0)
    _train(uninterrupted, 2)
    save_model(uninterrupted[0], path, optimizer=uninterrupted[1], scheduler=uninterrupted[2])
    _train(uninterrupted, 2)
    _seed(12345)
    resumed = _trainer(seed=99)
    resume(resumed[0], path, *resumed[1:], restore_rng=False)
    _train(resumed, 2)
    assert not torch.equal(
        uninterrupted[0].get_parameter("heads.action.fc.weight"),
        resumed[0].get_parameter("heads.action.fc.weight"),
    )


def test_resume_needs_the_optimizer_state_it_is_asked_to_restore(tmp_path: Path) -> None:
    model, optimizer, _ = _trainer(seed=0)
    saved = save_model(model, tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"holds no optimizer state \(safetensors"):
        resume(model, saved.path, optimizer)
    resume(model, saved.path)  # weights alone are fine


def test_resume_refuses_another_architecture_with_a_diff(tmp_path: Path) -> None:
    model, optimizer, _ = _trainer(seed=0)
    saved = save_model(model, tmp_path / "run.pth", optimizer=optimizer)
    other = tiny_model(num_classes=3)
    with pytest.raises(CheckpointError, match="num_classes: 3"):
        resume(other, saved.path)


def test_resume_reads_the_seed_training_dict(tmp_path: Path) -> None:
    model, optimizer, _ = _trainer(seed=0)
    _train((model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 1)), 1)
    path = tmp_path / "seed.pth"
    torch.save(
        {
            "epoch": 1,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "loss": 0.5,
        },
        path,
    )
    target, target_optimizer, _ = _trainer(seed=5)
    checkpoint = resume(target, path, target_optimizer)
    assert checkpoint.epoch == 1
    weight = "backbone.0.weight"
    assert torch.equal(target.get_parameter(weight), model.get_parameter(weight))
    assert load_checkpoint(path).spec is None
