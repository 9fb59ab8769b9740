"""Atomic, hashed writes and streamed sha256: the file-system layer under checkpoint saving.

A checkpoint is written to a temporary file in the destination folder, flushed and fsync'ed,
renamed over the final name with ``os.replace`` and the folder fsync'ed, so a crash at any moment
leaves either the previous file or the complete new one under the final name. The sha256 is
computed from the bytes as they are written, so saving never reads the file back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import CheckpointError

__all__ = ["HashingWriter", "atomic_write", "sha256_file"]

logger = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024  # large reads: hashing runs at memory speed, syscalls stay few


class HashingWriter:
    """A binary sink that forwards writes to a file and hashes (and counts) every byte."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        written = self._raw.write(view)
        self.size += len(view)
        return written

    def flush(self) -> None:
        self._raw.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the folder entry is on disk; not every platform can
    # open a folder (Windows), where the rename is as durable as it gets.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("could not fsync folder %s", directory)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[HashingWriter]:
    """Yield a hashing sink; on success the bytes appear under ``path`` all at once.

    On any exception (or interrupt) the temporary file is removed and ``path`` keeps whatever
    it held before. ``OSError`` becomes ``CheckpointError`` naming the file.
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create folder {directory} for {path.name}: {exc}") from exc
    # A hidden name in the same folder: os.replace is atomic only within one file system.
    temporary = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = HashingWriter(raw)
            yield sink
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, OSError):
            raise CheckpointError(
                f"could not write {path} (the previous file, if any, is untouched): {exc}"
            ) from exc
        raise
    _fsync_directory(directory)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in large chunks (hex digest).

    Examples:
        >>> from pathlib import Path
        >>> from video_interpreter import sha256_file
        >>> _ = Path("hello.txt").write_text("hello")
        >>> sha256_file("hello.txt")[:16]
        '2cf24dba5fb0a30e'
    """
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as handle:
            while True:
                count = handle.readinto(view)
                if not count:
                    break
                digest.update(view[:count])
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    return digest.hexdigest()
