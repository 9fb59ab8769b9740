"""``Preprocess``: a spec's ``preprocess`` section as a module, raw clip -> what the model takes.

Torch ops only (no PIL, no NumPy), so it runs on the clip's device, batches and exports with
``torch.export`` beside the model. The steps, in the order the reference libraries apply them:
channel order, resize, centre crop, scale to 0-1, normalise. Sampling frames from a video
(``frames``, ``temporal_stride``, ``fps``) happens before a clip exists, so it is declared for
the reader and not applied here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..spec import resolve_preprocess

__all__ = ["Preprocess"]


def _pair(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


class Preprocess(nn.Module):
    """Prepare ``(B, C, T, H, W)`` clips, uint8 (0-255) or float (in ``value_range``), as a
    spec's ``preprocess`` section says; returns float ``(B, C, T, H', W')``.

    Resize semantics follow torchvision's ``resize`` on tensors: an integer ``resize`` is the
    shorter side (the longer one ``int(size * long / short)``). A uint8 clip is resized to
    whole 0-255 levels (``uint8_resize: round``: in float32, then rounded; ``native``: torch's
    uint8 kernel on the CPU, which differs from rounding by one level at some pixels) or, with
    ``float``, scaled to 0-1 first and never rounded.

        >>> from video_interpreter import build_model
        >>> model = build_model("r2plus1d_18", device="meta")
        >>> clip = torch.randint(0, 256, (1, 3, 16, 120, 160), dtype=torch.uint8)
        >>> model.preprocess(clip).shape
        torch.Size([1, 3, 16, 112, 112])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, section: Mapping[str, Any], *, device: torch.device | str | None = None
    ) -> None:
        super().__init__()
        section = resolve_preprocess(section)
        self.section = section
        shape = (1, len(section["mean"]), 1, 1)  # broadcast over (B * T, C, H, W)
        mean = torch.tensor(section["mean"], dtype=torch.float32, device=device).view(shape)
        std = torch.tensor(section["std"], dtype=torch.float32, device=device).view(shape)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        low, high = section["value_range"]
        self.low, self.span = float(low), float(high) - float(low)
        self.bgr = section["channel_order"] == "BGR"
        self.resize: int | list[int] | None = section.get("resize")
        self.crop = _pair(section.get("crop"))
        self.antialias = bool(section["antialias"])
        self.uint8_resize = str(section["uint8_resize"])
        self.crop_offset = str(section["crop_offset"])

    @property
    def channels(self) -> int:
        return int(self.mean.shape[1])

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The frame size after ``resize`` (unchanged without one)."""
        if self.resize is None:
            return height, width
        if isinstance(self.resize, int):
            if width <= height:
                return int(self.resize * height / width), self.resize
            return self.resize, int(self.resize * width / height)
        return int(self.resize[0]), int(self.resize[1])

    def forward(self, clip: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if clip.dim() != 5 or clip.shape[1] != self.channels:
            raise ValueError(
                f"expected a clip batch (B, C, T, H, W) with C={self.channels}, "
                f"got shape {tuple(clip.shape)}"
            )
        if clip.dtype != torch.uint8 and not clip.is_floating_point():
            raise ValueError(
                f"expected a uint8 (0-255) or floating-point clip, got {clip.dtype}; "
                "convert it with clip.to(torch.uint8) or clip.float()"
            )
        b, c, t, h, w = clip.shape
        if self.bgr:
            clip = clip.flip(1)
        frames = clip.transpose(1, 2).reshape(b * t, c, h, w)  # (B * T, C, H, W)
        size = self.resized_size(h, w)
        if frames.dtype == torch.uint8 and self.uint8_resize != "float":
            frames = self._resize_levels(frames, size).to(torch.float32) / 255.0
        else:
            scaled = frames.to(torch.float32) if frames.dtype == torch.uint8 else frames
            low, span = (0.0, 255.0) if frames.dtype == torch.uint8 else (self.low, self.span)
            frames = self._resize((scaled - low) / span, size)
        frames = self._center_crop(frames)
        frames = (frames - self.mean) / self.std
        out_h, out_w = frames.shape[-2:]
        return frames.reshape(b, t, c, out_h, out_w).transpose(1, 2)  # (B, C, T, H', W')

    def _resize(self, frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(frames.shape[-2:]) == size:
            return frames
        return F.interpolate(
            frames, size=size, mode="bilinear", align_corners=False, antialias=self.antialias
        )

    def _resize_levels(self, frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A uint8 clip resized to whole levels: by torch's uint8 kernel (``native``, on the
        CPU, the only device that has one), else in float32, rounded."""
        if self.uint8_resize == "native" and frames.device.type == "cpu":
            return self._resize(frames, size)
        return self._resize(frames.to(torch.float32), size).round().clamp(0, 255)

    def _offset(self, margin: int) -> int:
        if self.crop_offset == "floor":
            return margin // 2
        if self.crop_offset == "ceil":
            return math.ceil(margin / 2)
        return round(margin / 2)  # half to even, as torchvision's center_crop

    def _center_crop(self, frames: torch.Tensor) -> torch.Tensor:
        if self.crop is None:
            return frames
        (crop_h, crop_w), (h, w) = self.crop, frames.shape[-2:]
        if crop_h > h or crop_w > w:
            raise ValueError(
                f"cannot crop {crop_h}x{crop_w} from {h}x{w} frames (after resize {self.resize}); "
                "give larger frames or a larger resize"
            )
        top, left = self._offset(h - crop_h), self._offset(w - crop_w)
        return frames[..., top : top + crop_h, left : left + crop_w]

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.section.items())
