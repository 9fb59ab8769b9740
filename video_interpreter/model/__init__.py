"""The model stage: ``VideoInterpreter`` and the factory that builds it from a spec."""

from ._factory import build_meta, build_model, initialize, initializer_for, materialize
from ._model import VideoInterpreter

__all__ = [
    "VideoInterpreter",
    "build_meta",
    "build_model",
    "initialize",
    "initializer_for",
    "materialize",
]
