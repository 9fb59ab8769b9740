"""The registry as a Markdown table, written into a README between two marker comments."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import StoreError
from ._naming import format_value
from ._registry import Entry

__all__ = ["ACCURACY_KEYS", "END_MARKER", "START_MARKER", "render_table", "replace_table"]

START_MARKER = "<!-- registry:start -->"
END_MARKER = "<!-- registry:end -->"
# The Accuracy column shows the first of these metrics that a model recorded.
ACCURACY_KEYS = ("acc", "accuracy", "val_acc", "top1", "top1_acc", "acc1")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or " "


def _accuracy(entry: Entry) -> str:
    for key in ACCURACY_KEYS:
        if key in entry.metrics:
            value = entry.metrics[key]
            return format_value(value) if value == value else "nan"
    return "—"


def render_table(entries: Iterable[Entry]) -> str:
    """``| Model Name | Version | Date | Accuracy | Notes |``, one row per saved model (training
    checkpoints are left out; no rows, only the header, for an empty store), ordered by name,
    version and save time; the best model of each name and version says so in its notes, with
    the metric that made it best."""
    models = sorted(
        (e for e in entries if e.kind == "model"), key=lambda e: (e.name, e.version, e.created)
    )
    lines = [
        "| Model Name | Version | Date | Accuracy | Notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in models:
        notes = e.notes
        if e.best_by is not None:
            value = e.metrics.get(e.best_by)
            mark = "**best**" if value is None else f"**best** ({e.best_by} {format_value(value)})"
            notes = f"{mark}; {notes}" if notes else mark
        row = (e.name, e.version, e.date, _accuracy(e), notes)
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def replace_table(text: str, table: str, *, where: str = "README") -> str:
    """``text`` with everything between the markers replaced by ``table``."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise StoreError(
            f"{where} has no {START_MARKER} ... {END_MARKER} pair; put the two markers, in that "
            "order, where the registry table belongs"
        )
    return f"{text[: start + len(START_MARKER)]}\n{table}\n{text[end:]}"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
