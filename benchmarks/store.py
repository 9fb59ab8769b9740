"""Store overhead over bare checkpoint calls, for v1 (R(2+1)D-18, 31.5 M parameters), side by side.

    python benchmarks/store.py [--repeats 3]

Times save (store.save vs save_model), load (store.load vs load_model with verify=) and the
consistency passes (verify with and without hashing, sync rebuilding a lost registry) in a
temporary directory. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from video_interpreter import build_model
from video_interpreter.checkpoint import load_model, save_model
from video_interpreter.store import ModelStore


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = build_model("configs/v1.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = ModelStore(root / "store")
        plain = root / "plain"
        plain.mkdir()
        bare_save: list[float] = []
        store_save: list[float] = []
        bare_load: list[float] = []
        store_load: list[float] = []
        size = 0.0
        for i in range(args.repeats):
            path = plain / f"m{i}.pth"
            start = time.perf_counter()
            saved = save_model(model, path, metrics={"acc": 0.5})
            bare_save.append(time.perf_counter() - start)
            start = time.perf_counter()
            entry = store.save(model, metrics={"acc": 0.5 + i / 100})
            store_save.append(time.perf_counter() - start)
            start = time.perf_counter()
            load_model(path, verify=saved.sha256)
            bare_load.append(time.perf_counter() - start)
            start = time.perf_counter()
            store.load(entry)
            store_load.append(time.perf_counter() - start)
            size = entry.size_bytes / 2**20
        count = len(store.list())
        verify_hash = _time(store.verify)
        verify_fast = _time(lambda: store.verify(hashes=False))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.registry_path}{suffix}").unlink(missing_ok=True)
        sync = _time(lambda: ModelStore(store.root).sync())

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms"

    print(f"v1: {sum(p.numel() for p in model.parameters()):,} parameters, {size:.0f} MiB file")
    print("| operation | store | bare checkpoint call |")
    print("| --- | --- | --- |")
    print(f"| save | {ms(store_save)} (`store.save`) | {ms(bare_save)} (`save_model`) |")
    print(
        f"| load, sha256 verified | {ms(store_load)} (`store.load`) | {ms(bare_load)} "
        "(`load_model(verify=)`) |"
    )
    print(f"| verify {count} files, sha256 | {verify_hash * 1000:.0f} ms | |")
    print(f"| verify {count} files, sizes only | {verify_fast * 1000:.0f} ms | |")
    print(f"| sync, registry lost, {count} files | {sync * 1000:.0f} ms | |")


if __name__ == "__main__":
    main()
