"""An inter-process lock around the store's multi-step operations (write file, record, link).

``fcntl.flock`` on a lock file in the store: the kernel releases it when the holder exits, even
when it is killed, so a crashed save never leaves the store locked. It is re-entrant within one
``StoreLock`` object (a save that calls a helper that also locks does not deadlock itself).
POSIX only, like the rest of the store's guarantees (atomic ``os.replace``, fsync'ed folders).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from ..errors import StoreError

__all__ = ["StoreLock"]


class StoreLock:
    """``with lock:`` holds an exclusive lock on ``path`` (created if absent)."""

    def __init__(self, path: Path, *, timeout: float = 600.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> StoreLock:
        if self._depth == 0:
            self._fd = self._acquire()
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _acquire(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot lock the store: {self.path}: {exc.strerror or exc} (changing a store "
                "needs write access to its directory; listing and verifying do not)"
            ) from exc
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                # Polling rather than a blocking flock so a stuck holder becomes an error that
                # names the lock file instead of a hang.
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StoreError(
                        f"could not lock {self.path} within {self.timeout:.0f} s: another "
                        "process is saving or pruning in this store; retry when it is done"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except BaseException:
                os.close(fd)
                raise
