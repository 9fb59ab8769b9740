"""Hub-style model directories: ``save_pretrained`` writes one, ``from_pretrained`` rebuilds the
model from one (or from a Hugging Face Hub repository, through ``huggingface_hub``'s download
and cache).

A directory holds ``config.json`` (the resolved spec), ``model.safetensors`` (the weights, the
spec and fingerprint in its header), ``README.md`` (the model card, whose front matter records
the weights' sha256) and ``diagram.svg``. Loading validates ``config.json`` as a spec, proves by
the fingerprint that the weights belong to its architecture and checks the weights' sha256
before reading a tensor. Uploading is ``huggingface_hub``'s ``upload_folder``; nothing here
talks to the network except ``snapshot_download``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..checkpoint import (
    CheckpointMetadata,
    load_model,
    read_metadata,
    save_model,
    spec_diff,
)
from ..checkpoint._atomic import atomic_write
from ..checkpoint._weights import unwrap_model
from ..errors import CheckpointError
from ..model import VideoInterpreter
from ..spec import ArchitectureSpec, load_spec
from ..summary import CHECKPOINT_SUFFIXES
from ._card import write_model_card

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "DIAGRAM_NAME",
    "WEIGHTS_NAME",
    "from_pretrained",
    "save_pretrained",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
DIAGRAM_NAME = "diagram.svg"
_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, DIAGRAM_NAME)
# A Hub repository id: "org/name" (letters, digits, "-", "_", "."), as huggingface_hub checks it.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HUB_HINT = "pip install 'video-interpreter[hub]'"


def save_pretrained(
    source: nn.Module | str | Path,
    directory: str | Path,
    *,
    license: str | None = None,
    notes: str | None = None,
) -> Path:
    """Write a model, or a checkpoint of one, as a Hub-style directory: ``config.json``,
    ``model.safetensors``, ``README.md`` and ``diagram.svg``. A checkpoint's epoch, metrics and
    notes travel into the weights' header and the card. Upload the directory with
    ``huggingface_hub.HfApi().upload_folder(repo_id=..., folder_path=directory)``.

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.sharing import save_pretrained
        >>> model = build_model("tiny_r2plus1d")
        >>> save_pretrained(model, "pretrained/tiny_r2plus1d", license="apache-2.0")
        PosixPath('pretrained/tiny_r2plus1d')
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory} is a file; save_pretrained writes a directory")
    carried: dict[str, Any] = {}
    if isinstance(source, str | Path):
        metadata = read_metadata(source)
        model: nn.Module = load_model(source)
        carried = _carried(metadata)
    else:
        model = unwrap_model(source)
    if not isinstance(model, VideoInterpreter):
        raise CheckpointError(
            f"cannot save a {type(model).__name__} as a model directory: it needs the spec of a "
            "VideoInterpreter (build it with build_model)"
        )
    if notes:
        carried["notes"] = "\n\n".join(n for n in (carried.get("notes"), notes) if n)
    save_model(model, directory / WEIGHTS_NAME, **carried)
    with atomic_write(directory / CONFIG_NAME) as sink:
        sink.write((model.spec.to_json() + "\n").encode("utf-8"))
    write_model_card(
        directory / WEIGHTS_NAME, directory / CARD_NAME, license=license, diagram_name=DIAGRAM_NAME
    )
    logger.info("wrote the model directory %s", directory)
    return directory


def _carried(metadata: CheckpointMetadata) -> dict[str, Any]:
    """What a checkpoint says about its training that the directory's weights keep."""
    fields: dict[str, Any] = {
        "epoch": metadata.epoch,
        "step": metadata.step,
        "loss": metadata.loss,
        "metrics": dict(metadata.metrics) or None,
        "notes": metadata.notes,
        "monitor": metadata.monitor,
    }
    return {k: v for k, v in fields.items() if v is not None}


