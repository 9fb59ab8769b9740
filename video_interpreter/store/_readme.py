"""The registry as a Markdown table, written into a README between two marker comments."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import StoreError
from ._naming import format_value
from ._registry import CompressedCopy, Entry

__all__ = ["ACCURACY_KEYS", "END_MARKER", "START_MARKER", "render_table", "replace_table"]

START_MARKER = "<!-- registry:start -->"
END_MARKER = "<!-- registry:end -->"
# The Accuracy column shows the first of these metrics that a model recorded.
ACCURACY_KEYS = ("acc", "accuracy", "val_acc", "top1", "top1_acc", "acc1")


def _cell(text: str) -> str:
    """``text`` as one table cell: on one line, and with nothing that could end the cell
    (``|``), open HTML or a comment (``<``, ``>``: a note holding the end marker would
    otherwise end the generated region), or an entity (``&``)."""
    text = " ".join(text.split())
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "&#124;")):
        text = text.replace(char, entity)
    return text.replace("\\", "&#92;") or " "


def _accuracy(entry: Entry) -> str:
    for key in ACCURACY_KEYS:
        if key in entry.metrics:
            value = entry.metrics[key]
            return format_value(value) if value == value else "nan"
    return "—"


def _size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def render_table(
    entries: Iterable[Entry], compressed: Mapping[str, CompressedCopy] | None = None
) -> str:
    """``| Model Name | Version | Date | Accuracy | Notes |``, one row per saved model (training
    checkpoints are left out; no rows, only the header, for an empty store), ordered by name,
    version and save time; the best model of each name and version says so in its notes, with
    the metric that made it best, and with its compressed copy when ``compressed`` (source
    file -> copy, ``ModelStore.compressed_copies()``) holds one: ``compressed bf16, 1.2 MB``.

    Examples:
        >>> from video_interpreter import ModelStore, build_model
        >>> from video_interpreter.store import render_table
        >>> store = ModelStore("store")
        >>> _ = store.save(build_model("tiny_r2plus1d"), metrics={"acc": 0.5}, epoch=1)
        >>> print(render_table(store.find()).splitlines()[0])
        | Model Name | Version | Date | Accuracy | Notes |
    """
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
            copy = (compressed or {}).get(e.file)
            if copy is not None:
                mark = f"{mark}; compressed {copy.scheme}, {_size(copy.size_bytes)}"
            notes = f"{mark}; {notes}" if notes else mark
        row = (e.name, e.version, e.date, _accuracy(e), notes)
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def replace_table(text: str, table: str, *, where: str = "README") -> str:
    """``text`` with everything between the markers replaced by ``table``."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER, max(start, 0))
    if start < 0 or end < 0 or end < start:
        raise StoreError(
            f"{where} has no {START_MARKER} ... {END_MARKER} pair; put the two markers, in that "
            "order, where the registry table belongs"
        )
    return f"{text[: start + len(START_MARKER)]}\n{table}\n{text[end:]}"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``, keeping the file
    mode ``path`` had (a new file gets the usual mode, 0666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
