"""The ``video-interpreter`` command: a thin layer over the public API.

Each command group lives in its own module and adds its sub-commands to the parser. Commands
print; the library never does. Exit codes: 0 success, 1 a check or operation failed, 2 invalid
input (spec problems, bad arguments), 3 an unexpected internal error, 130 interrupted; no error
prints a traceback (see ``_main``).
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
