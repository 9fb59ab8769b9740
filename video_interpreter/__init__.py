"""video_interpreter: define PyTorch video models in YAML/JSON, build them with one call, save and
restore them safely, and see what you built.

The flow, one direction::

    spec file --load--> plain dict --validate--> ArchitectureSpec --build--> VideoInterpreter
"""

from .errors import (
    BuildError,
    CheckpointError,
    Problem,
    RegistrationError,
    RegistryError,
    SpecError,
    StoreError,
    VideoInterpreterError,
)
from .layers import LAYERS, BuildContext, channels, features, register_layer
from .model import VideoInterpreter, build_model
from .spec import ArchitectureSpec, architecture_schema, load_spec

__version__ = "0.1.0"

__all__ = [
    "LAYERS",
    "ArchitectureSpec",
    "BuildContext",
    "BuildError",
    "CheckpointError",
    "Problem",
    "RegistrationError",
    "RegistryError",
    "SpecError",
    "StoreError",
    "VideoInterpreter",
    "VideoInterpreterError",
    "__version__",
    "architecture_schema",
    "build_model",
    "channels",
    "features",
    "load_spec",
    "register_layer",
]
