"""fit: models that see time learn MovingSquares and models blind to frame order cannot; every
epoch lands in the store; a run stopped after an epoch and resumed ends bit-identical."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from video_interpreter import CheckpointError, ModelStore, TrainingError, build_model
from video_interpreter.checkpoint import load_checkpoint
from video_interpreter.data import MovingSquares
from video_interpreter.model import VideoInterpreter
from video_interpreter.training import EpochResult, evaluate, fit

from . import conftest
from .test_store import flip_byte


def _conv_net(name: str, temporal_kernel: int, *, pool_time_first: bool = False) -> dict[str, Any]:
    """Two 3D convolutions on 8x32x32 clips; ``temporal_kernel=1`` sees each frame alone and
    pools the frames only at the end; ``pool_time_first`` averages the frames before anything."""
    pad = temporal_kernel // 2

    def conv(width: int) -> dict[str, Any]:
        return {
            "type": "Conv3d",
            "out_channels": width,
            "kernel_size": [temporal_kernel, 3, 3],
            "stride": [1, 2, 2],
            "padding": [pad, 1, 1],
            "bias": False,
        }

    first = [{"type": "AvgPool3d", "kernel_size": [8, 1, 1]}] if pool_time_first else []
    return {
        "spec_version": 1,
        "name": name,
        "version": "v1",
        "init": "resnet",
        "input": {"channels": 3, "frames": 8, "height": 32, "width": 32},
        "backbone": [
            *first,
            *(conv(8), {"type": "BatchNorm3d"}, {"type": "ReLU"}),
            *(conv(16), {"type": "BatchNorm3d"}, {"type": "ReLU"}),
        ],
        "neck": {"type": "GlobalAvgPool3d"},
        "heads": {"action": {"type": "ClassificationHead", "num_classes": 4}},
    }


def _run(
    model: VideoInterpreter,
    store: ModelStore,
    *,
    epochs: int,
    clips: int,
    lr: float,
    batch_size: int = 32,
    val_clips: int = 16,
    resume: bool = False,
    stop_after: int | None = None,
    keep_last: int = 2,
) -> list[EpochResult]:
    """What examples/train.py does: AdamW, a one-cycle schedule, optionally resumed."""
    train = MovingSquares("train", size=clips, shape=model.spec.input)
    val = MovingSquares("val", size=val_clips, shape=model.spec.input)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(clips / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    checkpoint = store.resume(model, optimizer, scheduler) if resume else None
    results = []
    for result in fit(
        model,
        optimizer,
        train,
        val,
        store,
        epochs=epochs,
        scheduler=scheduler,
        start_epoch=(checkpoint.epoch or 0) if checkpoint else 0,
        batch_size=batch_size,
        keep_last=keep_last,
    ):
        results.append(result)
        if result.epoch == stop_after:
            break  # the process dies here: whatever it held in memory is lost
    return results


@pytest.mark.parametrize(
    ("spec", "learns"),
    [
        (_conv_net("spatio_temporal", 3), True),
        (_conv_net("per_frame", 1), False),
        (_conv_net("frame_mean", 1, pool_time_first=True), False),
    ],
    ids=["3x3x3 convolutions learn", "per-frame features stay at chance", "mean frame too"],
)
def test_only_a_model_that_compares_frames_learns_moving_squares(
    tmp_path: Path, spec: dict[str, Any], learns: bool
) -> None:
    torch.manual_seed(0)
    model = build_model(spec)
    results = _run(model, ModelStore(tmp_path), epochs=3, clips=384, lr=3e-2, val_clips=128)
    best = max(result.val_acc for result in results)
    if learns:
        assert best >= 0.9
    else:
        assert best <= 0.4  # chance is 0.25 (128 validation clips)


def _tiny_r2plus1d(seed: int) -> VideoInterpreter:
    torch.manual_seed(seed)
    # Dropout draws from the global RNG: resuming must restore it too.
    return build_model("tiny_r2plus1d", overrides=["heads.action.dropout=0.5"])


def test_a_run_stopped_after_its_first_epoch_and_resumed_ends_with_the_same_weights(
    tmp_path: Path,
) -> None:
    settings: dict[str, Any] = {"epochs": 2, "clips": 64, "lr": 3e-3, "batch_size": 16}
    uninterrupted = _tiny_r2plus1d(seed=0)
    _run(uninterrupted, ModelStore(tmp_path / "a"), **settings)

    store = ModelStore(tmp_path / "b")
    stopped = _tiny_r2plus1d(seed=0)
    assert [r.epoch for r in _run(stopped, store, **settings, stop_after=1)] == [1]
    del stopped
    torch.manual_seed(12345)  # a new process: the global RNG is somewhere else entirely
    resumed = _tiny_r2plus1d(seed=99)  # other initial weights, a fresh optimizer
    assert [r.epoch for r in _run(resumed, store, **settings, resume=True)] == [2]

    expected, actual = uninterrupted.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    saved = store.load(store.find(kind="model")[-1])
    assert all(torch.equal(saved.state_dict()[k], actual[k]) for k in actual)


def test_every_epoch_saves_a_checkpoint_and_a_ranked_model_and_prunes_the_rest(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path)
    model = _tiny_r2plus1d(seed=0)
    results = _run(model, store, epochs=3, clips=32, lr=3e-3, keep_last=1)
    assert [r.checkpoint.file for r in results] == [
        f"tiny_r2plus1d_v1_epoch_000{epoch}.pth" for epoch in (1, 2, 3)
    ]
    for result in results:
        assert result.model.file.startswith("tiny_r2plus1d_v1_acc_")
        assert result.model.metrics["acc"] == result.val_acc
        assert result.best.value == max(r.val_acc for r in results[: result.epoch])
    pruned = [e.file for e in results[1].pruned]
    assert results[0].checkpoint.file in pruned
    first_is_best = results[1].best.file == results[0].model.file
    assert (results[0].model.file in pruned) is not first_is_best  # the best is always kept

    checkpoint = load_checkpoint(results[-1].checkpoint.path)
    assert checkpoint.epoch == 3
    assert checkpoint.loss == pytest.approx(results[-1].train_loss)
    assert checkpoint.optimizer_state_dict is not None
    assert checkpoint.scheduler_state_dict is not None
    assert checkpoint.metrics["acc"] == results[-1].val_acc
    best = results[-1].best
    assert {e.epoch for e in store.find(kind="model")} == {3, best.epoch}
    assert [e.epoch for e in store.find(kind="checkpoint")] == [3]
    assert store.best_path("tiny_r2plus1d", "v1").is_file()


def test_a_fresh_run_into_a_store_holding_a_later_checkpoint_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _run(_tiny_r2plus1d(seed=0), store, epochs=1, clips=16, lr=3e-3)
    with pytest.raises(TrainingError, match=r"already holds tiny_r2plus1d_v1_epoch_0001\.pth"):
        _run(_tiny_r2plus1d(seed=0), store, epochs=1, clips=16, lr=3e-3)


def test_resume_from_a_store_without_checkpoints_changes_nothing(tmp_path: Path) -> None:
    model = _tiny_r2plus1d(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert ModelStore(tmp_path).resume(model) is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_resume_takes_the_latest_checkpoint_and_checks_its_sha256(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    model = build_model(conftest.tiny_spec())
    optimizer = torch.optim.AdamW(model.parameters())
    for epoch in (2, 10, 9):  # retention order is by epoch number, not by name or save time
        store.save_checkpoint(model, epoch=epoch, optimizer=optimizer)
    latest = store.latest_checkpoint("tiny", "v1")
    assert latest is not None
    assert latest.file == "tiny_v1_epoch_0010.pth"
    checkpoint = store.resume(model, optimizer)
    assert checkpoint is not None
    assert checkpoint.epoch == 10
    flip_byte(latest.path)
    with pytest.raises(CheckpointError, match="sha256"):
        store.resume(model, optimizer)


def test_a_model_with_several_heads_must_name_the_one_to_train(tmp_path: Path) -> None:
    model = build_model("tiny_resnet")
    data = MovingSquares(size=4, shape=model.spec.input)
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(TrainingError, match="heads are action, scene and no head was named"):
        fit(model, optimizer, data, data, ModelStore(tmp_path), epochs=1)
    with pytest.raises(TrainingError, match="head 'verb' is not among them"):
        fit(model, optimizer, data, data, ModelStore(tmp_path), epochs=1, head="verb")


def test_labels_beyond_the_heads_classes_are_a_clear_error(tmp_path: Path) -> None:
    model = build_model(conftest.tiny_spec(num_classes=2))
    data = MovingSquares(size=8, shape=model.spec.input)
    with pytest.raises(TrainingError, match="label 3 does not fit head 'action', which has 2"):
        evaluate(model, data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"start_epoch": 3}, r"start_epoch 3 is past the last epoch \(2\)"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"keep_last": 0}, "keep_last must be an integer >= 1, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_fit_checks_its_arguments_before_training(
    tmp_path: Path, changes: dict[str, int], message: str
) -> None:
    model = build_model(conftest.tiny_spec(num_classes=4))
    data = MovingSquares(size=4, shape=model.spec.input)
    optimizer = torch.optim.AdamW(model.parameters())
    arguments: dict[str, Any] = {"epochs": 2, **changes}
    with pytest.raises(TrainingError, match=message):
        fit(model, optimizer, data, data, ModelStore(tmp_path), **arguments)
