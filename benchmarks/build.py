"""Build and spec-loading speed of v1, side by side with torchvision's r2plus1d_18 in one run.

``build_model("v1")`` (same architecture and same initialisation as torchvision's
``r2plus1d_18()``) against the torchvision constructor, alternating runs; then building on the
meta device, and reading and validating the spec from its file (without and with types checked).

    python benchmarks/build.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from video_interpreter import build_model, load_spec


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)

    def ours_fn() -> object:
        return build_model("configs/v1.yaml")

    def theirs_fn() -> object:
        return torchvision.models.video.r2plus1d_18()

    ours_fn(), theirs_fn()  # warm-up: imports, allocator, registry, schema
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(_time(ours_fn))
        theirs.append(_time(theirs_fn))
    meta = [
        _time(lambda: build_model("configs/v1.yaml", device="meta")) for _ in range(args.repeats)
    ]

    def afresh(check_shapes: bool) -> float:
        return _time(lambda: load_spec("configs/v1.yaml", check_shapes=check_shapes))

    spec_only = [afresh(False) for _ in range(args.repeats)]
    spec_checked = [afresh(True) for _ in range(args.repeats)]
    ours_ms, theirs_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    print(
        f"median of {args.repeats}, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print("| measurement | video_interpreter | torchvision | ratio | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(
        f"| build v1 / r2plus1d_18 on CPU (ms) | {ours_ms:.0f} | {theirs_ms:.0f} | "
        f"{ours_ms / theirs_ms:.2f} | <= 1.25 |"
    )
    print(f"| build v1 on the meta device (ms) | {statistics.median(meta) * 1e3:.1f} | - | - | - |")
    print(
        f"| load + validate spec (ms) | {statistics.median(spec_only) * 1e3:.1f} | - | - | < 20 |"
    )
    print(
        f"| ... + types checked (ms) | {statistics.median(spec_checked) * 1e3:.1f} | - | - | < 15 |"
    )


if __name__ == "__main__":
    main()
