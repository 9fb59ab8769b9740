"""video_interpreter: define PyTorch video models in YAML/JSON, build them with one call, save and
restore them safely, and see what you built.

The flow, one direction::

    spec file --load--> plain dict --validate--> ArchitectureSpec --build--> VideoInterpreter

Importing the package imports nothing heavy: each name below is imported from its stage on first
use (``from video_interpreter import build_model`` imports torch then), so the command line
answers ``--help``, ``--version`` and ``models list`` without torch.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from ._version import __version__

if TYPE_CHECKING:
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
    from .model import Preprocess, VideoInterpreter, build_model
    from .sharing import from_pretrained, save_pretrained, write_model_card
    from .spec import ArchitectureSpec, Limits, architecture_schema, load_spec, raised_limits
    from .store import ModelStore
    from .summary import ModelSummary, summarize
    from .training import EpochResult, fit
    from .zoo import ZooModel, list_models, model_info

_ORIGINS = {
    "Adapt": ".checkpoint",
    "AdaptationError": ".errors",
    "ArchitectureSpec": ".spec",
    "BuildContext": ".layers",
    "BuildError": ".errors",
    "Checkpoint": ".checkpoint",
    "CheckpointError": ".errors",
    "CheckpointMetadata": ".checkpoint",
    "CompressionError": ".errors",
    "EpochResult": ".training",
    "ExportError": ".export",
    "ExportedModel": ".export",
    "KeyMapError": ".errors",
    "LAYERS": ".layers",
    "Layout": ".layers",
    "Limits": ".spec",
    "LoadError": ".checkpoint",
    "LoadReport": ".checkpoint",
    "ModelStore": ".store",
    "ModelSummary": ".summary",
    "MovingSquares": ".data",
    "ParityReport": ".export",
    "Preprocess": ".model",
    "Problem": ".errors",
    "RegistrationError": ".errors",
    "RegistryError": ".errors",
    "SampleType": ".layers",
    "SavedCheckpoint": ".checkpoint",
    "ShapeError": ".layers",
    "SpecError": ".errors",
    "SpecShadowWarning": ".errors",
    "StoreError": ".errors",
    "TrainingError": ".errors",
    "VideoInterpreter": ".model",
    "VideoInterpreterError": ".errors",
    "ZooModel": ".zoo",
    "architecture_schema": ".spec",
    "build_model": ".model",
    "channels": ".layers",
    "check_export": ".export",
    "export_model": ".export",
    "features": ".layers",
    "fit": ".training",
    "from_pretrained": ".sharing",
    "list_models": ".zoo",
    "load_checkpoint": ".checkpoint",
    "load_model": ".checkpoint",
    "load_spec": ".spec",
    "load_weights": ".checkpoint",
    "model_info": ".zoo",
    "raised_limits": ".spec",
    "read_metadata": ".checkpoint",
    "register_layer": ".layers",
    "render_diagram": ".diagram",
    "resume": ".checkpoint",
    "save_model": ".checkpoint",
    "save_pretrained": ".sharing",
    "sha256_file": ".checkpoint",
    "summarize": ".summary",
    "write_model_card": ".sharing",
}

__getattr__, __dir__ = lazy_attributes(__name__, _ORIGINS, globals())

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
    "from_pretrained",
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
    "save_pretrained",
    "sha256_file",
    "summarize",
    "write_model_card",
]
