"""``MovingSquares``: a synthetic video task that only time can solve, generated on the fly.

Two bright squares slide across a noisy clip, one horizontally (right or left) and one vertically
(down or up); the class is the pair of directions. A frame picked at random, and the mean of
all frames, have the same distribution whatever the class (a square's path is a streak, and a
streak drawn left to right looks like one drawn right to left), so a model has to compare
frames in order to do better than chance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import torch
from torch.utils.data import Dataset

from ..errors import TrainingError

__all__ = ["MovingSquares", "Split", "seed_of"]

Split = Literal["train", "val"]
_SPLITS: tuple[Split, ...] = ("train", "val")


def seed_of(*parts: int) -> int:
    """A seed for ``torch.Generator.manual_seed`` that depends on ``parts`` alone (a hash of
    them: neighbouring parts give unrelated streams)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # manual_seed takes 63 bits


class MovingSquares(Dataset[tuple[torch.Tensor, int]]):
    """Clips of two moving squares on noise, labelled by their directions (4 classes).

    ``dataset[i]`` is ``(clip, label)``: ``clip`` a float32 tensor of ``shape`` (C, T, H, W),
    ``label`` in ``0..3``, one of :attr:`CLASSES`. The horizontal square moves right (labels 0
    and 1) or left (2 and 3), the vertical one down (0 and 2) or up (1 and 3), both at constant
    speed; positions and noise are random. Item ``i`` depends only on ``(seed, split, i)``: it
    is the same in every process and in any order of access, and the splits never share a
    clip. Labels cycle through the classes, so every class has the same number of clips (to
    within one).

    ``shape`` is any ``(C, T, H, W)``, such as ``model.spec.input``, so any spec with a
    classification head of at least 4 classes can be smoke-tested on it. Squares are about an
    eighth of the smaller side and travel about half of it over the clip; ``noise`` is the
    standard deviation of the Gaussian background (squares are 1.0 brighter).
    """

    CLASSES: tuple[str, ...] = ("right+down", "right+up", "left+down", "left+up")

    def __init__(
        self,
        split: Split = "train",
        *,
        size: int = 1024,
        shape: Sequence[int] = (3, 8, 32, 32),
        noise: float = 0.3,
        seed: int = 0,
    ) -> None:
        if split not in _SPLITS:
            raise TrainingError(f"split must be 'train' or 'val', got {split!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise TrainingError(f"size must be a positive number of clips, got {size!r}")
        dims = tuple(shape)
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims):
            raise TrainingError(
                f"shape must be four positive integers (channels, frames, height, width), "
                f"got {shape!r}"
            )
        channels, frames, height, width = dims
        if frames < 2:
            raise TrainingError(f"a clip needs at least 2 frames to show motion, got {frames}")
        if not noise >= 0:
            raise TrainingError(f"noise must be a standard deviation >= 0, got {noise!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TrainingError(f"seed must be an integer >= 0, got {seed!r}")
        side = max(2, min(height, width) // 8)
        step = max(1, min(height, width) // (2 * (frames - 1)))
        travel = step * (frames - 1)
        if side + travel > min(height, width):
            raise TrainingError(
                f"{frames} frames of {height}x{width} leave no room for a {side}-pixel square "
                f"to move {travel} pixels; use fewer frames or larger frames "
                f"(at least {side + travel}x{side + travel})"
            )
        self.split: Split = split
        self.size = size
        self.shape = (channels, frames, height, width)
        self.noise = float(noise)
        self.seed = seed
        self.side, self.step, self.travel = side, step, travel

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (
            f"MovingSquares({self.split!r}, size={self.size}, shape={self.shape}, "
            f"noise={self.noise}, seed={self.seed})"
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.size <= index < self.size:
            raise IndexError(f"clip {index} of a MovingSquares of {self.size} clips")
        index %= self.size
        label = index % len(self.CLASSES)
        leftward, upward = divmod(label, 2)
        rng = torch.Generator().manual_seed(seed_of(self.seed, _SPLITS.index(self.split), index))
        channels, frames, height, width = self.shape
        side, step, travel = self.side, self.step, self.travel

        def draw(high: int) -> int:  # uniform in 0..high-1
            return int(torch.randint(high, (), generator=rng))

        clip = torch.randn((frames, height, width), generator=rng) * self.noise
        moves = [step * t for t in range(frames)]
        # The horizontal square: a random row, a start that keeps its whole path in the frame.
        row, start = draw(height - side + 1), draw(width - side - travel + 1)
        xs = [start + (travel - m if leftward else m) for m in moves]
        # The vertical square, likewise along a random column.
        column, start = draw(width - side + 1), draw(height - side - travel + 1)
        ys = [start + (travel - m if upward else m) for m in moves]
        for t in range(frames):
            clip[t, row : row + side, xs[t] : xs[t] + side] += 1.0
            clip[t, ys[t] : ys[t] + side, column : column + side] += 1.0
        return clip.unsqueeze(0).expand(channels, -1, -1, -1).contiguous(), label
