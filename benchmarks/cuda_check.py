"""The CUDA checks a machine without a GPU cannot make, as one short script. Prints Markdown.

    python benchmarks/cuda_check.py [--archs s3d r3d_18] [--batch 8] [--folder /tmp/cuda_check]

For each zoo architecture, against torchvision's model holding the same (imported) weights:
building on the GPU (``build_model(arch, device="cuda")``), fp32 outputs on the GPU (TF32 off),
a bf16 autocast forward against fp32, a training step under bf16 autocast (every gradient
finite), and forward time (``--batch`` clips, default 1; inference mode, CUDA events, median)
in fp32, bf16, and for the convolutional ones bf16 with ``channels_last_3d``. Then
initialisation on the GPU (the same seed gives the same weights; the distribution is PyTorch's)
and, on a one-rank NCCL group, ``shard_model``, a training step, ``save_sharded``,
``load_sharded`` and ``consolidate``.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision
from torch import nn

from video_interpreter.checkpoint import load_model
from video_interpreter.distributed import consolidate, load_sharded, save_sharded, shard_model
from video_interpreter.model import build_model
from video_interpreter.zoo import convert_state_dict, list_models

ARCHS = tuple(list_models(library="torchvision"))
CONVOLUTIONAL = {"r3d_18", "mc3_18", "r2plus1d_18", "s3d"}
CUDA = torch.device("cuda")


def event_ms(fn: Callable[[], object]) -> float:
    """Milliseconds of ``fn`` from the GPU's point of view (CUDA events around it)."""
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end))


def cuda_ms(fn: Callable[[], object], runs: int = 20, warmup: int = 5) -> float:
    """Median milliseconds of ``fn`` over ``runs`` after ``warmup``."""
    for _ in range(warmup):
        fn()
    return statistics.median(event_ms(fn) for _ in range(runs))


def only_head(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    (head,) = outputs.values()
    return head


def check_arch(arch: str, batch: int = 1) -> list[str]:
    """One Markdown row: build, parity, bf16, training step and forward times (``batch``)."""
    first_build = event_ms(lambda: build_model(arch, device=CUDA))
    build = event_ms(lambda: build_model(arch, device=CUDA))
    reference = torchvision.models.get_model(arch, weights=None).to(CUDA).eval()
    ours = build_model(arch, device=CUDA).eval()
    ours.load_state_dict(convert_state_dict(arch, reference.state_dict()).state_dict)
    clip = torch.randn(batch, *ours.spec.input, device=CUDA)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.inference_mode():
        fp32 = only_head(ours(clip))
        parity = (fp32 - reference(clip)).abs().max().item()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = only_head(ours(clip)).float()
    bf16_error = ((bf16 - fp32).norm() / fp32.norm()).item()

    ours.train()
    clips = torch.randn(2, *ours.spec.input, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = only_head(ours(clips)).float().logsumexp(dim=1).mean()
    loss.backward()  # type: ignore[no-untyped-call]
    grads_finite = all(
        p.grad is not None and bool(p.grad.isfinite().all()) for p in ours.parameters()
    )
    ours.eval()

    def forward(
        model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None
    ) -> Callable[[], object]:
        def run() -> object:
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                return model(x)

        return run

    times = [
        cuda_ms(forward(ours, clip, None)),
        cuda_ms(forward(reference, clip, None)),
        cuda_ms(forward(ours, clip, torch.bfloat16)),
        cuda_ms(forward(reference, clip, torch.bfloat16)),
    ]
    channels_last = "-"
    if arch in CONVOLUTIONAL:
        ours_cl = ours.to(memory_format=torch.channels_last_3d)
        clip_cl = clip.to(memory_format=torch.channels_last_3d)
        channels_last = f"{cuda_ms(forward(ours_cl, clip_cl, torch.bfloat16)):.2f}"
    return [
        arch,
        f"{first_build:.0f} / {build:.0f}",
        f"{parity:.1e}",
        f"{bf16_error:.1e}",
        f"{loss.item():.3f}, {'yes' if grads_finite else 'NO'}",
        f"{times[0]:.2f} / {times[1]:.2f} ({times[0] / times[1]:.2f})",
        f"{times[2]:.2f} / {times[3]:.2f} ({times[2] / times[3]:.2f})",
        channels_last,
    ]


def check_init() -> list[str]:
    """Lines: initialisation on the GPU is reproducible and draws PyTorch's distribution."""
    torch.manual_seed(5)
    first = build_model("s3d", device=CUDA)
    torch.manual_seed(5)
    second = build_model("s3d", device=CUDA)
    same = all(
        torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True)
    )
    conv = next(m for m in first.modules() if isinstance(m, nn.Conv3d))
    weight = conv.weight  # kaiming-uniform with a = sqrt(5): uniform in +-1/sqrt(fan_in)
    bound = 1 / math.sqrt(math.prod(weight.shape[1:]))
    return [
        f"- same seed, same weights on the GPU: {'yes' if same else 'NO'}",
        f"- first convolution's weights on {weight.device}: max |w| "
        f"{weight.abs().max().item():.4f} (bound {bound:.4f}), std {weight.std().item():.4f} "
        f"(expected {bound / math.sqrt(3):.4f})",
    ]


def check_nccl(folder: Path) -> list[str]:
    """Lines: shard on a one-rank NCCL group, train, save, load, consolidate."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        torch.cuda.set_device(0)
        torch.manual_seed(3)
        model = shard_model("v1")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        clips = torch.randn(2, *model.spec.input, device=CUDA)
        loss = only_head(model(clips)).logsumexp(dim=1).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        model.eval()
        with torch.no_grad():
            expected = only_head(model(clips))
        save_sharded(model, folder / "sharded", optimizer=optimizer, step=1)
        restored = shard_model("v1", init=False)
        load_sharded(restored, folder / "sharded")
        restored.eval()
        with torch.no_grad():
            reloaded = only_head(restored(clips))
    finally:
        dist.destroy_process_group()
    consolidate(folder / "sharded", folder / "whole.pth")
    whole = load_model(folder / "whole.pth", device=CUDA).eval()
    with torch.no_grad():
        consolidated = only_head(whole(clips))
    return [
        f"- NCCL, one rank: shard_model, a training step (loss {loss.item():.3f}), "
        "save_sharded and load_sharded",
        f"- outputs after load_sharded equal: {'yes' if torch.equal(reloaded, expected) else 'NO'}"
        f" (max abs diff {(reloaded - expected).abs().max().item():.1e})",
        "- outputs of the consolidated file on the GPU, max abs diff "
        f"{(consolidated - expected).abs().max().item():.1e}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CUDA checks of the zoo, init and NCCL.")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), metavar="ARCH")
    parser.add_argument("--batch", type=int, default=1, help="clips per timed forward")
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script checks the GPU path")
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, batch {args.batch}\n"
    )
    print(
        "| arch | build on GPU, first / again (ms) | fp32 max abs diff vs tv | bf16 vs fp32 "
        "(rel.) | train step under bf16: loss, grads finite | forward fp32 ours / tv (ms) "
        "| forward bf16 ours / tv (ms) | bf16 channels_last_3d ours (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.archs:
        print("| " + " | ".join(check_arch(arch, args.batch)) + " |", flush=True)
    print()
    print("\n".join(check_init()), flush=True)
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        print("\n".join(check_nccl(Path(folder))))


if __name__ == "__main__":
    main()
