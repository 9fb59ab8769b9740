"""What a layer declares about its tensors so that a checkpoint can be brought into a changed
architecture: which tensors are position tables (and on which grid), relative position tables,
heads, kernels that may be inflated from 2D or take other input channels, and tensors derived
from the geometry. The checkpoint stage reads these declarations; it never guesses from shapes.

A layer declares its rules in a method returning ``{tensor name: rule}`` (names relative to the
module, children's tensors included)::

    class TubeletEmbedding(nn.Module):
        def adaptation_rules(self) -> dict[str, AdaptRule]:
            return {
                "position": PositionTable(grid=self.grid, mode="trilinear"),
                "proj.weight": ConvKernel(input_channels=reads_clip(self)),
            }

torch's own classes (``nn.Conv3d``) get theirs through ``declare_rules``. A parent's rule for a
tensor overrides its child's (``Conv2Plus1d`` refuses a 2D kernel its inner ``Conv3d`` would
otherwise take). Each rule turns a source tensor into the target's shape and says how in one
line, which the load report prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AdaptationError, RegistrationError

__all__ = [
    "AdaptRule",
    "ConvKernel",
    "Derived",
    "Factorised",
    "Head",
    "Inflation",
    "PositionTable",
    "RelativeTable",
    "adaptation_rules",
    "declare_rules",
    "mark_reads_clip",
    "reads_clip",
]

Inflation = Literal["centre", "average"]
Shape = tuple[int, ...]

# Interpolation modes by the number of grid axes, and the ones torch offers for each.
_MODES: dict[int, tuple[str, ...]] = {
    1: ("linear", "nearest"),
    2: ("bicubic", "bilinear", "nearest"),
    3: ("trilinear", "nearest"),
}
# Set on a module by the builder when it reads the model's input clip (a stem).
_READS_CLIP = "reads_clip"


def mark_reads_clip(module: nn.Module) -> None:
    """Record that ``module`` reads the model's input clip (the builder calls this), so its
    kernel's input channels may follow a change of ``input.channels``::

        mark_reads_clip(stem); assert reads_clip(stem)
    """
    setattr(module, _READS_CLIP, True)


def reads_clip(module: nn.Module) -> bool:
    """Whether the builder marked ``module`` as reading the model's input clip::

    reads_clip(build_model("configs/r3d_18.yaml").backbone.stem[0])  # True
    """
    return bool(getattr(module, _READS_CLIP, False))


def _shape(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_mode(mode: str, axes: int, what: str) -> None:
    allowed = _MODES.get(axes)
    if allowed is None:
        raise RegistrationError(f"{what}: a grid of {axes} axes cannot be resampled (1 to 3)")
    if mode not in allowed:
        raise RegistrationError(f"{what}: mode {mode!r} for {axes} axes; use one of {allowed}")


def _resample(
    grid: torch.Tensor, size: Shape, mode: str, antialias: bool = False
) -> torch.Tensor:  # (N, C, *grid) -> (N, C, *size)
    """``F.interpolate`` in float32 (bicubic has no half-precision CPU kernel), cast back."""
    corners = None if mode == "nearest" else False
    resized = F.interpolate(
        grid.float(), size=size, mode=mode, align_corners=corners, antialias=antialias
    )
    return resized.to(grid.dtype)


@runtime_checkable
class AdaptRule(Protocol):
    """A declaration about one tensor: how a source tensor becomes the target's."""

    def describe(self) -> str:
        """What the rule is, for messages."""
        ...


@dataclass(frozen=True)
class Head:
    """A head's tensor: re-initialised by its module's own init when the class count changes
    or the source has no such head."""

    name: str

    def describe(self) -> str:
        return f"head {self.name!r}"


