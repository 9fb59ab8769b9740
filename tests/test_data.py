"""MovingSquares: deterministic per (seed, split, index), labelled by the directions the squares
really move in, balanced, and refusing shapes it cannot draw."""

from __future__ import annotations

import pytest
import torch

from video_interpreter import TrainingError
from video_interpreter.data import MovingSquares

SHAPE = (3, 8, 32, 32)


def _centroids(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame, the mean column and row of the bright pixels (both squares together)."""
    bright = (clip[0] > 0.5).float()  # (T, H, W)
    rows = torch.arange(clip.shape[2], dtype=torch.float32)
    columns = torch.arange(clip.shape[3], dtype=torch.float32)
    mass = bright.sum(dim=(1, 2))
    x = (bright.sum(dim=1) * columns).sum(dim=1) / mass
    y = (bright.sum(dim=2) * rows).sum(dim=1) / mass
    return x, y


def test_an_item_depends_only_on_seed_split_and_index() -> None:
    train = MovingSquares("train", size=16, shape=SHAPE, seed=3)
    clip, label = train[5]
    again, same_label = MovingSquares("train", size=64, shape=SHAPE, seed=3)[5]
    assert torch.equal(clip, again)
    assert label == same_label
    assert not torch.equal(clip, MovingSquares("val", size=16, shape=SHAPE, seed=3)[5][0])
    assert not torch.equal(clip, MovingSquares("train", size=16, shape=SHAPE, seed=4)[5][0])
    assert torch.equal(train[-11][0], clip)


def test_clips_have_the_requested_shape_and_every_class_as_often() -> None:
    dataset = MovingSquares("val", size=12, shape=(1, 4, 16, 24))
    clips = [dataset[i] for i in range(len(dataset))]
    assert all(clip.shape == (1, 4, 16, 24) and clip.dtype == torch.float32 for clip, _ in clips)
    assert sorted(label for _, label in clips) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_labels_name_the_directions_the_squares_move_in() -> None:
    dataset = MovingSquares("train", size=8, shape=SHAPE, noise=0.0)
    for index in range(len(dataset)):
        clip, label = dataset[index]
        x, y = _centroids(clip)
        horizontal = "right" if x[-1] > x[0] else "left"
        vertical = "down" if y[-1] > y[0] else "up"
        assert MovingSquares.CLASSES[label] == f"{horizontal}+{vertical}"


def test_every_channel_shows_the_same_frames() -> None:
    clip, _ = MovingSquares(shape=SHAPE)[0]
    assert torch.equal(clip[0], clip[2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "split must be 'train' or 'val', got 'test'"),
        ({"size": 0}, "size must be a positive number of clips, got 0"),
        ({"shape": (3, 8, 32)}, r"shape must be four positive integers .* got \(3, 8, 32\)"),
        ({"shape": (3, 1, 32, 32)}, "needs at least 2 frames to show motion, got 1"),
        ({"shape": (3, 16, 12, 12)}, r"leave no room .* \(at least 17x17\)"),
        ({"noise": -1.0}, "noise must be a standard deviation >= 0, got -1.0"),
        ({"seed": -2}, "seed must be an integer >= 0, got -2"),
    ],
)
def test_arguments_that_cannot_work_are_refused_with_what_would(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TrainingError, match=message):
        MovingSquares(**kwargs)  # type: ignore[arg-type]


def test_an_index_past_the_end_is_an_index_error() -> None:
    with pytest.raises(IndexError, match="clip 4 of a MovingSquares of 4 clips"):
        MovingSquares(size=4, shape=SHAPE)[4]
