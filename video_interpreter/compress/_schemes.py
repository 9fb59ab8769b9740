"""The quantisation schemes this package offers, and the one place torchao is imported.

A scheme is data: a name, what it does, and the torchao configuration class it applies to the
layer types it covers. A checkpoint records a scheme by name, so the code that rebuilds a
quantised model comes from this table, never from the file.

Coverage, per layer type, with torchao 0.18:

- ``nn.Linear`` (attention projections, MLPs, patch merging, classification heads): covered by
  both schemes; torchao's ``Int8Tensor`` replaces the weight.
- ``nn.Conv3d`` (ResNet, S3D and X3D stems and blocks, tubelet and patch embeddings): not
  covered. ``Int8Tensor`` has no convolution kernel, ``IntxWeightOnlyConfig`` takes 2-D and
  4-D weights only, and ``torch.ao.quantization``'s static 3D convolution needs calibration
  data and is deprecated in favour of torchao. Convolutional models get smaller through
  storage precision (``save_model(..., dtype=torch.bfloat16)``) instead.
- Normalisation layers, biases, position tables and class tokens stay floating point.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import CompressionError

__all__ = [
    "SCHEMES",
    "QuantizationScheme",
    "get_scheme",
    "require_torchao",
    "torchao_config",
]

_INSTALL = "pip install 'video-interpreter[compress]'"


@dataclass(frozen=True)
class QuantizationScheme:
    """A named way to quantise a model: ``config`` is the torchao configuration class (in
    ``torchao.quantization``) applied to every module of the ``covers`` types."""

    name: str
    description: str
    config: str
    covers: tuple[type[nn.Module], ...] = (nn.Linear,)

    def covered(self, module: nn.Module) -> bool:
        """True when this scheme quantises ``module``'s weight."""
        return isinstance(module, self.covers)


SCHEMES: dict[str, QuantizationScheme] = {
    scheme.name: scheme
    for scheme in (
        QuantizationScheme(
            "int8_weight_only",
            "int8 weights (one scale per output row), float activations and arithmetic",
            "Int8WeightOnlyConfig",
        ),
        QuantizationScheme(
            "int8_dynamic",
            "int8 weights and int8 activations quantised per row at run time, int8 matmuls",
            "Int8DynamicActivationInt8WeightConfig",
        ),
    )
}


def get_scheme(name: str) -> QuantizationScheme:
    """The scheme called ``name``; an unknown name lists the known ones.

    Examples:
        >>> from video_interpreter.compress import get_scheme
        >>> get_scheme("int8_weight_only").name
        'int8_weight_only'
    """
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise CompressionError(
            f"unknown quantisation scheme {name!r:.60}; known schemes: "
            + "; ".join(f"{s.name} ({s.description})" for s in SCHEMES.values())
        )
    return scheme


def require_torchao(purpose: str) -> ModuleType:
    """``torchao``, imported on first use; when it is missing, say what needs it and how to
    install it."""
    try:
        return importlib.import_module("torchao")
    except ImportError as exc:
        raise CompressionError(
            f"{purpose} needs torchao, which is not installed: {_INSTALL}"
        ) from exc


def torchao_config(scheme: QuantizationScheme, torchao: ModuleType) -> Any:
    """A fresh torchao configuration object for ``scheme``."""
    quantization = importlib.import_module(f"{torchao.__name__}.quantization")
    config_class = getattr(quantization, scheme.config, None)
    if config_class is None:
        raise CompressionError(
            f"scheme {scheme.name!r} needs torchao.quantization.{scheme.config}, which torchao "
            f"{getattr(torchao, '__version__', '?')} lacks; install a torchao release that has "
            f"it ({_INSTALL})"
        )
    return config_class()
