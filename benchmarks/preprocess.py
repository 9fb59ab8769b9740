"""``model.preprocess`` beside the reference processors: largest difference and time per batch.

torchvision's r2plus1d_18 weights' transforms against r2plus1d_18's spec section, and
transformers' VideoMAEImageProcessor (ImageNet mean and std, as the Kinetics checkpoints set it)
against the same values written as a section; uint8 clips, then the exported (torch.export)
module. The target: every difference within 1e-5.

    python benchmarks/preprocess.py [--repeats 5] [--frames 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torchvision.models.video import R2Plus1D_18_Weights
from transformers import VideoMAEImageProcessor

from video_interpreter import build_model
from video_interpreter.model import Preprocess

VIDEOMAE = {
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "value_range": [0, 255],
    "resize": 224,
    "crop": [224, 224],
    "antialias": True,
    "uint8_resize": "native",
    "crop_offset": "floor",
}


def _median_ms(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    rows: list[tuple[str, str, float, float, float]] = []

    tv_clip = torch.randint(
        0, 256, (2, 3, args.frames, 240, 320), dtype=torch.uint8, generator=generator
    )
    ours = build_model("r2plus1d_18", device="meta").preprocess
    reference = R2Plus1D_18_Weights.DEFAULT.transforms()
    theirs_ms, expected = _median_ms(
        lambda: reference(tv_clip.transpose(1, 2).contiguous()), args.repeats
    )
    ours_ms, got = _median_ms(lambda: ours(tv_clip), args.repeats)
    diff = (got - expected).abs().max().item()
    rows.append(("torchvision r2plus1d_18", "2x3x16x240x320 uint8", diff, ours_ms, theirs_ms))
    exported = torch.export.export(ours, (tv_clip,)).module()
    export_ms, got = _median_ms(lambda: exported(tv_clip), args.repeats)
    diff = (got - expected).abs().max().item()
    rows.append(("  the same, torch.export", "2x3x16x240x320 uint8", diff, export_ms, theirs_ms))

    mae_clip = torch.randint(
        0, 256, (2, 3, args.frames, 240, 320), dtype=torch.uint8, generator=generator
    )
    section = Preprocess(VIDEOMAE)
    processor = VideoMAEImageProcessor(image_mean=VIDEOMAE["mean"], image_std=VIDEOMAE["std"])
    videos: Any = [list(video.transpose(0, 1)) for video in mae_clip]
    theirs_ms, expected = _median_ms(
        lambda: processor(videos, return_tensors="pt")["pixel_values"], args.repeats
    )
    ours_ms, got = _median_ms(lambda: section(mae_clip).transpose(1, 2), args.repeats)
    diff = (got - expected).abs().max().item()
    rows.append(("transformers VideoMAE", "2x3x16x240x320 uint8", diff, ours_ms, theirs_ms))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'reference':<26} {'clips':<22} {'max |diff|':>11} {'ours ms':>9} {'ref ms':>9}")
    for name, clips, diff, ours_ms, theirs_ms in rows:
        print(f"{name:<26} {clips:<22} {diff:>11.2e} {ours_ms:>9.1f} {theirs_ms:>9.1f}")
    worst = max(row[2] for row in rows)
    print(f"largest difference {worst:.2e}: {'within' if worst <= 1e-5 else 'BEYOND'} 1e-5")


if __name__ == "__main__":
    main()
