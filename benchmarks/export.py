"""Zoo models exported and compiled, side by side on the CPU. Prints a Markdown table.

    python benchmarks/export.py                       # every zoo architecture
    python benchmarks/export.py --archs s3d --runs 1
    python benchmarks/export.py --archs videomae_base --no-compile --set input.frames=8

Per architecture: the export time and file size of ``.pt2`` (``torch.export``, batch dynamic)
and ``.onnx`` (opset ``ONNX_OPSET``); the forward time of eager, ``torch.compile``
(``fullgraph=True``, inductor) and onnxruntime's CPU session, with the ratio to eager; and
each one's largest absolute difference from eager (``.pt2`` module, compiled, onnxruntime).
Forward: eval mode, ``torch.inference_mode``, batch 1 at the spec's clip, ``--threads`` threads
for torch and onnxruntime alike, median of ``--runs`` runs after one warm-up run (for compile,
the warm-up is the compilation, timed separately). ``--no-compile`` leaves torch.compile out
(inductor takes many minutes on the large models); ``--set KEY=VALUE`` overrides every spec
measured (a shorter clip, say), and the table's clip column shows the input each row ran on.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime
import torch

from video_interpreter.export import ONNX_OPSET, check_export, export_model
from video_interpreter.model import build_model

ARCHS = (
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "s3d",
    "mvit_v2_s",
    "swin3d_t",
    "slow_r50",
    "slowfast_r50",
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
    "csn_r101",
    "r2plus1d_r50",
    "slowfast_r101",
    "mvit_base_16x4",
    "videomae_base",
    "timesformer_base",
    "vivit_b",
    "vjepa2_vitl",
)


@dataclass(frozen=True)
class Row:
    arch: str
    clip: tuple[int, ...]
    pt2_seconds: float
    pt2_mb: float
    onnx_seconds: float
    onnx_mb: float
    eager_ms: float
    compile_seconds: float | None  # None: not compiled
    compiled_ms: float | None
    ort_ms: float
    pt2_diff: float
    compiled_diff: float | None
    ort_diff: float


def _median_ms(run: Callable[[], object], runs: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(
    arch: str,
    folder: Path,
    runs: int,
    threads: int,
    *,
    compile: bool = True,
    overrides: Sequence[str] = (),
) -> Row:
    torch.manual_seed(0)
    model = build_model(arch, overrides=overrides).eval()
    c, t, h, w = model.spec.input
    clip = torch.randn(1, c, t, h, w, generator=torch.Generator().manual_seed(1))

    pt2 = export_model(model, folder / f"{arch}.pt2")
    pt2_diff = max(check_export(pt2.path, model).max_abs_diff.values())
    onnx = export_model(model, folder / f"{arch}.onnx")

    with torch.inference_mode():
        expected = model(clip)
        eager_ms = _median_ms(lambda: model(clip), runs)

        compile_seconds = compiled_ms = compiled_diff = None
        if compile:
            compiled = torch.compile(model, fullgraph=True)
            start = time.perf_counter()
            got = compiled(clip)
            compile_seconds = time.perf_counter() - start
            compiled_diff = max(float((got[k] - expected[k]).abs().max()) for k in expected)
            compiled_ms = _median_ms(lambda: compiled(clip), runs)

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(onnx.path), options, providers=["CPUExecutionProvider"]
    )
    feed = {session.get_inputs()[0].name: clip.numpy()}
    outputs = session.run(None, feed)
    ort_diff = max(
        float((torch.from_numpy(out) - want).abs().max())
        for out, want in zip(outputs, expected.values(), strict=True)
    )
    ort_ms = _median_ms(lambda: session.run(None, feed), runs)
    return Row(
        arch=arch,
        clip=tuple(clip.shape),
        pt2_seconds=pt2.seconds,
        pt2_mb=pt2.size_bytes / 1e6,
        onnx_seconds=onnx.seconds,
        onnx_mb=onnx.size_bytes / 1e6,
        eager_ms=eager_ms,
        compile_seconds=compile_seconds,
        compiled_ms=compiled_ms,
        ort_ms=ort_ms,
        pt2_diff=pt2_diff,
        compiled_diff=compiled_diff,
        ort_diff=ort_diff,
    )


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| spec | clip | .pt2 export | .pt2 size | .onnx export | .onnx size | eager | "
        "torch.compile (compile time) | onnxruntime | max diff .pt2 / compile / ORT |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        compiled, compiled_diff = "not run", "-"
        if r.compiled_ms is not None and r.compile_seconds is not None:
            compiled = (
                f"{r.compiled_ms:.0f} ms ({r.compiled_ms / r.eager_ms:.2f}x; "
                f"{r.compile_seconds:.0f} s)"
            )
            compiled_diff = f"{r.compiled_diff:.1g}"
        lines.append(
            f"| `{r.arch}` | {'x'.join(map(str, r.clip))} | {r.pt2_seconds:.1f} s "
            f"| {r.pt2_mb:.1f} MB | {r.onnx_seconds:.1f} s "
            f"| {r.onnx_mb:.1f} MB | {r.eager_ms:.0f} ms | {compiled} "
            f"| {r.ort_ms:.0f} ms ({r.ort_ms / r.eager_ms:.2f}x) "
            f"| {r.pt2_diff:.1g} / {compiled_diff} / {r.ort_diff:.1g} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), help="spec names")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per forward (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave torch.compile out (slow on big models)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override every spec"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for arch in args.archs:
            row = measure(
                arch,
                Path(folder),
                args.runs,
                args.threads,
                compile=not args.no_compile,
                overrides=args.set,
            )
            rows.append(row)
            print(table(rows).splitlines()[-1], file=sys.stderr, flush=True)
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, ONNX opset "
        f"{ONNX_OPSET}, {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"batch 1, median of {args.runs} runs"
        + (f", overrides {' '.join(args.set)}" if args.set else "")
        + "\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
