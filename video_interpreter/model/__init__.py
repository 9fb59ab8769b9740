"""The model stage: ``VideoInterpreter`` and the factory that builds it from a spec."""

from ._factory import DeviceLike, allocate, build_meta, build_model, materialize
from ._init import InitStep, init_plan, initialize, initializer_for, run_plan
from ._model import VideoInterpreter
from ._preprocess import Preprocess

__all__ = [
    "DeviceLike",
    "InitStep",
    "Preprocess",
    "VideoInterpreter",
    "allocate",
    "build_meta",
    "build_model",
    "init_plan",
    "initialize",
    "initializer_for",
    "materialize",
    "run_plan",
]
