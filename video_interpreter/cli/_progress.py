"""Progress of long work (hashing a store, drawing the zoo) on one line of standard error,
rewritten in place, and only when standard error is a terminal: logs and pipes stay clean."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``[i/n] what: label`` for each step of ``total``; ``close`` clears the line.

    Silent unless ``stream`` is a terminal (or ``enabled`` says otherwise).
    """

    def __init__(
        self, total: int, what: str, *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.total = total
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._width = 0

    def step(self, done: int, label: str) -> None:
        """Show that step ``done`` (1-based) of ``total``, ``label``, is under way."""
        if not self.enabled:
            return
        line = f"[{done}/{self.total}] {self.what}: {label}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def advance(self, done: int, total: int, label: str) -> None:
        """``step`` for a caller that knows the total only as it goes (a ``progress=``
        callback of the library)."""
        self.total = total
        self.step(done, label)

    def close(self) -> None:
        """Clear the progress line so that what is printed next starts clean."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0
