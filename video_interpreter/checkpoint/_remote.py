"""Checkpoints behind URLs: any fsspec URL (``s3://``, ``gs://``, ``memory://``...) and MLflow's
``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``.

A remote checkpoint is read by downloading it to a temporary local file (deleted once loaded;
tensors stay memory-mapped from it) and written by saving locally and uploading in one
request, so an object store never shows a half-written checkpoint. MLflow models are read
from their registered version's artifacts (``model.safetensors`` with the spec embedded), never
through MLflow's model flavours, so nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, VideoInterpreterError

__all__ = [
    "MLFLOW_PREFIX",
    "download",
    "is_url",
    "local_copy",
    "remote_failure",
    "upload",
    "url_filesystem",
]

MLFLOW_PREFIX = "models:/"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Object stores answer slowly when they answer at all: fail within seconds, naming the URL,
# rather than after botocore's minutes of retries.
_S3_DEFAULTS: dict[str, Any] = {
    "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}}
}
_BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}


def is_url(path: object) -> bool:
    """Whether ``path`` is a URL (``scheme://...`` or ``models:/...``), not a local path."""
    if not isinstance(path, str):
        return False
    return path.startswith(MLFLOW_PREFIX) or _URL.match(path) is not None


def remote_failure(
    url: str, what: str, exc: BaseException, error: type[VideoInterpreterError] = CheckpointError
) -> VideoInterpreterError:
    """An error naming ``url`` and what was being done, with the cause's own words."""
    detail = str(exc) or type(exc).__name__
    hint = ""
    if isinstance(exc, FileNotFoundError):
        hint = " (no such object or bucket)"
    elif isinstance(exc, PermissionError):
        hint = " (access denied: check the credentials)"
    elif "credentials" in detail.lower():
        hint = (
            " (no usable credentials: set the AWS variables or a profile, or pass them in "
            "storage_options)"
        )
    elif "connect" in detail.lower() or isinstance(exc, socket.timeout | TimeoutError):
        hint = " (the storage endpoint is unreachable)"
    return error(f"{url}: {what} failed{hint}: {detail}")


def url_filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path inside it."""
    try:
        import fsspec
    except ImportError as exc:
        raise CheckpointError(
            f"{url}: URLs need fsspec: pip install 'video-interpreter[remote]'"
        ) from exc
    protocol = url.split("://", 1)[0]
    options = dict(storage_options or {})
    if protocol in ("s3", "s3a") and "config_kwargs" not in options:
        options.update(_S3_DEFAULTS)
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        package = _BACKENDS.get(protocol, f"the fsspec backend of {protocol}://")
        raise CheckpointError(
            f"{url}: {protocol}:// needs {package}: pip install 'video-interpreter[remote]'"
            + ("" if package == "s3fs" else f" {package}")
        ) from exc
    except ValueError as exc:
        raise CheckpointError(f"{url}: not a URL fsspec can open ({exc})") from exc
    return fs, str(path)


def download(url: str, target: Path, storage_options: Mapping[str, Any] | None = None) -> None:
    fs, path = url_filesystem(url, storage_options)
    try:
        fs.get_file(path, str(target))
    except Exception as exc:
        raise remote_failure(url, "downloading the checkpoint", exc) from exc


def upload(
    source: Path,
    url: str,
    *,
    exclusive: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    fs: Any = None,
) -> None:
    """Put ``source`` at ``url`` in one request. ``exclusive``: only if nothing is there
    (``FileExistsError`` otherwise); atomic where the store has conditional writes (S3's
    If-None-Match), a check then a write elsewhere. ``fs``: the file system of ``url`` when
    the caller has it open already."""
    if fs is None:
        fs, path = url_filesystem(url, storage_options)
    else:
        path = fs._strip_protocol(url)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    try:
        if exclusive and "s3" in protocols:
            fs.put_file(str(source), path, mode="create")
        elif exclusive:
            if fs.exists(path):
                raise FileExistsError(path)
            fs.put_file(str(source), path)
        else:
            fs.put_file(str(source), path)
    except FileExistsError:
        raise
    except Exception as exc:
        raise remote_failure(url, "uploading", exc) from exc


def _check_reachable(uri: str) -> None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https") or parsed.hostname is None:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=5.0):
            return
    except OSError as exc:
        raise CheckpointError(
            f"MLflow tracking server {uri} is unreachable ({exc.strerror or exc}); set "
            "MLFLOW_TRACKING_URI to a server that holds the registered model"
        ) from exc


def _mlflow_model(uri: str, directory: Path) -> tuple[Path, str | None]:
    """Download a registered model version's artifacts; the weights file and its sha256."""
    try:
        import mlflow
    except ImportError as exc:
        raise CheckpointError(
            f"{uri} needs mlflow: pip install 'video-interpreter[mlflow]'"
        ) from exc
    reference = uri[len(MLFLOW_PREFIX) :]
    name, at, alias = reference.partition("@")
    number = ""
    if not at:
        name, slash, number = reference.rpartition("/")
        if not slash or not number.isdigit():
            raise CheckpointError(
                f"{uri} names no version: use models:/NAME@ALIAS or models:/NAME/VERSION"
            )
    tracking_uri = mlflow.get_tracking_uri()
    _check_reachable(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if at
            else client.get_model_version(name, number)
        )
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=version.source, dst_path=str(directory), tracking_uri=tracking_uri
        )
    except mlflow.exceptions.MlflowException as exc:
        raise CheckpointError(f"{uri} (MLflow at {tracking_uri}): {exc.message}") from exc
    weights = Path(local) / "model.safetensors"
    if not weights.is_file():
        found = ", ".join(sorted(p.name for p in Path(local).iterdir())) or "nothing"
        raise CheckpointError(
            f"{uri} (MLflow at {tracking_uri}) holds {found}, not model.safetensors: it was "
            "not recorded by a ModelStore tracker"
        )
    return weights, version.tags.get("video_interpreter.weights_sha256")


@contextlib.contextmanager
def local_copy(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> Iterator[tuple[Path, str | None]]:
    """A temporary local copy of the checkpoint at ``url`` and the sha256 its source records
    (None when it records none); removed on exit."""
    with tempfile.TemporaryDirectory(prefix="vi-remote-") as tmp:
        directory = Path(tmp)
        if url.startswith(MLFLOW_PREFIX):
            yield _mlflow_model(url, directory)
            return
        name = os.path.basename(url.rstrip("/")) or "checkpoint"
        target = directory / name
        download(url, target, storage_options)
        yield target, None
