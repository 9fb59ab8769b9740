"""Sharded checkpoints behind fsspec URLs (``s3://bucket/run/step_1000``).

A sharded checkpoint is a directory whose ``metadata.json`` lists every file with its sha256,
so ``metadata.json`` is the natural commit point on an object store. Saving writes the
checkpoint as usual into a local staging directory (shared by the ranks of one machine), then
rank 0 uploads every file and ``metadata.json`` last: a reader that finds the metadata finds
every file it lists. Loading downloads the directory to a temporary one per rank (deleted
afterwards) and loads from there, every sha256 checked as usual.

The ranks must share the local staging directory (one machine, or a shared temporary
folder): they write their shards there before rank 0 uploads them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..checkpoint._remote import remote_failure, url_filesystem
from ..errors import CheckpointError
from ._manifest import METADATA_FILE
from ._ranks import Ranks

__all__ = ["downloaded_checkpoint", "uploaded_checkpoint"]


def _filesystem(url: str) -> tuple[Any, str]:
    fs, path = url_filesystem(url)
    return fs, path.rstrip("/")


def _check_free(url: str, overwrite: bool) -> list[str]:
    fs, path = _filesystem(url)
    try:
        taken = fs.exists(f"{path}/{METADATA_FILE}")
    except Exception as exc:
        return [str(remote_failure(url, "checking the destination", exc))]
    if taken and not overwrite:
        return [
            f"{url} already holds a sharded checkpoint; pass overwrite=True to replace it, or "
            "choose another URL"
        ]
    return []


def _upload(local: Path, url: str) -> None:
    """Every file of ``local`` under ``url``, ``metadata.json`` last (the commit)."""
    fs, path = _filesystem(url)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    ordered = [p for p in files if p.name != METADATA_FILE] + [local / METADATA_FILE]
    for file in ordered:
        target = f"{path}/{file.relative_to(local).as_posix()}"
        try:
            fs.put_file(str(file), target)
        except Exception as exc:
            where = f"{url}/{file.relative_to(local).as_posix()}"
            raise remote_failure(where, "uploading", exc) from exc


@contextlib.contextmanager
def uploaded_checkpoint(url: str, *, overwrite: bool) -> Iterator[Path]:
    """A local directory (the same on every rank) to save into; uploaded to ``url`` by rank 0
    when the block ends without an error, then removed."""
    ranks = Ranks.current()
    ranks.agree(_check_free(url, overwrite) if ranks.is_main else [])
    staging = Path(ranks.on_main(lambda: tempfile.mkdtemp(prefix="vi-sharded-")))
    try:
        yield staging / "checkpoint"
        ranks.on_main(lambda: _upload(staging / "checkpoint", url))
    finally:
        ranks.barrier()
        if ranks.is_main:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def downloaded_checkpoint(url: str) -> Iterator[Path]:
    """A temporary local copy of the sharded checkpoint at ``url`` (one per rank)."""
    fs, path = _filesystem(url)
    with tempfile.TemporaryDirectory(prefix="vi-sharded-") as tmp:
        local = Path(tmp) / "checkpoint"
        try:
            if not fs.exists(f"{path}/{METADATA_FILE}"):
                raise CheckpointError(
                    f"{url} holds no sharded checkpoint (no {METADATA_FILE}: nothing was saved "
                    "there, or its save did not finish)"
                )
            fs.get(f"{path}/", f"{local}/", recursive=True)
        except CheckpointError:
            raise
        except Exception as exc:
            raise remote_failure(url, "downloading the sharded checkpoint", exc) from exc
        yield local
