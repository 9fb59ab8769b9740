"""video_interpreter: define PyTorch video models in YAML/JSON, build them with one call, save and
restore them safely, and see what you built.

The flow, one direction::

    spec file --load--> plain dict --validate--> ArchitectureSpec --build--> VideoInterpreter
"""

from .checkpoint import (
    Checkpoint,
    CheckpointMetadata,
    LoadError,
    LoadReport,
    SavedCheckpoint,
    load_checkpoint,
    load_model,
    load_weights,
    read_metadata,
    resume,
    save_model,
    sha256_file,
)
from .data import MovingSquares
from .diagram import render_diagram
from .errors import (
    BuildError,
    CheckpointError,
    CompressionError,
    Problem,
    RegistrationError,
    RegistryError,
    SpecError,
    SpecShadowWarning,
    StoreError,
    TrainingError,
    VideoInterpreterError,
)
from .export import ExportedModel, ExportError, ParityReport, check_export, export_model
from .layers import (
    LAYERS,
    BuildContext,
    Layout,
    SampleType,
    ShapeError,
    channels,
    features,
    register_layer,
)
from .model import VideoInterpreter, build_model
from .spec import ArchitectureSpec, Limits, architecture_schema, load_spec, raised_limits
from .store import ModelStore
from .summary import ModelSummary, summarize
from .training import EpochResult, fit
from .zoo import ZooModel, list_models, model_info

__version__ = "0.1.0"

__all__ = [
    "LAYERS",
    "ArchitectureSpec",
    "BuildContext",
    "BuildError",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMetadata",
    "CompressionError",
    "EpochResult",
    "ExportError",
    "ExportedModel",
    "Layout",
    "Limits",
    "LoadError",
    "LoadReport",
    "ModelStore",
    "ModelSummary",
    "MovingSquares",
    "ParityReport",
    "Problem",
    "RegistrationError",
    "RegistryError",
    "SampleType",
    "SavedCheckpoint",
    "ShapeError",
    "SpecError",
    "SpecShadowWarning",
    "StoreError",
    "TrainingError",
    "VideoInterpreter",
    "VideoInterpreterError",
    "ZooModel",
    "__version__",
    "architecture_schema",
    "build_model",
    "channels",
    "check_export",
    "export_model",
    "features",
    "fit",
    "list_models",
    "load_checkpoint",
    "load_model",
    "load_spec",
    "load_weights",
    "model_info",
    "raised_limits",
    "read_metadata",
    "register_layer",
    "render_diagram",
    "resume",
    "save_model",
    "sha256_file",
    "summarize",
]
