"""``VideoInterpreter``: backbone -> neck -> one output per head, keeping its spec."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import Problem, SpecError
from ..layers import NECK, Graph
from ..layers.adaptation import AdaptRule, Head
from ..spec import ArchitectureSpec
from ._preprocess import Preprocess

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
        taps: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._spec = spec
        self.backbone = backbone
        self.neck = neck
        self.heads = nn.ModuleDict(heads)
        # A graph's neck and heads may read inner backbone nodes: "neck" / head name -> node.
        self.taps = dict(taps or {})
        if self.taps and not isinstance(backbone, Graph):
            raise TypeError("taps name backbone nodes, so the backbone must be a Graph")

    @property
    def spec(self) -> ArchitectureSpec:
        return self._spec

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """Every tensor of a head is declared a head's: adapting a checkpoint to another class
        count (or a head the checkpoint lacks) re-initialises it."""
        return {
            f"heads.{name}.{key}": Head(name)
            for name, head in self.heads.items()
            for key in head.state_dict()
        }

    @property
    def preprocess(self) -> Preprocess:
        """The spec's ``preprocess`` section as a module (raw uint8 or float clips in, what this
        model takes out), on the device of the model's weights; ``SpecError`` if the spec
        declares none."""
        section = self._spec.preprocess
        if section is None:
            raise SpecError(
                [
                    Problem(
                        f"{self._spec.name}/{self._spec.version} declares no preprocess "
                        "section; add one (mean, std, resize, crop...) to its spec",
                        ("preprocess",),
                        file=self._spec.source,
                    )
                ]
            )
        device = next((p.device for p in self.parameters() if not p.is_meta), None)
        return Preprocess(section, device=device)

    def features(self, clip: torch.Tensor) -> torch.Tensor:
        """Backbone and neck only: what every head that names no input of its own receives."""
        if NECK not in self.taps:
            shared: torch.Tensor = self.neck(self.backbone(clip))
            return shared
        assert isinstance(self.backbone, Graph)
        tapped = self.taps[NECK]
        out: torch.Tensor = self.neck(self.backbone.run(clip, keep=(tapped,))[tapped])
        return out

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:  # clip: (B, C, T, H, W)
        if clip.dim() != 5:
            c, t, h, w = self._spec.input
            raise ValueError(
                f"expected a clip batch (B, C, T, H, W) such as (B, {c}, {t}, {h}, {w}), "
                f"got shape {tuple(clip.shape)}"
            )
        if not self.taps:
            shared = self.features(clip)
            return {name: head(shared) for name, head in self.heads.items()}
        assert isinstance(self.backbone, Graph)
        values = self.backbone.run(clip, keep=tuple(self.taps.values()))
        shared = self.neck(values[self.taps.get(NECK, self.backbone.output)])
        return {
            name: head(values[self.taps[name]] if name in self.taps else shared)
            for name, head in self.heads.items()
        }

    def extra_repr(self) -> str:
        return (
            f"spec={self._spec.name}/{self._spec.version} fingerprint={self._spec.fingerprint[:12]}"
        )
