"""Shared fixtures: tiny specs written to temporary files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def tiny_spec(
    *,
    name: str = "tiny",
    version: str = "v1",
    out_channels: int = 8,
    bias: bool = False,
    num_classes: int = 5,
    dropout: float = 0.0,
) -> dict[str, Any]:
    """A fresh tiny spec: Conv3d + BatchNorm3d + ReLU, pooled, one classification head, on
    3x4x16x16 clips."""
    head: dict[str, Any] = {"type": "ClassificationHead", "num_classes": num_classes}
    if dropout:
        head["dropout"] = dropout
    return {
        "spec_version": 1,
        "name": name,
        "version": version,
        "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
        "backbone": [
            {
                "type": "Conv3d",
                "out_channels": out_channels,
                "kernel_size": 3,
                "padding": 1,
                "bias": bias,
            },
            {"type": "BatchNorm3d"},
            {"type": "ReLU"},
        ],
        "neck": {"type": "GlobalAvgPool3d"},
        "heads": {"action": head},
    }


TINY_SPEC: dict[str, Any] = tiny_spec()


def spec_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested spec document (mappings and lists), the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += spec_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += spec_paths(item, (*prefix, index))
    return found


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented spec text to ``tmp_path/name`` and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server (moto's) in its own process on a free port for the whole session
    (its own process: a server thread here would compete with the tests for the GIL); the AWS
    variables point every client, subprocesses included, at it (no internet, fake keys)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto's S3 server did not start on port {port}") from None
            time.sleep(0.1)
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the local S3 server; returns ``s3://NAME``."""
    import fsspec

    name = f"test-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True).mkdir(name)
    return f"s3://{name}"
