"""Loading a full-size checkpoint: ``load_model`` side by side with the naive path and the floor.

One run saves an r3d_18-sized checkpoint (``r3d_18`` if its spec exists, else ``r2plus1d_18``;
about 31-33M parameters, 126-133 MB), then loads it with each variant in a fresh subprocess:

- naive: ``build_model`` (random init), ``torch.load``, ``load_state_dict`` (a copy);
- floor: torchvision's module built on the meta device, ``torch.load(mmap=True)``,
  ``load_state_dict(assign=True)``: the least work any loader can do;
- ``load_model`` from ``.pth`` and ``.safetensors``, and from ``.pth`` with ``verify=sha256``.

Time: the first load in the process, then the median of warm repeats. Memory: growth of the
process's peak resident set (VmHWM, reset before loading; file pages mapped by mmap count) over
its resident set before loading, measured right after loading and again after every weight has
been read once. The file is in the page cache (just written), as for every variant. Prints a
Markdown table and whether the targets hold.

    python benchmarks/load.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from video_interpreter.checkpoint import load_model, save_model, sha256_file
from video_interpreter.model import build_model
from video_interpreter.spec import known_spec_names

VARIANTS = ("naive", "floor", "load_model .pth", "load_model .safetensors", "load_model verify")
TARGET_SPEEDUP = 5.0  # load_model at least this much faster than naive
TARGET_FLOOR = 1.5  # load_model at most this much slower than the floor
TARGET_MEMORY = 1.25  # peak growth at most this many times the weights' bytes


# -- worker: one variant, fresh process ------------------------------------------------------


def _status(field: str) -> int:
    """A /proc/self/status size field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _loader(variant: str, files: dict[str, str], arch: str) -> Callable[[], nn.Module]:
    if variant == "naive":

        def naive() -> nn.Module:
            model = build_model(arch)
            model.load_state_dict(torch.load(files["pth"], weights_only=True)["model_state_dict"])
            return model

        return naive
    if variant == "floor":

        def floor() -> nn.Module:
            with torch.device("meta"):
                model: nn.Module = torchvision.models.get_model(arch, weights=None)
            model.load_state_dict(
                torch.load(files["torchvision"], mmap=True, weights_only=True), assign=True
            )
            return model

        return floor
    if variant == "load_model .pth":
        return lambda: load_model(files["pth"])
    if variant == "load_model .safetensors":
        return lambda: load_model(files["safetensors"])
    if variant == "load_model verify":
        return lambda: load_model(files["pth"], verify=files["sha256"])
    raise ValueError(variant)


def _touch(model: nn.Module) -> float:
    """Read every weight once, as a first forward pass would."""
    with torch.no_grad():
        return float(sum(t.float().sum() for t in model.state_dict().values()))


def worker(variant: str, files: dict[str, str], arch: str, repeats: int) -> dict[str, Any]:
    load = _loader(variant, files, arch)
    before = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    model = load()
    first = time.perf_counter() - start
    after_load = _status("VmHWM") - before
    _touch(model)
    after_use = _status("VmHWM") - before
    del model
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = load()
        warm.append(time.perf_counter() - start)
        del model
    return {
        "first_ms": first * 1e3,
        "warm_ms": statistics.median(warm) * 1e3,
        "peak_after_load": after_load,
        "peak_after_use": after_use,
    }


# -- driver ----------------------------------------------------------------------------------


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python {python}"


def _prepare(folder: Path, arch: str) -> tuple[dict[str, str], int, dict[str, float]]:
    torch.manual_seed(0)
    model = build_model(arch)
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    timings: dict[str, float] = {}
    start = time.perf_counter()
    pth = save_model(model, folder / f"{arch}.pth")
    timings["save_model .pth"] = time.perf_counter() - start
    start = time.perf_counter()
    safetensors = save_model(model, folder / f"{arch}.safetensors")
    timings["save_model .safetensors"] = time.perf_counter() - start
    start = time.perf_counter()
    torch.save(model.state_dict(), folder / "plain.pth")
    timings["torch.save(state_dict)"] = time.perf_counter() - start
    reference = torchvision.models.get_model(arch, weights=None)
    torch.save(reference.state_dict(), folder / "torchvision.pth")
    hashes = []
    for _ in range(3):
        start = time.perf_counter()
        digest = sha256_file(pth.path)
        hashes.append(time.perf_counter() - start)
    timings["sha256_file .pth"] = statistics.median(hashes)
    files = {
        "pth": str(pth.path),
        "safetensors": str(safetensors.path),
        "torchvision": str(folder / "torchvision.pth"),
        "sha256": digest,
    }
    return files, weight_bytes, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, json.loads(args.files), args.arch, args.repeats)
        print(json.dumps(result))
        return
    arch = "r3d_18" if "r3d_18" in known_spec_names() else "r2plus1d_18"
    with tempfile.TemporaryDirectory() as tmp:
        files, weight_bytes, timings = _prepare(Path(tmp), arch)
        size = Path(files["pth"]).stat().st_size
        results = {}
        for variant in VARIANTS:
            command = [
                sys.executable, __file__, "--worker", variant, "--files", json.dumps(files),
                "--arch", arch, "--repeats", str(args.repeats),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    mb = 1e6
    floor, naive = results["floor"], results["naive"]
    print(f"{arch}: {weight_bytes / mb:.1f} MB of weights, .pth file {size / mb:.1f} MB")
    print(f"{_machine()}; each variant in a fresh process; warm = median of {args.repeats}\n")
    print(
        "| variant | first load (ms) | warm load (ms) | warm vs floor | warm speed-up vs naive "
        "| peak RSS growth after load | after reading every weight |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for variant, r in results.items():
        print(
            f"| {variant} | {r['first_ms']:.0f} | {r['warm_ms']:.0f} | "
            f"{r['warm_ms'] / floor['warm_ms']:.2f}x | {naive['warm_ms'] / r['warm_ms']:.1f}x | "
            f"{r['peak_after_load'] / mb:.0f} MB ({r['peak_after_load'] / weight_bytes:.2f}x) | "
            f"{r['peak_after_use'] / mb:.0f} MB ({r['peak_after_use'] / weight_bytes:.2f}x) |"
        )
    print("\n| other | ms |\n| --- | ---: |")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds * 1e3:.0f} |")
    ours = results["load_model .pth"]
    checks = {
        f"load_model >= {TARGET_SPEEDUP:g}x faster than naive (warm)": naive["warm_ms"]
        / ours["warm_ms"]
        >= TARGET_SPEEDUP,
        f"load_model <= {TARGET_FLOOR:g}x the floor (warm)": ours["warm_ms"]
        <= TARGET_FLOOR * floor["warm_ms"],
        f"load_model peak growth <= {TARGET_MEMORY:g}x weights (after reading every weight)": (
            ours["peak_after_use"] <= TARGET_MEMORY * weight_bytes
        ),
    }
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
