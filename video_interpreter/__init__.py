"""video_interpreter: define PyTorch video models in YAML/JSON, build them with one call, save and
restore them safely, and see what you built.

The flow, one direction::

    spec file --load--> plain dict --validate--> ArchitectureSpec --build--> VideoInterpreter
"""

from .checkpoint import (
    Adapt,
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
    AdaptationError,
    BuildError,
    CheckpointError,
    CompressionError,
    KeyMapError,
    Problem,
    RegistrationError,
    RegistryError,
    SpecError,
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
from .model import Preprocess, VideoInterpreter, build_model
from .sharing import from_pretrained, save_pretrained, write_model_card
from .spec import ArchitectureSpec, Limits, architecture_schema, load_spec, raised_limits
from .store import ModelStore
from .summary import ModelSummary, summarize
from .training import EpochResult, fit

__version__ = "0.1.0"

__all__ = [
    "LAYERS",
    "Adapt",
    "AdaptationError",
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
    "KeyMapError",
    "Layout",
    "Limits",
    "LoadError",
    "LoadReport",
    "ModelStore",
    "ModelSummary",
    "MovingSquares",
    "ParityReport",
    "Preprocess",
    "Problem",
    "RegistrationError",
    "RegistryError",
    "SampleType",
    "SavedCheckpoint",
    "ShapeError",
    "SpecError",
    "StoreError",
    "TrainingError",
    "VideoInterpreter",
    "VideoInterpreterError",
    "__version__",
    "architecture_schema",
    "build_model",
    "channels",
    "check_export",
    "export_model",
    "features",
    "fit",
    "from_pretrained",
    "load_checkpoint",
    "load_model",
    "load_spec",
    "load_weights",
    "raised_limits",
    "read_metadata",
    "register_layer",
    "render_diagram",
    "resume",
    "save_model",
    "save_pretrained",
    "sha256_file",
    "summarize",
    "write_model_card",
]
