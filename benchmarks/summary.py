"""Summary of ``swin3d_t`` on the meta device, side by side with torchinfo's own real forward pass.

Each measurement runs in a fresh subprocess and reports wall time, CPU time (all threads;
steadier than wall time on a busy machine) and the growth of the peak resident set (``VmHWM`` in
``/proc/self/status``) over the figure taken just before it:

* ours: ``summarize("swin3d_t")``: build on meta, one forward pass with torchinfo's hooks and
  ``FlopCounterMode``; no weight allocated.
* torchinfo: ``build_model("swin3d_t")`` with real weights on the CPU, then
  ``torchinfo.summary(model, input_size=(1, 3, 16, 224, 224))``, a real forward pass.

"warm" means torch's one-time lazy imports were paid beforehand on a tiny model (ours: a meta
forward pass, which loads torch's Python meta kernels; torchinfo: a CPU forward pass), so the
figure is the cost of summarising this model; "cold" is the first call in a fresh process,
what ``video-interpreter summary swin3d_t`` costs. Prints a Markdown table.

    python benchmarks/summary.py [--spec swin3d_t] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

_TINY: dict[str, Any] = {
    "spec_version": 1,
    "name": "warmup",
    "version": "v1",
    "input": {"channels": 3, "frames": 4, "height": 32, "width": 32},
    "backbone": [
        {"type": "TubeletEmbedding", "dim": 32, "tubelet": [2, 8, 8]},
        {"type": "TransformerBlock", "heads": 2},
        {"type": "LayerNorm"},
    ],
    "neck": {"type": "TokenPool"},
    "heads": {"action": {"type": "ClassificationHead", "num_classes": 3}},
}


def _peak_rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child(kind: str, spec: str, warm: bool) -> dict[str, float]:
    """One measurement; runs inside the fresh subprocess."""
    import torch
    import torchinfo

    from video_interpreter import build_model
    from video_interpreter.summary import summarize

    torch.set_num_threads(2)
    if warm and kind == "ours":
        summarize(_TINY)
    elif warm:
        torchinfo.summary(build_model(_TINY), input_size=(1, 3, 4, 32, 32), verbose=0)
    before = _peak_rss_kib()
    start, cpu_start = time.perf_counter(), time.process_time()
    if kind == "ours":
        result = summarize(spec)
        macs, params = result.macs, result.total_params
    else:
        model = build_model(spec)
        clip = model.spec.input
        stats = torchinfo.summary(model, input_size=(1, *clip), verbose=0)
        macs, params = stats.total_mult_adds, stats.total_params
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_mb": (_peak_rss_kib() - before) * 1024 / 1e6,
        "gmacs": macs / 1e9,
        "params": params,
    }


def _measure(kind: str, spec: str, warm: bool, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        command = [sys.executable, __file__, "--child", kind, "--spec", spec]
        if warm:
            command.append("--warm")
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="swin3d_t")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("ours", "torchinfo"), help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.spec, args.warm)))
        return

    import torch

    figures = {
        (kind, warm): _measure(kind, args.spec, warm, args.repeats)
        for kind in ("ours", "torchinfo")
        for warm in (True, False)
    }
    print(
        f"`{args.spec}`, median of {args.repeats} fresh processes, torch {torch.__version__}, "
        "2 threads\n"
    )
    print(
        "| measurement | ours: `summarize` on meta | torchinfo: real CPU forward | target (ours) |"
    )
    print("| --- | ---: | ---: | --- |")
    for warm, when in ((True, "warm"), (False, "cold")):
        ours, theirs = figures["ours", warm], figures["torchinfo", warm]
        target_s, target_mb = ("< 1 s", "< 50 MB") if warm else ("-", "-")
        print(
            f"| time, {when} (s) | {ours['seconds']:.2f} | {theirs['seconds']:.2f} | {target_s} |"
        )
        print(
            f"| CPU time, {when} (s) | {ours['cpu_seconds']:.2f} | {theirs['cpu_seconds']:.2f} "
            "| - |"
        )
        print(
            f"| peak RSS growth, {when} (MB) | {ours['rss_mb']:.0f} | {theirs['rss_mb']:.0f} "
            f"| {target_mb} |"
        )
    ours, theirs = figures["ours", True], figures["torchinfo", True]
    print(f"| parameters | {ours['params']:,.0f} | {theirs['params']:,.0f} | - |")
    print(
        f"| GMACs | {ours['gmacs']:.3f} (FlopCounterMode) | {theirs['gmacs']:.3f} "
        "(torchinfo's estimate: no attention matmuls) | - |"
    )


if __name__ == "__main__":
    main()
