"""Store overhead over bare checkpoint calls, for v1 (R(2+1)D-18, 31.5 M parameters), side by side.

    python benchmarks/store.py [--repeats 3] [--s3]

Times save (store.save vs save_model), load (store.load vs load_model with verify=) and the
consistency passes (verify with and without hashing, sync rebuilding a lost registry) in a
temporary directory. Prints a Markdown table of medians. With ``--s3`` it also starts a local
S3 server (moto's, needs the ``test`` extra) and prints the same store operations on an
``s3://`` root beside the local disk.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    parser.add_argument("--s3", action="store_true", help="also time a local S3 server")
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
    if args.s3:
        remote_table(model, args.repeats)


@contextmanager
def local_s3() -> Iterator[str]:
    """moto's S3 server in a subprocess on a free port, with the AWS variables pointing at it;
    yields a fresh bucket's URL."""
    import fsspec

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        fsspec.filesystem("s3", endpoint_url=endpoint).mkdir("bench")
        yield "s3://bench"
    finally:
        server.terminate()
        server.wait(timeout=30)


def remote_table(model: torch.nn.Module, repeats: int) -> None:
    """The same store operations on the local disk and on the local S3 server."""
    timings: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, local_s3() as bucket:
        roots = {"local disk": str(Path(tmp) / "store"), "local S3 server": f"{bucket}/store"}
        for where, root in roots.items():
            store = ModelStore(root)
            rows = timings.setdefault(where, {})
            for i in range(repeats):
                start = time.perf_counter()
                entry = store.save(model, metrics={"acc": 0.5 + i / 100})
                rows.setdefault("save", []).append(time.perf_counter() - start)
                start = time.perf_counter()
                store.load(entry)
                rows.setdefault("load, sha256 verified", []).append(time.perf_counter() - start)
            for name, fn in (
                ("list", store.list),
                ("verify, sizes only", lambda s=store: s.verify(hashes=False)),
                ("sync, nothing to repair", store.sync),
            ):
                rows[name] = [_time(fn)]
    print()
    print(f"| store operation ({repeats} saves) | local disk | local S3 server (moto) |")
    print("| --- | --- | --- |")
    for name in timings["local disk"]:
        local = statistics.median(timings["local disk"][name]) * 1000
        remote = statistics.median(timings["local S3 server"][name]) * 1000
        print(f"| {name} | {local:.0f} ms | {remote:.0f} ms |")


if __name__ == "__main__":
    main()