@dataclass(frozen=True)
class PositionTable:
    """A learned absolute position table on a ``grid`` of positions (``(T, H, W)``, ``(H, W)``
    or ``(T,)``), channels last, after any leading singleton axes.

    ``prefix`` tokens (class tokens) come first and are kept as they are; ``flat`` says the grid
    is stored as one axis of ``prefix + prod(grid)`` rows rather than as its own axes (a flat
    table's grid cannot be read from its shape: ``(8, 2)`` and ``(4, 4)`` both have 16 rows).
    ``mode`` is the ``F.interpolate`` mode that resamples it.
    """

    grid: Shape
    prefix: int = 0
    flat: bool = False
    mode: str = "trilinear"
    antialias: bool = False

    def __post_init__(self) -> None:
        _check_mode(self.mode, len(self.grid), "PositionTable")
        if self.flat is False and self.prefix:
            raise RegistrationError("PositionTable: prefix tokens need a flat table")

    @property
    def geometry(self) -> tuple[Shape, int]:
        """What resampling changes: the grid, and the prefix tokens it must keep."""
        return (self.grid, self.prefix)

    def describe(self) -> str:
        text = f"position table, grid {_shape(self.grid)}"
        return text + (f" after {self.prefix} prefix tokens" if self.prefix else "")

    def _token_axes(self) -> int:
        return 1 if self.flat else len(self.grid)

    def expected_shape(self, table: torch.Tensor) -> bool:
        """Whether ``table``'s shape agrees with this declaration."""
        axes = self._token_axes()
        if table.dim() < axes + 1:
            return False
        tokens = table.shape[table.dim() - 1 - axes : -1]
        if self.flat:
            return tuple(tokens) == (self.prefix + math.prod(self.grid),)
        return tuple(tokens) == self.grid

    def read(self, table: torch.Tensor) -> PositionTable | None:
        """This declaration with the grid ``table`` holds, when its shape says it unambiguously
        (a table with the grid as axes, or a flat one of one axis); None otherwise."""
        axes = self._token_axes()
        if table.dim() < axes + 1:
            return None
        tokens = tuple(table.shape[table.dim() - 1 - axes : -1])
        if not self.flat:
            return PositionTable(tokens, self.prefix, False, self.mode, self.antialias)
        if len(self.grid) == 1 and tokens[0] > self.prefix:
            grid = (tokens[0] - self.prefix,)
            return PositionTable(grid, self.prefix, True, self.mode, self.antialias)
        return None

    def resample(self, table: torch.Tensor, source: PositionTable) -> tuple[torch.Tensor, str]:
        """``table`` (on ``source``'s grid) resampled onto this grid; prefix tokens kept.

        An image table (``source`` an ``(H, W)`` grid) becomes a video one (``(T, H', W')``):
        its plane is resampled with the image table's mode and repeated over the ``T`` frames.
        """
        tiled = len(source.grid) == 2 and len(self.grid) == 3
        if source.prefix != self.prefix or (len(source.grid) != len(self.grid) and not tiled):
            raise AdaptationError(
                f"a {source.describe()} cannot become a {self.describe()}: the prefix tokens "
                "must stay the same, and the grid keep its axes (or go from an image's (H, W) "
                "to a clip's (T, H, W))"
            )
        lead = tuple(table.shape[: table.dim() - 1 - source._token_axes()])
        dim = table.shape[-1]
        rows = table.reshape(math.prod(lead), -1, dim)  # (N, prefix + prod(grid), D)
        prefix, body = rows[:, : source.prefix], rows[:, source.prefix :]
        grid = body.reshape(-1, *source.grid, dim).movedim(-1, 1)  # (N, D, *grid)
        if tiled:
            mode, antialias = source.mode, source.antialias
            plane = _resample(grid, self.grid[1:], mode, antialias)  # (N, D, H', W')
            resized = plane.unsqueeze(2).expand(-1, -1, self.grid[0], -1, -1).movedim(1, -1)
        else:
            mode, antialias = self.mode, self.antialias
            resized = _resample(grid, self.grid, mode, antialias).movedim(1, -1)
        tokens = torch.cat((prefix, resized.reshape(rows.shape[0], -1, dim)), dim=1)
        out = tokens.reshape(*lead, *((-1,) if self.flat else self.grid), dim)
        kept = f", {self.prefix} prefix token{'s' if self.prefix > 1 else ''} kept" * bool(
            self.prefix
        )
        how = f"{mode}{' antialiased' if antialias else ''}"
        if tiled:
            how = f"plane {how}, repeated over {self.grid[0]} frames"
        return out, (
            f"position table resampled, grid {_shape(source.grid)} -> {_shape(self.grid)}, "
            f"{how}{kept}"
        )


