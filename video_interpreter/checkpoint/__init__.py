"""The checkpoint stage: self-describing checkpoints and a strict, reported, safe, fast loader.

Downstream of the model stage. A checkpoint carries the resolved spec, its fingerprint and
metadata beside the weights, so ``load_model(path)`` needs nothing else::

    saved = save_model(model, "run/epoch_3.pth", optimizer=opt, epoch=3, metrics={"acc": 0.9})
    model = load_model("run/epoch_3.pth", verify=saved.sha256)
    report = load_weights(other, "run/epoch_3.pth", reinit=["heads.action.*"],
                          allow_spec_change=True)  # another head: another architecture
    report = load_weights(other, "run/epoch_3.pth", adapt=True)  # the layers' own rules

Two formats, chosen by suffix: ``.pth`` (a dict of tensors and plain values that
``torch.load(weights_only=True)`` opens; training state included) and ``.safetensors`` (weights,
metadata in the header). Writes are atomic and hashed; reads never unpickle code unless told to
(``trust_pickle=True``) and map tensors from the file instead of copying them.
"""

from ._adapt import Adapt
from ._atomic import sha256_file
from ._convert import convert_checkpoint, import_state_dict, import_transformers
from ._format import FORMAT_VERSION
from ._load import load_checkpoint, load_model, read_metadata, resume
from ._report import (
    AdaptedTensor,
    DtypeMismatch,
    LoadError,
    LoadReport,
    ShapeMismatch,
    spec_diff,
)
from ._save import save_model
from ._types import Checkpoint, CheckpointMetadata, SavedCheckpoint
from ._weights import load_weights

__all__ = [
    "FORMAT_VERSION",
    "Adapt",
    "AdaptedTensor",
    "Checkpoint",
    "CheckpointMetadata",
    "DtypeMismatch",
    "LoadError",
    "LoadReport",
    "SavedCheckpoint",
    "ShapeMismatch",
    "convert_checkpoint",
    "import_state_dict",
    "import_transformers",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "read_metadata",
    "resume",
    "save_model",
    "sha256_file",
    "spec_diff",
]
