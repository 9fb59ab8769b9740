"""Shared checks that a zoo spec is the same architecture as torchvision's model of that name.

Nothing is downloaded: the reference is torchvision's model with its own random initialisation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from video_interpreter.model import build_model
from video_interpreter.zoo import MappedStateDict, convert_state_dict, list_models, model_info

# torchvision's published input sizes (C, T, H, W) for its video models' "_ops" figures: the
# zoo metadata's clips.
INPUT_SIZES: dict[str, tuple[int, int, int, int]] = {
    name: model_info(name).clip for name in list_models(library="torchvision")
}


def torchvision_model(arch: str, **kwargs: Any) -> nn.Module:
    """torchvision's ``arch`` without weights; under ``with torch.device("meta")`` it is free."""
    model: nn.Module = torchvision.models.get_model(arch, weights=None, **kwargs)
    return model


def published_gmacs(arch: str) -> float:
    """torchvision's "GFLOPS" figure for the model's default weights (multiply-accumulates)."""
    weights = torchvision.models.get_model_weights(arch)
    first = next(iter(weights))
    return float(first.meta["_ops"])


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, input_size: tuple[int, ...]) -> float:
    """Multiply-accumulates for one clip, counted on the meta device (attention matmuls too).

    A model that is not on the meta device is moved there, so pass one you no longer need.
    """
    meta = model.to("meta") if next(model.parameters()).device.type != "meta" else model
    clip = torch.empty((1, *input_size), device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta.eval()(clip)
    return counter.get_total_flops() / 2 / 1e9


def meta_pair(arch: str) -> tuple[nn.Module, nn.Module]:
    """(torchvision model, our model), both on the meta device: shapes only, nothing allocated."""
    with torch.device("meta"):
        reference = torchvision_model(arch)
    return reference, build_model(arch, device="meta")


def mapped_state_dict(arch: str, reference: nn.Module) -> MappedStateDict:
    """``reference``'s state dict renamed through the ``arch`` key map."""
    return convert_state_dict(arch, reference.state_dict())


def torch_type(module: nn.Module) -> type[nn.Module]:
    """The torch.nn class a module is (torchvision's ``Conv3DSimple`` is an ``nn.Conv3d``)."""
    return next(
        kind
        for kind in type(module).__mro__
        if issubclass(kind, nn.Module) and kind.__module__.startswith("torch.nn")
    )


def weight_holders(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules owning parameters or buffers directly, in registration order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
        or any(True for _ in module.buffers(recurse=False))
    ]


def imported_model(arch: str) -> tuple[nn.Module, nn.Module]:
    """(torchvision model, our model with its weights imported through the key map), in eval."""
    reference = torchvision_model(arch).eval()
    ours = build_model(arch).eval()
    mapped = convert_state_dict(arch, reference.state_dict())
    ours.load_state_dict(mapped.state_dict, strict=True)
    return reference, ours


# -- checks, one per property; each test file calls them for its architectures --------------


def check_parameter_count(arch: str) -> None:
    reference, ours = meta_pair(arch)
    assert parameter_count(ours) == parameter_count(reference)


def check_published_macs(arch: str) -> None:
    """MACs at torchvision's input size equal its published ``_ops`` (3 decimals, as published)."""
    ours = build_model(arch, device="meta")
    assert round(count_gmacs(ours, INPUT_SIZES[arch]), 3) == published_gmacs(arch)


def check_key_map_covers_every_key(arch: str) -> None:
    """Every torchvision key is renamed (none dropped) onto a key of the same shape, and a strict
    load reports nothing missing or unexpected."""
    reference, ours = meta_pair(arch)
    mapped = mapped_state_dict(arch, reference)
    assert mapped.dropped == []
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    mapped_shapes = {k: tuple(v.shape) for k, v in mapped.state_dict.items()}
    assert mapped_shapes == ours_shapes
    result = ours.load_state_dict(mapped.state_dict, strict=True, assign=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])


def check_weight_modules_match(arch: str) -> None:
    """Modules holding weights correspond one to one, in order, with the same type and settings
    (kernel, stride, padding, batch-norm eps and momentum, ...)."""
    reference, ours = meta_pair(arch)
    theirs = [(torch_type(m), m.extra_repr()) for _, m in weight_holders(reference)]
    mine = [(torch_type(m), m.extra_repr()) for _, m in weight_holders(ours)]
    assert mine == theirs


def check_init_matches(arch: str, *, tolerance: float = 0.15) -> None:
    """The spec's ``init`` draws every tensor as torchvision does: constants equal, random
    tensors with the same mean and spread (within ``tolerance`` of the reference's std, plus
    four standard errors of two independent samples of the tensor's size, so a small tensor
    such as a bias is not failed by chance)."""
    torch.manual_seed(0)
    reference = torchvision_model(arch)
    ours = dict(build_model(arch).state_dict())
    for key, theirs in mapped_state_dict(arch, reference).state_dict.items():
        mine = ours[key]
        if theirs.numel() == 1 or bool((theirs == theirs.flatten()[0]).all()):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=f"{key} differs")
            continue
        spread = theirs.float().std().item()
        mean_gap = abs(mine.float().mean().item() - theirs.float().mean().item())
        std_ratio = mine.float().std().item() / spread
        # Standard errors of a difference of means and of a ratio of standard deviations.
        chance = 4 * math.sqrt(2 / theirs.numel())
        assert mean_gap <= (tolerance + chance) * spread, f"{key}: mean differs by {mean_gap:.3g}"
        assert abs(std_ratio - 1) <= tolerance + chance, f"{key}: std ratio {std_ratio:.3f}"


def check_outputs_match(arch: str, *, atol: float = 1e-5) -> None:
    """After import, one random clip at torchvision's input size (batch 1) gives the same
    logits in eval mode."""
    reference, ours = imported_model(arch)
    clip = torch.randn(1, *INPUT_SIZES[arch])
    with torch.inference_mode():
        expected = reference(clip)
        actual = ours(clip)
    (head,) = actual.values()
    torch.testing.assert_close(head, expected, atol=atol, rtol=0)
