"""``VideoInterpreter``: backbone -> neck -> one output per head, keeping its spec."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import Problem, SpecError
from ..layers import NECK, Graph
from ..layers.adaptation import AdaptRule, Head
from ..spec import ArchitectureSpec, Limits, SpecSource
from ._preprocess import Preprocess

if TYPE_CHECKING:
    from ..layers import LayerRegistry

__all__ = ["DEFAULT_SPEC", "VideoInterpreter"]

DEFAULT_SPEC = "v1"
"""The spec ``VideoInterpreter()`` builds when given none: R(2+1)D-18, 400 classes."""

_PART_KEYWORDS = frozenset({"backbone", "neck", "heads", "taps"})


class VideoInterpreter(nn.Module):
    """A video model built from a spec, keeping its spec.

    ``VideoInterpreter(spec, **options)`` builds exactly as ``build_model(spec, **options)``
    does: ``spec`` is a spec name, a file path, a mapping or an ``ArchitectureSpec`` (see the
    names-and-paths rule), and the options are ``build_model``'s. With no argument it builds
    the default spec, ``"v1"`` (R(2+1)D-18 for 400 classes), so the plain PyTorch pattern
    ``model = VideoInterpreter(); model.load_state_dict(torch.load(path))`` works.

    ``forward(clip)`` takes ``(B, C, T, H, W)`` and returns ``{head_name: output}``. The spec it
    was built from stays on the model (``model.spec``), fingerprint included, so a checkpoint
    can carry it and rebuild the same architecture.

    Examples:
        >>> import torch
        >>> from video_interpreter import VideoInterpreter
        >>> model = VideoInterpreter("tiny_r2plus1d")
        >>> model(torch.zeros(2, 3, 8, 32, 32))["action"].shape
        torch.Size([2, 4])
        >>> VideoInterpreter(device="meta").spec.name   # the default spec
        'video_interpreter'
    """

    def __init__(
        self,
        spec: SpecSource = DEFAULT_SPEC,
        *legacy_parts: Any,
        overrides: Sequence[str] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        registry: LayerRegistry | None = None,
        limits: Limits | None = None,
        **legacy_keywords: Any,
    ) -> None:
        super().__init__()
        if legacy_parts or legacy_keywords:
            self._attach_legacy(spec, legacy_parts, legacy_keywords)
            return
        from ._factory import build_model  # the factory builds on this class

        built = build_model(
            spec, overrides=overrides, device=device, dtype=dtype, registry=registry, limits=limits
        )
        self._attach(built.spec, built.backbone, built.neck, dict(built.heads), built.taps)

    @classmethod
    def from_parts(
        cls,
        spec: ArchitectureSpec,
        backbone: nn.Module,
        neck: nn.Module,
        heads: Mapping[str, nn.Module],
        taps: Mapping[str, str] | None = None,
    ) -> VideoInterpreter:
        """The model made of modules already built for ``spec`` (what ``build_model`` does
        after constructing them); nothing is checked against the spec.

        Examples:
            >>> from torch import nn
            >>> from video_interpreter import VideoInterpreter, build_model
            >>> built = build_model("tiny_r2plus1d", device="meta")
            >>> same = VideoInterpreter.from_parts(
            ...     built.spec, built.backbone, built.neck, dict(built.heads))
            >>> same.spec.fingerprint == built.spec.fingerprint
            True
        """
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model._attach(spec, backbone, neck, dict(heads), taps)
        return model

    def _attach_legacy(self, spec: Any, parts: tuple[Any, ...], keywords: dict[str, Any]) -> None:
        unknown = sorted(keywords.keys() - _PART_KEYWORDS)
        if unknown or len(parts) > 4 or not isinstance(spec, ArchitectureSpec):
            raise TypeError(
                f"VideoInterpreter(spec, *, overrides, device, dtype, registry, limits): "
                f"unexpected {'keywords ' + ', '.join(unknown) if unknown else 'arguments'}; "
                "build from parts with VideoInterpreter.from_parts(spec, backbone, neck, heads)"
            )
        warnings.warn(
            "VideoInterpreter(spec, backbone, neck, heads, taps) is deprecated and will be "
            "removed in 0.3; use VideoInterpreter.from_parts(spec, backbone, neck, heads, taps)",
            DeprecationWarning,
            stacklevel=3,
        )
        named = dict(zip(("backbone", "neck", "heads", "taps"), parts, strict=False))
        named.update(keywords)
        self._attach(
            spec, named["backbone"], named["neck"], dict(named["heads"]), named.get("taps")
        )

    def _attach(
        self,
        spec: ArchitectureSpec,
        backbone: nn.Module,
        neck: nn.Module,
        heads: dict[str, nn.Module],
        taps: Mapping[str, str] | None,
    ) -> None:
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
