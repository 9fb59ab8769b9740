"""``VideoInterpreter``: backbone -> neck -> one output per head, keeping its spec."""

from __future__ import annotations

import torch
from torch import nn

from ..spec import ArchitectureSpec

__all__ = ["VideoInterpreter"]


class VideoInterpreter(nn.Module):
    """A video model built from an ``ArchitectureSpec``.

    ``forward(clip)`` takes ``(B, C, T, H, W)`` and returns ``{head_name: output}``. The spec it
    was built from stays on the model (``model.spec``), fingerprint included, so a checkpoint
    can carry it and rebuild the same architecture.
    """

    def __init__(
        self,
        spec: ArchitectureSpec,
        backbone: nn.Module,
        neck: nn.Module,
        heads: dict[str, nn.Module],
    ) -> None:
        super().__init__()
        self._spec = spec
        self.backbone = backbone
        self.neck = neck
        self.heads = nn.ModuleDict(heads)

    @property
    def spec(self) -> ArchitectureSpec:
        return self._spec

    def features(self, clip: torch.Tensor) -> torch.Tensor:
        """Backbone and neck only: what every head receives."""
        shared: torch.Tensor = self.neck(self.backbone(clip))
        return shared

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:  # clip: (B, C, T, H, W)
        if clip.dim() != 5:
            c, t, h, w = self._spec.input
            raise ValueError(
                f"expected a clip batch (B, C, T, H, W) such as (B, {c}, {t}, {h}, {w}), "
                f"got shape {tuple(clip.shape)}"
            )
        shared = self.features(clip)
        return {name: head(shared) for name, head in self.heads.items()}

    def extra_repr(self) -> str:
        return (
            f"spec={self._spec.name}/{self._spec.version} fingerprint={self._spec.fingerprint[:12]}"
        )