@dataclass(frozen=True)
class RelativeTable:
    """A relative position table: one row per offset on each axis (``2 * window - 1`` of
    them), the axes flattened in order, then channels: ``(prod(offsets), C)``. Resampled over
    the offsets with ``mode`` when the window or the input grid changes."""

    offsets: Shape
    mode: str = "linear"

    def __post_init__(self) -> None:
        _check_mode(self.mode, len(self.offsets), "RelativeTable")

    @property
    def geometry(self) -> Shape:
        return self.offsets

    def describe(self) -> str:
        return f"relative position table, offsets {_shape(self.offsets)}"

    def expected_shape(self, table: torch.Tensor) -> bool:
        return table.dim() == 2 and table.shape[0] == math.prod(self.offsets)

    def read(self, table: torch.Tensor) -> RelativeTable | None:
        """This declaration with ``table``'s offsets, when one axis makes them unambiguous."""
        if len(self.offsets) == 1 and table.dim() == 2:
            return RelativeTable((table.shape[0],), self.mode)
        return None

    def resample(self, table: torch.Tensor, source: RelativeTable) -> tuple[torch.Tensor, str]:
        if len(source.offsets) != len(self.offsets):
            raise AdaptationError(
                f"a {source.describe()} cannot become a {self.describe()}: the number of axes "
                "must stay the same"
            )
        grid = table.t().reshape(1, table.shape[1], *source.offsets)  # (1, C, *offsets)
        resized = _resample(grid, self.offsets, self.mode)
        out = resized.reshape(table.shape[1], -1).t().contiguous()
        return out, (
            f"relative position table resampled, offsets {_shape(source.offsets)} -> "
            f"{_shape(self.offsets)}, {self.mode}"
        )


@dataclass(frozen=True)
class Derived:
    """A tensor computed from the geometry (an index table): recomputed by its module's init
    whenever the source's differs from what ``compute`` gives."""

    compute: Callable[[], torch.Tensor]
    what: str

    def describe(self) -> str:
        return f"derived tensor ({self.what})"

    def agrees(self, tensor: torch.Tensor) -> bool:
        wanted = self.compute()
        return tensor.shape == wanted.shape and torch.equal(tensor.cpu(), wanted.cpu())


@dataclass(frozen=True)
class ConvKernel:
    """A convolution kernel ``(out, in, *kernel)``: a 2D kernel may be inflated into it (centre:
    the 2D kernel on the middle frame, zeros elsewhere; average: repeated on every frame and
    divided by their number), a 3D kernel one frame deep becomes a 2D one (a per-frame patch
    projection), and with ``input_channels`` (a kernel reading the clip) its input
    channels may change as timm's ``adapt_input_conv`` changes them."""

    input_channels: bool = False

    def describe(self) -> str:
        return "convolution kernel" + (" reading the clip" if self.input_channels else "")

    def adapt(
        self, kernel: torch.Tensor, target: Shape, inflation: Inflation
    ) -> tuple[torch.Tensor, list[str]]:
        """``kernel`` in the ``target`` shape and what was done; AdaptationError if no rule
        leads there."""
        steps: list[str] = []
        if kernel.dim() == len(target) - 1 and len(target) == 5:
            kernel, step = _inflate(kernel, target[2], inflation)
            steps.append(step)
        elif kernel.dim() == 5 and len(target) == 4 and kernel.shape[2] == 1:
            kernel = kernel[:, :, 0]  # a tubelet one frame deep is a per-frame 2D kernel
            steps.append("one-frame 3D kernel as a per-frame 2D kernel")
        if kernel.dim() != len(target) or kernel.shape[2:] != target[2:]:
            raise AdaptationError(
                f"a kernel of shape {_shape(tuple(kernel.shape))} cannot become "
                f"{_shape(target)}: the spatial and temporal sizes must agree (a 2D kernel "
                "inflates to 3D; no rule resizes a kernel)"
            )
        if kernel.shape[0] != target[0]:
            raise AdaptationError(
                f"a kernel of {kernel.shape[0]} output channels cannot become one of "
                f"{target[0]}; no rule changes a layer's width"
            )
        if kernel.shape[1] != target[1]:
            if not self.input_channels:
                raise AdaptationError(
                    f"the kernel reads {kernel.shape[1]} channels and the model's {target[1]}; "
                    "only a kernel reading the clip (a stem) may change its input channels"
                )
            kernel, step = _input_channels(kernel, target[1])
            steps.append(step)
        return kernel, steps


@dataclass(frozen=True)
class Factorised:
    """A kernel of a factorised (2+1)D convolution, which no 2D kernel becomes exactly: the
    spatial and temporal convolutions meet through ``middle`` channels with a batch norm and a
    ReLU between them."""

    middle: int
    out_channels: int
    input_channels: bool = False

    def describe(self) -> str:
        return "(2+1)D convolution kernel" + (" reading the clip" if self.input_channels else "")

    def adapt(
        self, kernel: torch.Tensor, target: Shape, inflation: Inflation
    ) -> tuple[torch.Tensor, list[str]]:
        """A (2+1)D kernel's input channels may change in a stem; a 2D kernel is refused."""
        if kernel.dim() != len(target):
            middle = f"{self.middle} channels" + (
                f" (the 2D layer has {self.out_channels})"
                if self.middle != self.out_channels
                else ""
            )
            raise AdaptationError(
                "a 2D kernel cannot become a (2+1)D convolution: the spatial and temporal "
                f"convolutions meet through {middle} with a batch norm and a ReLU between "
                "them, so no temporal kernel, identity or other, reproduces the 2D network. "
                "Inflate into a full 3D spec (r3d_18, mc3_18, i3d_r50, slow_r50, c2d_r50) "
                "instead"
            )
        return ConvKernel(self.input_channels).adapt(kernel, target, inflation)


