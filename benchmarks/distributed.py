"""Peak resident memory per rank when a 108M-parameter model is built, saved and loaded sharded
over two ranks (FSDP2, gloo on the CPU), against the bytes of its full weights.

Each phase runs in fresh processes: the figure is the growth of the peak resident set (VmHWM,
reset through /proc/self/clear_refs) over the resident set before the phase, after imports,
process-group start and one build of the spec on the meta device (which allocates no weight but
loads ~100 MiB of torch's lazily imported shape machinery, the same for any model size). One
process building the whole model (``build_model``) and consolidating the checkpoint are shown
for comparison. Prints a Markdown table.

    python benchmarks/distributed.py [--blocks 15] [--dim 768] [--folder /tmp/bench]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import start_processes

from video_interpreter.distributed import consolidate, load_sharded_model, save_sharded, shard_model
from video_interpreter.model import build_meta, build_model
from video_interpreter.spec import load_spec

WORLD = 2
TARGET = 0.6  # at most this fraction of the full weights per rank


def wide_transformer(blocks: int, dim: int) -> dict[str, Any]:
    """A ViT-B-like video transformer: ``blocks`` joint-attention blocks of width ``dim``."""
    return {
        "spec_version": 1,
        "name": "wide_transformer",
        "version": "bench",
        "init": "vit",
        "input": {"channels": 3, "frames": 8, "height": 64, "width": 64},
        "backbone": [
            {"name": "embed", "type": "TubeletEmbedding", "dim": dim, "tubelet": [2, 16, 16]},
            {
                "name": "blocks",
                "type": "Repeat",
                "times": blocks,
                "layer": {"type": "TransformerBlock", "heads": 12},
            },
            {"name": "norm", "type": "LayerNorm"},
        ],
        "neck": {"type": "TokenPool"},
        "heads": {"action": {"type": "ClassificationHead", "num_classes": 400}},
    }


# -- resident memory ------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(task: Callable[[], object]) -> dict[str, float]:
    """Run ``task``; its peak resident growth (bytes) and wall time (s)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    task()
    seconds = time.perf_counter() - start
    return {"peak_bytes": (_status_kib("VmHWM") - before) * 1024, "seconds": seconds}


# -- phases on two ranks --------------------------------------------------------------------


def warm_up(spec: dict[str, Any]) -> None:
    """Build on the meta device once: lazy imports done, no weight allocated."""
    build_meta(load_spec(spec, check_shapes=False))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rank(rank: int, port: int, phase: str, spec: dict[str, Any], folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    root = Path(folder)
    results: dict[str, dict[str, float]] = {}
    warm_up(spec)
    try:
        if phase == "build_and_save":
            box: dict[str, Any] = {}
            results["build"] = measure(lambda: box.update(model=shard_model(spec)))
            results["save"] = measure(lambda: save_sharded(box["model"], root / "ckpt"))
        elif phase == "load_directory":
            results["load_directory"] = measure(lambda: load_sharded_model(root / "ckpt"))
        else:
            results["load_file"] = measure(lambda: load_sharded_model(root / "model.safetensors"))
        (root / f"{phase}_rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


def run_phase(phase: str, spec: dict[str, Any], folder: Path) -> dict[str, list[dict[str, float]]]:
    start_processes(  # type: ignore[no-untyped-call]
        _rank, args=(_free_port(), phase, spec, str(folder)), nprocs=WORLD, start_method="spawn"
    )
    by_rank = [json.loads((folder / f"{phase}_rank{r}.json").read_text()) for r in range(WORLD)]
    return {name: [ranks[name] for ranks in by_rank] for name in by_rank[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--folder", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = wide_transformer(args.blocks, args.dim)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="vi_bench_distributed_"))
    folder.mkdir(parents=True, exist_ok=True)

    phases = run_phase("build_and_save", spec, folder)
    phases.update(run_phase("load_directory", spec, folder))
    warm_up(spec)
    whole: dict[str, Any] = {}
    single = {
        "build_model": measure(lambda: whole.update(model=build_model(spec))),
        "consolidate": measure(lambda: consolidate(folder / "ckpt", folder / "model.safetensors")),
    }
    parameters = sum(p.numel() for p in whole["model"].parameters())
    full_bytes = sum(t.numel() * t.element_size() for t in whole["model"].state_dict().values())
    whole.clear()
    phases.update(run_phase("load_file", spec, folder))

    mib = 1024 * 1024
    print(
        f"{parameters / 1e6:.1f}M parameters, full weights {full_bytes / mib:.0f} MiB (fp32); "
        f"torch {torch.__version__}, gloo on the CPU, {os.cpu_count()} cores, "
        f"{sys.platform}\n"
    )
    print("| phase | ranks | peak growth per rank (MiB) | x full weights | time (s) | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    rows = [
        ("shard_model: build + initialise", "build", True),
        ("save_sharded", "save", False),
        ("load_sharded_model (directory)", "load_directory", True),
        ("load_sharded_model (one .safetensors, mmap)", "load_file", False),
    ]
    for label, key, targeted in rows:
        peak = max(r["peak_bytes"] for r in phases[key])
        seconds = max(r["seconds"] for r in phases[key])
        mark = ("ok" if peak <= TARGET * full_bytes else "MISSED") if targeted else ""
        target = f"<= {TARGET}x {mark}" if targeted else ""
        print(
            f"| {label} | {WORLD} | {peak / mib:.0f} | {peak / full_bytes:.2f} | "
            f"{seconds:.1f} | {target} |"
        )
    for label, key in (
        ("build_model (whole model)", "build_model"),
        ("consolidate", "consolidate"),
    ):
        peak, seconds = single[key]["peak_bytes"], single[key]["seconds"]
        print(f"| {label} | 1 | {peak / mib:.0f} | {peak / full_bytes:.2f} | {seconds:.1f} | |")


if __name__ == "__main__":
    main()