def from_pretrained(
    name_or_directory: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> VideoInterpreter:
    """Rebuild the model of a directory ``save_pretrained`` wrote, or of a Hub repository
    (``"org/name"``, downloaded with ``huggingface_hub.snapshot_download``: its cache,
    ``HF_HUB_OFFLINE=1`` and ``local_files_only`` apply; needs the ``hub`` extra).

    ``config.json`` is validated as a spec (errors located in it); its architecture must have
    the fingerprint the weights were saved with (else the spec diff is shown) and the weights
    the sha256 the card records. The model's spec is ``config.json``'s, preprocess included.

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.sharing import from_pretrained, save_pretrained
        >>> _ = save_pretrained(build_model("tiny_r2plus1d"), "shared/tiny_r2plus1d")
        >>> from_pretrained("shared/tiny_r2plus1d").spec.name
        'tiny_r2plus1d'
    """
    directory = _locate(name_or_directory, revision, cache_dir, local_files_only)
    config, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for needed in (config, weights):
        if not needed.is_file():
            held = sorted(p.name for p in directory.iterdir()) or ["nothing"]
            raise CheckpointError(
                f"{directory} has no {needed.name} (it holds {', '.join(held)}); a model "
                f"directory holds {', '.join(_FILES)}, as save_pretrained writes them"
            )
    spec = load_spec(config)
    metadata = read_metadata(weights)
    if metadata.spec is None or metadata.fingerprint is None:
        raise CheckpointError(f"{weights} holds no architecture spec; it is not a model's weights")
    if metadata.fingerprint != spec.fingerprint:
        saved = ArchitectureSpec.from_resolved(metadata.spec)
        raise CheckpointError(
            f"{config} describes architecture {spec.fingerprint[:12]}, but {WEIGHTS_NAME} "
            f"holds weights of architecture {metadata.fingerprint[:12]} "
            f"({saved.name}/{saved.version}); restore the config or save the directory again. "
            f"Spec diff:\n{spec_diff(saved, spec, WEIGHTS_NAME, CONFIG_NAME)}"
        )
    sha256 = _recorded_sha256(directory / CARD_NAME)
    if sha256 is None:
        logger.warning("%s records no sha256 of %s: weights not hash-checked", directory, weights)
    return load_model(weights, spec=spec, verify=sha256, device=device, dtype=dtype)


def _recorded_sha256(card: Path) -> str | None:
    """The weights' sha256 from the card's front matter, or None without a card or one."""
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return None
    try:
        front = yaml.safe_load(text[4 : text.find("\n---", 4)])
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{card}: the front matter is not valid YAML: {exc}") from exc
    value = front.get("sha256") if isinstance(front, dict) else None
    return value if isinstance(value, str) else None


def _locate(
    name: str | Path, revision: str | None, cache_dir: str | Path | None, local_files_only: bool
) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    if path.suffix.lower() in CHECKPOINT_SUFFIXES and path.is_file():
        raise CheckpointError(
            f"{path} is a checkpoint file, not a model directory: load it with load_model(path)"
        )
    if isinstance(name, str) and _REPO_ID.match(name) and not path.exists():
        return _download(name, revision, cache_dir, local_files_only)
    raise CheckpointError(
        f"{name} is neither a model directory (holding {', '.join(_FILES)}) nor a Hub "
        "repository id (org/name)"
    )


def _download(
    repo_id: str, revision: str | None, cache_dir: str | Path | None, local_files_only: bool
) -> Path:
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError as exc:
        raise CheckpointError(
            f"{repo_id} looks like a Hub repository; loading one needs huggingface_hub "
            f"({_HUB_HINT}), or pass a local directory"
        ) from exc
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=list(_FILES),
        )
    except OSError as exc:  # huggingface_hub's HTTP, offline and missing-entry errors alike
        hint = (
            "; offline (HF_HUB_OFFLINE or local_files_only): download it once online, or "
            "pass a local directory"
            if constants.HF_HUB_OFFLINE or local_files_only
            else ""
        )
        raise CheckpointError(f"cannot get {repo_id} from the Hub: {exc}{hint}") from exc
    return Path(folder)