def _inflate(kernel: torch.Tensor, frames: int, inflation: Inflation) -> tuple[torch.Tensor, str]:
    """A ``(O, I, kH, kW)`` kernel as ``(O, I, frames, kH, kW)``; a clip of identical frames
    then gives the 2D response (away from the clip's borders when averaging)."""
    if inflation == "average":
        return kernel.unsqueeze(2).expand(-1, -1, frames, -1, -1) / frames, (
            f"inflated 2D -> 3D, average over {frames} frames"
        )
    out = kernel.new_zeros(kernel.shape[0], kernel.shape[1], frames, *kernel.shape[2:])
    out[:, :, frames // 2] = kernel
    return out, f"inflated 2D -> 3D, centre frame {frames // 2} of {frames}"


def _input_channels(kernel: torch.Tensor, channels: int) -> tuple[torch.Tensor, str]:
    """timm's ``adapt_input_conv``: to 1 channel, sum over RGB (over each group of 3 when the
    kernel reads a multiple of 3); to any other count from 3, repeat RGB and scale by
    ``3 / channels`` so the response to a flat input keeps its scale."""
    have = kernel.shape[1]
    work = kernel.float()
    if channels == 1:
        if have > 3:
            if have % 3:
                raise AdaptationError(
                    f"cannot sum {have} input channels down to 1: not a multiple of 3"
                )
            work = work.reshape(work.shape[0], have // 3, 3, *work.shape[2:]).sum(dim=2)
            how = f"input channels {have} -> 1, each group of 3 summed"
        else:
            work = work.sum(dim=1, keepdim=True)
            how = f"input channels {have} -> 1, summed"
    elif have != 3:
        raise AdaptationError(
            f"input channels {have} -> {channels}: only a 3-channel (RGB) kernel can be "
            "repeated to another channel count (or any multiple of 3 summed to 1)"
        )
    else:
        repeat = math.ceil(channels / 3)
        work = work.repeat(1, repeat, *([1] * (work.dim() - 2)))[:, :channels]
        work = work * (3 / float(channels))
        how = f"input channels 3 -> {channels}, RGB repeated and scaled by 3/{channels}"
    return work.to(kernel.dtype), how


RulesFn = Callable[[nn.Module], Mapping[str, AdaptRule]]
_DECLARED: dict[type[nn.Module], RulesFn] = {}


def declare_rules(kind: type[nn.Module], rules: RulesFn) -> None:
    """Declare the rules of a module type that cannot carry an ``adaptation_rules`` method (one
    of torch's); a second declaration for a type is refused::

        declare_rules(nn.Conv3d, lambda conv: {"weight": ConvKernel(reads_clip(conv))})
    """
    if kind in _DECLARED and _DECLARED[kind] is not rules:
        raise RegistrationError(f"adaptation rules for {kind.__qualname__} are already declared")
    _DECLARED[kind] = rules


def _own_rules(module: nn.Module) -> Mapping[str, AdaptRule]:
    method = getattr(module, "adaptation_rules", None)
    if callable(method):
        declared: Mapping[str, AdaptRule] = method()
        return declared
    for kind in type(module).__mro__:
        if kind in _DECLARED:
            return _DECLARED[kind](module)
    return {}


def adaptation_rules(model: nn.Module) -> dict[str, AdaptRule]:
    """Every declared rule of ``model``'s tensors, by state-dict key; a parent's rule for a
    tensor overrides its child's::

        rules = adaptation_rules(build_model("configs/tiny_transformer.yaml", device="meta"))
        rules["backbone.embed.position"]  # PositionTable(grid=(2, 4, 4), ...)
    """
    rules: dict[str, AdaptRule] = {}
    modules = list(model.named_modules())
    for path, module in reversed(modules):  # children first, so parents override
        for name, rule in _own_rules(module).items():
            rules[f"{path}.{name}" if path else name] = rule
    return rules


def _conv_rules(module: nn.Module) -> Mapping[str, AdaptRule]:
    return {"weight": ConvKernel(input_channels=reads_clip(module))}


declare_rules(nn.Conv3d, _conv_rules)
