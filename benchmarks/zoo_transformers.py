"""The transformers zoo side by side with transformers' own models, in one process: parameters
and multiply-accumulates at each model type's default config, build time on the meta device,
and a CPU forward (time and largest output difference) after converting the reference's weights.

    python benchmarks/zoo_transformers.py
    python benchmarks/zoo_transformers.py --types vivit --runs 5

Parameters and MACs: the zoo spec (``videomae_base``, ...) built on the meta device against the
transformers classifier of the default config built under ``torch.device("meta")``, MACs of one
clip counted by ``torch.utils.flop_counter`` (matrix products, attention and convolutions; a
multiply-accumulate is two FLOPs). V-JEPA 2's reference counts without its pretraining
predictor, which the classifier never runs. Meta build: median milliseconds of
``build_model(spec, device="meta")`` against the reference's constructor on meta.

Forward: the default config at a reduced clip (``REDUCED``: the full clips take minutes on a
shared CPU), the reference saved with ``save_pretrained`` and converted with
``import_transformers``; eval, ``torch.inference_mode``, ``torch.set_num_threads(2)``, batch 1,
median of ``--runs`` interleaved runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    PreTrainedConfig,
    PreTrainedModel,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VivitConfig,
    VivitForVideoClassification,
    VJEPA2Config,
    VJEPA2ForVideoClassification,
)

from video_interpreter.checkpoint import import_transformers, load_model
from video_interpreter.model import build_model

Reference = tuple[type[PreTrainedConfig], type[PreTrainedModel], str]
MODELS: dict[str, Reference] = {
    "videomae": (VideoMAEConfig, VideoMAEForVideoClassification, "videomae_base"),
    "timesformer": (TimesformerConfig, TimesformerForVideoClassification, "timesformer_base"),
    "vivit": (VivitConfig, VivitForVideoClassification, "vivit_b"),
    "vjepa2": (VJEPA2Config, VJEPA2ForVideoClassification, "vjepa2_vitl"),
}
# Per model type, the config keys that shrink the clip for the forward comparison.
REDUCED: dict[str, dict[str, Any]] = {
    "videomae": {"num_frames": 8, "image_size": 112},
    "timesformer": {"num_frames": 4, "image_size": 112},
    "vivit": {"num_frames": 8, "image_size": 112},
    "vjepa2": {"frames_per_clip": 8, "crop_size": 112},
}
LABELS: dict[str, Any] = {"num_labels": 400}
THREADS = 2


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "vjepa2.predictor." not in n)


def gmacs(model: nn.Module, clip: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    return counter.get_total_flops() / 2 / 1e9


def reference_clip_shape(config: PreTrainedConfig) -> tuple[int, int, int, int]:
    """(T, C, H, W) of one clip as transformers takes it."""
    c: Any = config
    if c.model_type == "vjepa2":
        return (c.frames_per_clip, c.in_chans, c.crop_size, c.crop_size)
    size = c.image_size if isinstance(c.image_size, int) else c.image_size[0]
    return (c.num_frames, c.num_channels, size, size)


class _Logits(nn.Module):
    """A transformers classifier returning its logits (for the flop counter)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(clip).logits
        return logits


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def sizes(model_type: str, runs: int) -> list[str]:
    config_cls, model_cls, spec = MODELS[model_type]
    config = config_cls(**LABELS)
    with torch.device("meta"):
        reference = model_cls(config)
    nn.Module.eval(reference)
    ours = build_model(spec, device="meta").eval()
    t, c, h, w = reference_clip_shape(config)
    ours_macs = gmacs(ours, torch.empty(1, c, t, h, w, device="meta"))
    theirs_macs = gmacs(_Logits(reference), torch.empty(1, t, c, h, w, device="meta"))

    def build_reference() -> object:
        with torch.device("meta"):
            return model_cls(config)

    meta = (
        median_ms(lambda: build_model(spec, device="meta"), runs),
        median_ms(build_reference, runs),
    )
    return [
        f"`{spec}`",
        f"{t}x{h}x{w}",
        f"{parameters(ours):,} / {parameters(reference):,}",
        f"{ours_macs:.3f} / {theirs_macs:.3f}",
        f"{meta[0]:.1f} / {meta[1]:.1f}",
    ]


def forward(model_type: str, runs: int) -> list[str]:
    config_cls, model_cls, _ = MODELS[model_type]
    config = config_cls(**LABELS, **REDUCED[model_type])
    torch.manual_seed(0)
    reference = model_cls(config)
    nn.Module.eval(reference)
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(Path(folder) / "hf")
        saved, _ = import_transformers(Path(folder) / "hf", Path(folder) / "ours.safetensors")
        ours = load_model(saved.path).eval()
    t, c, h, w = reference_clip_shape(config)
    clip = torch.randn(1, t, c, h, w)
    ours_clip = clip.transpose(1, 2).contiguous()
    with torch.inference_mode():
        diff = (ours(ours_clip)["action"] - reference(clip).logits).abs().max().item()
        ours(ours_clip), reference(clip)  # warm-up
        ours_ms, theirs_ms = [], []
        for _ in range(runs):
            ours_ms.append(median_ms(lambda: ours(ours_clip), 1))
            theirs_ms.append(median_ms(lambda: reference(clip), 1))
    ratio = statistics.median(ours_ms) / statistics.median(theirs_ms)
    return [
        model_type,
        f"{t}x{h}x{w}",
        f"{statistics.median(ours_ms):.0f} / {statistics.median(theirs_ms):.0f}",
        f"{ratio:.2f}",
        f"{diff:.1e}",
    ]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--types", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    header = ["spec", "clip", "parameters (ours / transformers)", "GMACs (ours / transformers)"]
    rows = [sizes(model_type, args.runs) for model_type in args.types]
    print(markdown([*header, "meta build ms (ours / transformers)"], rows))
    print()
    header = ["model type", "clip", "forward ms (ours / transformers)", "ratio", "max |diff|"]
    print(markdown(header, [forward(model_type, args.runs) for model_type in args.types]))


if __name__ == "__main__":
    main()
