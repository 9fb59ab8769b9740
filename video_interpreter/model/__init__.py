"""The model stage: ``VideoInterpreter`` and the factory that builds it from a spec."""

from ._factory import DeviceLike, build_model
from ._factory import allocate as allocate
from ._factory import build_meta as build_meta
from ._factory import materialize as materialize
from ._init import InitStep as InitStep
from ._init import init_plan as init_plan
from ._init import initialize as initialize
from ._init import initializer_for as initializer_for
from ._init import run_plan as run_plan
from ._model import DEFAULT_SPEC, VideoInterpreter
from ._preprocess import Preprocess

__all__ = [
    "DEFAULT_SPEC",
    "DeviceLike",
    "Preprocess",
    "VideoInterpreter",
    "build_model",
]
