"""Synthetic data for smoke-testing specs and training loops; needs no download.

::

    from video_interpreter.data import MovingSquares
    train = MovingSquares("train", size=1024, shape=model.spec.input)
    clip, label = train[0]              # (C, T, H, W) float32, label in 0..3

``MovingSquares`` is a task that needs time: two squares move, and the class is which way each
one goes, so no single frame and no average of frames tells the classes apart.
"""

from ._moving_squares import MovingSquares, Split
from ._moving_squares import seed_of as seed_of

__all__ = [
    "MovingSquares",
    "Split",
]
