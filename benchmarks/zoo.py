"""Zoo specs side by side with their reference implementations (torchvision's, pytorchvideo's),
in one process: forward time, build time on CPU, and build time on the meta device. Prints a
Markdown table.

    python benchmarks/zoo.py                      # every architecture
    python benchmarks/zoo.py --archs s3d --runs 3

Forward: eval mode, ``torch.inference_mode``, ``torch.set_num_threads(2)``, batch 1 at the spec's
input size, both models holding the same weights (imported through the key map), median of
``--runs`` interleaved runs after ``--warmup``. Builds: ours ``build_model(arch)`` from the spec
name (read the file, validate, construct on meta, ``to_empty``, initialise) against
torchvision's constructor; meta: ours ``build_model(arch, device="meta")`` against torchvision's
constructor under ``torch.device("meta")``. An architecture without a spec file is reported as
missing.

Then: reading and validating v1 from its file (types propagated, nothing cached), and a fresh
process that imports the package and builds ``mvit_v2_s`` on meta: what it imported of torch's
symbolic-shape machinery and compiler, and whether any torch function was replaced.

``--clock cpu`` times with the process's CPU time instead of wall time: steadier on a machine
other work shares (a forward's CPU time sums its threads, so compare ratios, not latencies).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from video_interpreter.errors import VideoInterpreterError
from video_interpreter.model import build_model
from video_interpreter.spec import find_spec_file, load_spec
from video_interpreter.zoo import convert_state_dict, known_key_maps, list_models

TORCHVISION = tuple(list_models(library="torchvision"))
PYTORCHVIDEO = (
    "x3d_s",
    "x3d_m",
    "slow_r50",
    "c2d_r50",
    "i3d_r50",
    "slowfast_r50",
    "slowfast_r101",
    "csn_r101",
    "r2plus1d_r50",
    "mvit_base_16x4",
)
ARCHS = TORCHVISION + PYTORCHVIDEO
THREADS = 2

# Targets: forward ours/torchvision, CPU build ours/torchvision, meta build in milliseconds.
FORWARD_RATIO_TARGET = 1.05
BUILD_RATIO_TARGET = 1.25
META_BUILD_TARGET_MS = 50.0
SPEC_TARGET_MS = 15.0
FRESH_PROCESS = """
import sys, torch
before = {name: getattr(torch, name) for name in dir(torch) if callable(getattr(torch, name))}
import video_interpreter
video_interpreter.build_model("mvit_v2_s", device="meta")
replaced = [n for n, fn in before.items() if getattr(torch, n, None) is not fn]
print(any(m.startswith("sympy") for m in sys.modules), "torch._dynamo" in sys.modules, replaced)
"""


@dataclass
class Row:
    arch: str
    status: str = "ok"
    forward_ms: tuple[float, float] | None = None  # (ours, torchvision)
    build_ms: tuple[float, float] | None = None
    meta_ms: tuple[float, float] | None = None
    max_abs_diff: float | None = None


def library(arch: str) -> str:
    return "pytorchvideo" if arch in PYTORCHVIDEO else "torchvision"


def reference_model(arch: str) -> nn.Module:
    """The reference implementation, without weights: torchvision's, or pytorchvideo's hub
    builder (imported only when asked for)."""
    if library(arch) == "pytorchvideo":
        from pytorchvideo.models import hub

        built: nn.Module = getattr(hub, arch)(pretrained=False)
        return built
    model: nn.Module = torchvision.models.get_model(arch, weights=None)
    return model


def reference_meta_model(arch: str) -> nn.Module:
    with torch.device("meta"):
        return reference_model(arch)


def reference_input(arch: str, clip: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    """pytorchvideo's SlowFast takes its pathways' clips; ours derives the slow one itself."""
    return [clip[:, :, ::4], clip] if arch.startswith("slowfast") else clip


Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


def median_ms_pair(
    ours: Callable[[], object],
    theirs: Callable[[], object],
    runs: int,
    warmup: int,
    clock: Clock = time.perf_counter,
) -> tuple[float, float]:
    """Median milliseconds of each, runs interleaved so drift hits both alike."""
    for _ in range(warmup):
        ours()
        theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in ((theirs, times[1]), (ours, times[0])):
            start = clock()
            fn()
            out.append((clock() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def measure(
    arch: str,
    runs: int,
    build_runs: int,
    warmup: int,
    clock: Clock = time.perf_counter,
) -> Row:
    if find_spec_file(arch) is None:
        return Row(arch, status="missing (no spec file)")
    row = Row(arch)

    def build(device: str | None = None) -> nn.Module:
        return build_model(arch, device=device)

    try:
        row.meta_ms = median_ms_pair(
            lambda: build("meta"),
            lambda: reference_meta_model(arch),
            build_runs,
            warmup=1,
            clock=clock,
        )
        row.build_ms = median_ms_pair(
            lambda: build(),
            lambda: reference_model(arch),
            build_runs,
            warmup=1,
            clock=clock,
        )
        reference = reference_model(arch).eval()
        ours = build_model(arch).eval()
        if arch in known_key_maps(library(arch)):
            mapped = convert_state_dict(arch, reference.state_dict(), library(arch))
            ours.load_state_dict(mapped.state_dict, strict=True)
        else:
            row.status = "ok (no key map: weights differ)"
        clip = torch.randn(1, *ours.spec.input)
        with torch.inference_mode():
            (head,) = ours(clip).values()
            row.max_abs_diff = (head - reference(reference_input(arch, clip))).abs().max().item()
            # A fresh input list each call: pytorchvideo's SlowFast replaces its items in place.
            row.forward_ms = median_ms_pair(
                lambda: ours(clip),
                lambda: reference(reference_input(arch, clip)),
                runs,
                warmup,
                clock,
            )
    except (VideoInterpreterError, RuntimeError, ValueError) as exc:
        row.status = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return row


def _pair(pair: tuple[float, float] | None) -> list[str]:
    if pair is None:
        return ["-", "-", "-"]
    ours, theirs = pair
    return [f"{ours:.0f}", f"{theirs:.0f}", f"{ours / theirs:.2f}"]


def misses(row: Row) -> list[str]:
    """The targets this row misses."""
    out = []
    if row.forward_ms and row.forward_ms[0] / row.forward_ms[1] > FORWARD_RATIO_TARGET:
        out.append("forward")
    if row.build_ms and row.build_ms[0] / row.build_ms[1] > BUILD_RATIO_TARGET:
        out.append("CPU build")
    if row.meta_ms and row.meta_ms[0] >= META_BUILD_TARGET_MS:
        out.append("meta build")
    return out


def table(rows: Sequence[Row]) -> str:
    header = [
        "arch",
        "forward ours (ms)",
        "forward ref (ms)",
        "ours/ref",
        "CPU build ours (ms)",
        "CPU build ref (ms)",
        "ours/ref",
        "meta build ours (ms)",
        "meta build ref (ms)",
        "ours/ref",
        "max abs diff",
        "status",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        diff = "-" if row.max_abs_diff is None else f"{row.max_abs_diff:.1e}"
        missed = misses(row)
        status = row.status + (f"; misses target: {', '.join(missed)}" if missed else "")
        cells = [
            row.arch,
            *_pair(row.forward_ms),
            *_pair(row.build_ms),
            *_pair(row.meta_ms),
            diff,
            status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Zoo specs side by side with torchvision.")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), metavar="ARCH")
    parser.add_argument("--runs", type=int, default=5, help="timed forward runs (median)")
    parser.add_argument("--build-runs", type=int, default=7, help="timed builds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forward runs first")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    rows = [
        measure(arch, args.runs, args.build_runs, args.warmup, CLOCKS[args.clock])
        for arch in args.archs
    ]
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{platform.processor() or platform.machine()}, {THREADS} threads, {args.clock} clock, "
        f"spec read and validated in every build; "
        f"forward median of {args.runs} after {args.warmup} warm-up, "
        f"builds median of {args.build_runs}\n"
    )
    print(table(rows))
    print(
        f"\ntargets: forward ours/ref <= {FORWARD_RATIO_TARGET}, CPU build ours/ref <= "
        f"{BUILD_RATIO_TARGET}, meta build < {META_BUILD_TARGET_MS:.0f} ms"
    )
    load_spec("configs/v1.yaml")  # warm: imports, the schema validator
    spec_ms = statistics.median(
        [_timed_ms(lambda: load_spec("configs/v1.yaml")) for _ in range(args.build_runs)]
    )
    print(
        f"\nv1 read from its file and validated, types checked (median of {args.build_runs}): "
        f"{spec_ms:.1f} ms (target < {SPEC_TARGET_MS:.0f} ms)"
    )
    sympy, dynamo, replaced = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=2)
    print(
        f"fresh process, import + build_model('mvit_v2_s', device='meta'): sympy imported: "
        f"{sympy}, torch._dynamo imported: {dynamo}, torch functions replaced: {replaced.strip()}"
    )


def _timed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    main()
