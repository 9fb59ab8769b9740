"""The first build in a fresh process, ours against torchvision's constructor. Prints Markdown.

    python benchmarks/first_build.py [--archs s3d mvit_v2_s] [--runs 3]

Each figure is the median over ``--runs`` fresh processes of the first ``build_model(arch)``
(reading and validating the spec included) or the first torchvision constructor call, timed
after the imports (torch, torchvision and video_interpreter are imported on both sides). A
first build pays one-time costs a repeated build does not: modules torch imports lazily, and
caches filled on first use.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Sequence

from video_interpreter.zoo import list_models

ARCHS = tuple(list_models(library="torchvision"))

_SCRIPT = """
import sys, time
import torch, torchvision
from video_interpreter.model import build_model
torch.set_num_threads(2)
arch, side = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if side == "ours":
    build_model(arch)
else:
    torchvision.models.get_model(arch, weights=None)
print((time.perf_counter() - start) * 1e3)
"""


def first_build_ms(arch: str, side: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, arch, side], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="First build in a fresh process.")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), metavar="ARCH")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per side (median)")
    args = parser.parse_args(argv)
    print("| arch | first build ours (ms) | first build tv (ms) | ours/tv |")
    print("|---|---|---|---|")
    for arch in args.archs:
        ours = statistics.median(first_build_ms(arch, "ours") for _ in range(args.runs))
        theirs = statistics.median(first_build_ms(arch, "tv") for _ in range(args.runs))
        print(f"| {arch} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
