"""``ModelStore``: a directory of checkpoints with a naming convention, a best model, retention
and a registry; the last stage of the flow (it saves and loads through ``checkpoint``).

Every operation that changes the store runs under one inter-process file lock and in this order:
write the file atomically (``save_model``, the ranking rule embedded), record it in one SQLite
transaction, then copy it to ``_best``. A process killed between two steps leaves complete files
and a registry that ``verify`` explains and ``sync`` repairs; it never leaves a torn file or a
half-written row. The registry is an index of the files: when it is missing or damaged, every
operation says so and ``sync`` rebuilds it from them. Reading (``list``, ``verify``...) never
writes, so a read-only store can be listed and verified.
Because every writer holds the lock while it writes, whatever half-written file a reader finds
under the lock belongs to a process that died, and ``sync`` may delete it.
"""

from __future__ import annotations

import builtins
import difflib
import fcntl
import logging
import math
import os
import shutil
import sqlite3
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..checkpoint import (
    Checkpoint,
    CheckpointMetadata,
    load_model,
    read_metadata,
    save_model,
    sha256_file,
)
from ..checkpoint import resume as resume_checkpoint
from ..checkpoint._remote import is_url
from ..compress import SCHEMES, get_scheme, quantize, save_quantized
from ..compress._schemes import require_torchao
from ..errors import CheckpointError, StoreError, VideoInterpreterError
from ..model import VideoInterpreter
from ..sharing import write_model_card
from ..spec import ArchitectureSpec
from ..tracking import TrackedSave, Tracker, TrackerWarning, make_bundle
from ._lock import StoreLock
from ._naming import (
    best_name,
    checkpoint_name,
    model_name,
    parse_name,
    sanitize_metric,
    sanitize_name,
    sanitize_version,
    with_duplicate,
)
from ._readme import END_MARKER, START_MARKER, render_table, replace_table, write_atomically
from ._registry import (
    CARDS_DIR,
    COMPRESSED_DIR,
    DEFAULT_ROOT,
    REGISTRY_FILE,
    BestRecord,
    CompressedCopy,
    Entry,
    EntryKind,
    Mode,
    Registry,
    RegistryRow,
    UnusableRegistryError,
    existing_root,
    find_entries,
)

__all__ = [
    "CARDS_DIR",
    "COMPRESSED_DIR",
    "COMPRESSIONS",
    "DAMAGED_REGISTRY",
    "DEFAULT_ROOT",
    "LOCK_FILE",
    "REGISTRY_FILE",
    "EntryRef",
    "ModelStore",
    "PruneResult",
    "StoreProblem",
    "SyncReport",
]

logger = logging.getLogger(__name__)

LOCK_FILE = ".store.lock"
_SIDE_FILES = (f"{REGISTRY_FILE}-wal", f"{REGISTRY_FILE}-shm", f"{REGISTRY_FILE}-journal")
DAMAGED_REGISTRY = f"{REGISTRY_FILE}.damaged"  # where sync moves a registry it cannot read
_OWN_FILES = frozenset({REGISTRY_FILE, DAMAGED_REGISTRY, *_SIDE_FILES})
_TEMP_MARK = ".tmp"  # a file name containing this is a write that never finished
_MODES = ("max", "min")
# What ``save(..., compressed=...)`` makes: a storage precision, or a torchao scheme.
_STORAGE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
COMPRESSIONS = (*_STORAGE_DTYPES, *SCHEMES)

EntryRef = Entry | str | os.PathLike[str]
ProblemKind = Literal[
    "missing", "changed", "unreadable", "untracked", "unknown", "leftover", "best", "tracker"
]


@dataclass(frozen=True)
class StoreProblem:
    """One way the directory and the registry disagree, and what to do about it."""

    kind: ProblemKind
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "file": self.file, "message": self.message}


@dataclass(frozen=True)
class PruneResult:
    """What ``prune`` removed (or, with ``dry_run``, would remove) and what it kept."""

    removed: tuple[Entry, ...]
    kept: tuple[Entry, ...]
    dry_run: bool


@dataclass
class SyncReport:
    """What ``sync`` changed; ``problems`` are what it found and deliberately left alone."""

    adopted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)
    deleted_leftovers: list[str] = field(default_factory=list)
    problems: list[StoreProblem] = field(default_factory=list)
    rebuilt: str | None = None  # why the registry was rebuilt from the files, when it was
    tracked: list[str] = field(default_factory=list)  # "file -> tracker" records replayed

    def to_dict(self) -> dict[str, Any]:
        return {
            "rebuilt": self.rebuilt,
            "adopted": self.adopted,
            "removed": self.removed,
            "updated": self.updated,
            "restored": self.restored,
            "relinked": self.relinked,
            "deleted_leftovers": self.deleted_leftovers,
            "tracked": self.tracked,
            "problems": [p.to_dict() for p in self.problems],
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _metrics(metrics: Mapping[str, object] | None) -> dict[str, float]:
    """The caller's metrics as finite floats: the registry ranks, tables and prints them as
    JSON, and NaN or infinity can do none of that."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or not key:
            raise StoreError(f"metric names must be non-empty strings, got {key!r}")
        try:
            if isinstance(value, bool):
                raise TypeError("a bool is not a metric")
            number = float(value)  # type: ignore[arg-type]  # numbers and 0-d tensors
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(
                f"metric {key!r} is {_short(value)}; metrics must be numbers ({exc})"
            ) from exc
        if not math.isfinite(number):
            raise StoreError(
                f"metric {key!r} is {number}; the store records only finite metrics (a "
                "non-finite value cannot be ranked, tabled or written as JSON): leave it out, "
                "or record it elsewhere"
            )
        out[key] = number
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _numbers(metrics: Mapping[str, object]) -> dict[str, float]:
    """The finite numeric metrics a file's metadata holds (others cannot rank or be tabled)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                continue
            if math.isfinite(number):
                out[str(key)] = number
    return out


def _fsync_dir(directory: Path) -> None:
    # A rename or unlink is durable only once the directory itself is flushed.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_token(a: str, b: str) -> bool:
    try:
        return sanitize_metric(a) == sanitize_metric(b)
    except StoreError:
        return False


def _spec_of(model: nn.Module) -> ArchitectureSpec:
    """The spec of a ``VideoInterpreter``, also through a DDP (``.module``) or torch.compile
    (``._orig_mod``) wrapper."""
    for candidate in (model, getattr(model, "module", None), getattr(model, "_orig_mod", None)):
        spec = getattr(candidate, "spec", None)
        if isinstance(spec, ArchitectureSpec):
            return spec
    raise StoreError(
        f"cannot store a {type(model).__name__}: the store names files by the model's spec; "
        "build the model with build_model (a VideoInterpreter)"
    )


def _raw_metric(token: str, metrics: Mapping[str, float]) -> str:
    """The metric a file name's token stands for (``val-loss`` is the ``val_loss`` recorded)."""
    matches = [key for key in metrics if sanitize_metric(key) == token]
    return matches[0] if len(matches) == 1 else token


def _ranked_metrics(
    metrics: Mapping[str, object], monitor: str, mode: str
) -> tuple[dict[str, float], float]:
    """The metrics of a saved model and the value of the one that names and ranks it."""
    if mode not in _MODES:
        raise StoreError(f"mode must be 'max' or 'min', got {mode!r}")
    values = _metrics(metrics)
    if monitor not in values:
        available = ", ".join(sorted(values)) or "none"
        raise StoreError(
            f"monitored metric {monitor!r} is not among the metrics given ({available}); "
            f"pass it in metrics= or monitor one of those"
        )
    clash = sorted(k for k in values if k != monitor and _same_token(k, monitor))
    if clash:
        raise StoreError(
            f"metrics {monitor!r} and {clash[0]!r} would both be written "
            f"{sanitize_metric(monitor)!r} in the file name; rename one"
        )
    value = values[monitor]
    if not math.isfinite(value):
        raise StoreError(
            f"metric {monitor!r} is {value}; a model cannot be named or ranked by a "
            "non-finite value (save_checkpoint keeps the weights without ranking them)"
        )
    return values, value


def _check_compression(scheme: object, model: nn.Module) -> None:
    """Refuse, before anything is written, a compressed copy the store cannot make."""
    if scheme is None or scheme in _STORAGE_DTYPES:
        return
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise StoreError(
            f"compressed={scheme!r:.60} is not a compression the store makes; valid: "
            f"{', '.join(map(repr, COMPRESSIONS))} (bf16/fp16: weights stored in half "
            "precision; int8_*: torchao quantisation of the Linear layers), or None"
        )
    require_torchao(f"ModelStore.save(..., compressed={scheme!r})")
    chosen = get_scheme(scheme)
    if not any(chosen.covered(module) for module in _unwrapped(model).modules()):
        raise StoreError(
            f"compressed={scheme!r} quantises {', '.join(c.__name__ for c in chosen.covers)} "
            f"layers, and {_spec_of(model).name} has none; keep a bf16 copy instead "
            "(compressed='bf16')"
        )


def _write_compressed(model: nn.Module, entry: Entry, scheme: str, path: Path) -> None:
    """Write ``model`` (saved as ``entry``) compressed by ``scheme`` to ``path``, with the
    entry's training state and metrics; the checkpoint records its precision or its
    quantisation, so it describes itself."""
    notes = f"{scheme} copy of {entry.file}" + (f"; {entry.notes}" if entry.notes else "")
    fields: dict[str, Any] = {
        "epoch": entry.epoch,
        "step": entry.step,
        "loss": entry.loss,
        "metrics": dict(entry.metrics),
        "notes": notes,
    }
    if scheme in _STORAGE_DTYPES:
        save_model(model, path, dtype=_STORAGE_DTYPES[scheme], **fields)
    else:
        save_quantized(quantize(model, scheme), path, **fields)


class ModelStore:
    """A directory of saved models and training checkpoints, indexed by a SQLite registry.

    ``ModelStore(root)`` creates ``root`` and its registry unless ``create=False``, when a
    missing store is an error (what read-only commands want). See the package docstring for the
    naming convention, best-model and retention rules. ``trackers`` (``MLflowTracker``,
    ``WandbTracker``) mirror every saved model after it is saved here; one that fails is
    reported (``TrackerWarning``, ``tracker_errors``) and ``sync(trackers=True)`` replays it.
    """

    def __new__(cls, root: str | os.PathLike[str] = DEFAULT_ROOT, **options: Any) -> ModelStore:
        # A URL root (s3://bucket/prefix, any fsspec URL) is a store on an object store: same
        # interface, a commit protocol without rename or locks (see ``_remote``).
        if cls is ModelStore and is_url(root) and not str(root).startswith("file://"):
            from ._remote import RemoteModelStore

            return super().__new__(RemoteModelStore)
        return super().__new__(cls)

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        create: bool = True,
        lock_timeout: float = 600.0,
        trackers: Sequence[Tracker] = (),
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if storage_options:
            raise StoreError(
                f"storage_options apply to a store behind a URL (s3://...); {root} is a directory"
            )
        self.trackers: tuple[Tracker, ...] = tuple(trackers)
        self.tracker_errors: builtins.list[str] = []
        if isinstance(root, str) and root.startswith("file://"):  # a local directory
            root = root.removeprefix("file://")
        self.root = Path(root)
        if not self.root.is_dir():
            if self.root.exists() or not create:
                existing_root(self.root)  # raises, saying what to pass
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the model store {self.root}: {exc.strerror or exc}"
                ) from exc
        self.registry_path = self.root / REGISTRY_FILE
        self.registry = Registry(self.registry_path, self.root)
        self._lock = StoreLock(self.root / LOCK_FILE, timeout=lock_timeout)
        # A new store gets its registry now. A store whose registry is gone keeps its files
        # and gets none: an empty registry would forget them and their best model, so every
        # operation but ``sync`` (which rebuilds it from the files) says so instead.
        if create and not self.registry.exists() and not self._store_files():
            with self._lock:
                if not self.registry.exists():
                    self.registry.create()

    def __repr__(self) -> str:
        return f"ModelStore({self.location!r})"

    @property
    def location(self) -> str:
        """Where the store is, as users name it: its directory, or its URL."""
        return str(self.root)

    # -- saving -------------------------------------------------------------------------------
    def save(
        self,
        model: nn.Module,
        *,
        metrics: Mapping[str, object],
        monitor: str = "acc",
        mode: Mode = "max",
        epoch: int | None = None,
        step: int | None = None,
        loss: float | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        notes: str = "",
        on_conflict: Literal["suffix", "error"] = "suffix",
        card: bool = False,
        compressed: str | None = None,
    ) -> Entry:
        """Save ``model`` as ``{name}_{version}_{monitor}_{value}.pth`` and record it.

        ``metrics[monitor]`` names the file and ranks the model: it becomes the best of its
        name and version when it beats the current best strictly (``mode="max"``: higher is
        better; ``"min"``: lower), and ``{name}_{version}_best.pth`` then points at it. A name
        already taken gets ``-2``, ``-3``... (``on_conflict="error"`` refuses instead). With
        ``card``, the model card (and its diagram) is written to ``cards/{file stem}.md``.

        With ``compressed`` (one of ``COMPRESSIONS``: ``"bf16"``, ``"fp16"``,
        ``"int8_weight_only"``, ``"int8_dynamic"``), a model that becomes the best also gets a
        compressed copy in ``compressed/{file stem}.{scheme}.safetensors``, which replaces the
        copy of the best it displaced; a model that does not become the best leaves the copy
        as it is. An unknown scheme, or int8 without torchao, is refused before anything is
        written.

        Examples:
            >>> from video_interpreter import ModelStore, build_model
            >>> store = ModelStore("store")
            >>> entry = store.save(build_model("tiny_r2plus1d"), metrics={"acc": 0.5},
            ...                    compressed="bf16")
            >>> [c.file for c in store.compressed_copies()]
            ['tiny_r2plus1d_v1_acc_0.5.bf16.safetensors']
        """
        values, value = _ranked_metrics(metrics, monitor, mode)
        spec = _spec_of(model)
        _check_compression(compressed, model)
        entry = self._write_ranked(
            model,
            spec,
            model_name(spec.name, spec.version, monitor, value),
            (monitor, mode),
            compressed,
            on_conflict=on_conflict,
            optimizer=optimizer,
            scheduler=scheduler,
            epoch=epoch,
            step=step,
            loss=loss,
            metrics=values,
            notes=notes,
        )
        if card:
            self.write_card(entry)
        self._mirror(model, entry)
        return entry

    def _write_ranked(
        self,
        model: nn.Module,
        spec: ArchitectureSpec,
        base: str,
        rule: tuple[str, Mode],
        compressed: str | None,
        **write: Any,
    ) -> Entry:
        """Write a ranked model under the store's lock, once the monitored rule is checked
        against the recorded one; then its compressed copy if it became the best."""
        monitor, mode = rule
        with self._lock:
            with self.registry.connect() as conn:
                self._check_tokens(conn, spec.name, spec.version)
                record = self.registry.best_record(conn, spec.name, spec.version)
            if record is not None and (record.metric != monitor or record.mode != mode):
                raise StoreError(
                    f"the best {spec.name} {spec.version} is chosen by {record.metric} "
                    f"({record.mode}), but this save monitors {monitor} ({mode}); monitor "
                    f"{record.metric!r} with mode={record.mode!r} (other metrics can still be "
                    f"recorded in metrics=), or change the rule with store.set_monitor(...)"
                )
            entry = self._write(model, base, kind="model", monitor=rule, **write)
            if compressed is not None and entry.is_best:
                self._keep_compressed(model, entry, compressed)
        return entry

    # -- compressed copies of best models -----------------------------------------------------
    def compressed_copies(self) -> builtins.list[CompressedCopy]:
        """The compressed copies in ``compressed/`` (``save(..., compressed=...)`` writes them);
        ``copy.location`` is where to load one from (``load_model`` for bf16/fp16,
        ``video_interpreter.compress.load_quantized`` for int8).

        Examples:
            >>> store.compressed_copies()[0].scheme  # doctest: +SKIP
            'bf16'
        """
        folder = self.root / COMPRESSED_DIR
        if not folder.is_dir():
            return []
        found = (
            CompressedCopy.parse(p.name, p.stat().st_size, str(p))
            for p in sorted(folder.iterdir())
            if p.is_file() and _TEMP_MARK not in p.name
        )
        return [copy for copy in found if copy is not None]

    def _keep_compressed(self, model: nn.Module, entry: Entry, scheme: str) -> None:
        """Write the compressed copy of ``entry``, the new best, then remove the copies of its
        name and version it replaces (a crash between the two leaves an old copy, which
        ``verify`` reports)."""
        name = CompressedCopy.name_for(entry.file, scheme)
        try:
            self._put_compressed(model, entry, scheme, name)
        except (VideoInterpreterError, OSError) as exc:
            raise StoreError(
                f"{entry.file} is saved and is the best {entry.name} {entry.version}, but its "
                f"{scheme} copy could not be written to {COMPRESSED_DIR}/{name}: {exc}"
            ) from exc
        group = parse_name(entry.file)
        for copy in self.compressed_copies():
            source = parse_name(copy.source)
            same_model = (
                source is not None
                and group is not None
                and (source.name, source.version) == (group.name, group.version)
            )
            if copy.file != name and same_model:
                self._remove_compressed(copy)
        logger.info("kept the %s copy of %s as %s/%s", scheme, entry.file, COMPRESSED_DIR, name)

    def _put_compressed(self, model: nn.Module, entry: Entry, scheme: str, name: str) -> None:
        folder = self.root / COMPRESSED_DIR
        folder.mkdir(exist_ok=True)
        _write_compressed(model, entry, scheme, folder / name)

    def _remove_compressed(self, copy: CompressedCopy) -> None:
        (self.root / COMPRESSED_DIR / copy.file).unlink(missing_ok=True)

    def _stale_compressed(self, bests: Iterable[Entry]) -> builtins.list[StoreProblem]:
        """Compressed copies of models that are not (or no longer) the best."""
        best_files = {e.file for e in bests}
        return [
            StoreProblem(
                "best",
                f"{COMPRESSED_DIR}/{copy.file}",
                f"a {copy.scheme} copy of {copy.source}, which is not the best model; save the "
                "best again with compressed=... to replace it, or delete it",
            )
            for copy in self.compressed_copies()
            if copy.source not in best_files
        ]

    def card_path(self, ref: EntryRef) -> Path:
        """Where the model card of a stored file is written: ``cards/{file stem}.md``."""
        return self.root / CARDS_DIR / f"{Path(self.get(ref).file).stem}.md"

    def write_card(self, ref: EntryRef) -> Path:
        """Write the model card of a stored file (its metrics, training state and notes
        included) to ``card_path(ref)``, its diagram beside it."""
        entry = self.get(ref)
        out = self.card_path(entry)
        try:
            out.parent.mkdir(exist_ok=True)
            return write_model_card(entry.path, out)
        except (VideoInterpreterError, OSError) as exc:
            raise StoreError(
                f"{entry.file} is saved, but its card could not be written to {out}: {exc}"
            ) from exc

    def save_checkpoint(
        self,
        model: nn.Module,
        *,
        epoch: int,
        step: int | None = None,
        loss: float | None = None,
        metrics: Mapping[str, object] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        notes: str = "",
        on_conflict: Literal["suffix", "error"] = "suffix",
    ) -> Entry:
        """Save a training checkpoint as ``{name}_{version}_epoch_{epoch:04d}.pth`` (weights,
        optimizer and scheduler state, epoch, step, loss); it never becomes the best model."""
        spec = _spec_of(model)
        base = checkpoint_name(spec.name, spec.version, epoch)
        with self._lock:
            with self.registry.connect() as conn:
                self._check_tokens(conn, spec.name, spec.version)
            return self._write(
                model,
                base,
                kind="checkpoint",
                on_conflict=on_conflict,
                monitor=None,
                optimizer=optimizer,
                scheduler=scheduler,
                epoch=epoch,
                step=step,
                loss=loss,
                metrics=_metrics(metrics),
                notes=notes,
            )

    def _check_tokens(self, conn: sqlite3.Connection, name: str, version: str) -> None:
        """Two different names that sanitise alike would share files (``v_1`` and ``v-1``)."""
        tokens = (sanitize_name(name), sanitize_version(version))
        for row in conn.execute("SELECT DISTINCT name, version FROM entries"):
            other_name, other_version = row["name"], row["version"]
            if (other_name, other_version) == (name, version):
                continue
            if (sanitize_name(other_name), sanitize_version(other_version)) == tokens:
                raise StoreError(
                    f"{name} {version} and {other_name} {other_version} (already in "
                    f"{self.root}) would share the file names {tokens[0]}_{tokens[1]}_*; "
                    "rename one"
                )

    def _free_name(self, base: str, on_conflict: str, taken: set[str]) -> str:
        duplicate = 1
        while True:
            candidate = with_duplicate(base, duplicate)
            if candidate not in taken and not (self.root / candidate).exists():
                return candidate
            if on_conflict == "error":
                raise StoreError(
                    f"{self.root / candidate} already exists; save with on_conflict='suffix' "
                    "to keep both (the new file gets -2, -3...), or remove the old one first"
                )
            duplicate += 1

    def _write(
        self,
        model: nn.Module,
        base: str,
        *,
        kind: EntryKind,
        on_conflict: str,
        monitor: tuple[str, Mode] | None,
        metrics: dict[str, float],
        **fields: Any,
    ) -> Entry:
        """Under the lock: file, then row (and best pointer) in one transaction, then copy."""
        with self.registry.connect() as conn:
            taken = self.registry.files(conn)
        file = self._free_name(base, on_conflict, taken)
        path = self.root / file
        saved = save_model(model, path, metrics=metrics, monitor=monitor, **fields)
        row = self._row(file, read_metadata(path), saved.sha256, saved.size_bytes)
        spec = _spec_of(model)
        new_best: BestRecord | None = None
        with self.registry.transaction() as conn:
            self.registry.insert(conn, row)
            if monitor is not None and row.value is not None:
                current = self.registry.best_record(conn, spec.name, spec.version)
                best_value = self._value_of(conn, current.file) if current else None
                if current is None or best_value is None or current.better(row.value, best_value):
                    new_best = BestRecord(spec.name, spec.version, monitor[0], monitor[1], file)
                    self.registry.set_best(conn, new_best)
        if new_best is not None:
            self._link_best(new_best)
        else:
            self._repair_best_link(spec.name, spec.version)
        _fsync_dir(self.root)
        logger.info("saved %s (sha256 %s)", path, saved.sha256[:12])
        return self.get(file)

    @staticmethod
    def _value_of(conn: sqlite3.Connection, file: str) -> float | None:
        found = conn.execute("SELECT value FROM entries WHERE file = ?", (file,)).fetchone()
        return None if found is None or found["value"] is None else float(found["value"])

    def _row(self, file: str, meta: CheckpointMetadata, sha256: str, size: int) -> RegistryRow:
        """The registry row of a store file, from its name and embedded metadata only (so a row
        written at save time and one rebuilt by ``sync`` are the same)."""
        parsed = parse_name(file)
        if parsed is None or parsed.kind == "best":
            raise StoreError(f"{file} does not follow the store's naming convention")
        if meta.name is None or meta.version is None or meta.fingerprint is None:
            raise StoreError(
                f"{file} is a {meta.kind.replace('_', ' ')} checkpoint without an embedded "
                "spec; the store holds only files saved with ModelStore.save or save_model"
            )
        metrics = _numbers(meta.metrics)
        metric: str | None = None
        value: float | None = None
        if parsed.kind == "model":
            metric = _raw_metric(parsed.metric or "", metrics)
            value = metrics.get(metric, parsed.value)
        return RegistryRow(
            file=file,
            kind=parsed.kind,
            name=meta.name,
            version=meta.version,
            metric=metric,
            value=value,
            metrics=metrics,
            epoch=meta.epoch if meta.epoch is not None else parsed.epoch,
            step=meta.step,
            loss=None if meta.loss is None else float(meta.loss),
            created=meta.created or _now(),
            sha256=sha256,
            size_bytes=size,
            fingerprint=meta.fingerprint,
            notes=meta.notes or "",
        )

    # -- the best model -----------------------------------------------------------------------
    def best_path(self, name: str, version: str) -> Path:
        """Where the best ``name``/``version`` is kept: ``{name}_{version}_best.pth``."""
        return self.root / best_name(name, version)

    def best_location(self, name: str, version: str) -> str:
        """Where the copy of the best ``name``/``version`` is kept, as users name it (a path
        here, a URL in a remote store).

        >>> store.best_location("video_interpreter", "v1")  # doctest: +SKIP
        'models/saved_models/video_interpreter_v1_best.pth'
        """
        return str(self.best_path(name, version))

    def _link_best(self, record: BestRecord) -> None:
        """Make ``{name}_{version}_best.pth`` a copy of ``record.file``."""
        target = self.best_path(record.name, record.version)
        try:
            _copy_file(self.root / record.file, target)
        except OSError as exc:
            raise StoreError(
                f"cannot copy the best model {record.file} to {target.name}: {exc}; the "
                "registry records it as the best, and `sync` makes the copy once it can"
            ) from exc

    def _repair_best_link(self, name: str, version: str) -> None:
        """Re-copy a best file left stale by a save killed after its commit. The copy carries
        its source's size and modification time, so checking it costs no read."""
        with self.registry.connect() as conn:
            record = self.registry.best_record(conn, name, version)
        if record is None or not (self.root / record.file).exists():
            return
        if not _same_copy(self.best_path(name, version), self.root / record.file):
            self._link_best(record)

    def best(self, name: str | None = None, version: str | None = None) -> Entry:
        """The best saved model of ``name``/``version`` (either may be omitted when the store
        holds one model name/version)."""
        candidates = [e for e in self.bests() if _matches(e, name, version)]
        if len(candidates) == 1:
            return candidates[0]
        known = sorted({(e.name, e.version) for e in self.list()})
        listing = ", ".join(f"{n} {v}" for n, v in known) or "none"
        if not candidates:
            raise StoreError(
                f"no best model for {name or '*'} {version or '*'} in {self.root} (models "
                f"saved: {listing}); save one with store.save(model, metrics=...)"
            )
        raise StoreError(f"{self.root} holds several models ({listing}); pass name= and version=")

    def bests(self) -> builtins.list[Entry]:
        """The best saved model of every name and version."""
        with self.registry.connect() as conn:
            return self.registry.entries(conn, "WHERE file IN (SELECT file FROM best)")

    def set_monitor(self, name: str, version: str, *, metric: str, mode: Mode) -> Entry | None:
        """Change what "best" means for ``name``/``version`` and re-choose it among the saved
        models that recorded ``metric``; returns the new best (None if none recorded it)."""
        if mode not in _MODES:
            raise StoreError(f"mode must be 'max' or 'min', got {mode!r}")
        with self._lock:
            with self.registry.transaction() as conn:
                chosen = self._choose_best(conn, name, version, metric, mode)
                conn.execute("DELETE FROM best WHERE name = ? AND version = ?", (name, version))
                if chosen is not None:
                    self.registry.set_best(conn, chosen)
            if chosen is None:
                self.best_path(name, version).unlink(missing_ok=True)
                return None
            self._link_best(chosen)
        self._move_tracked_best(name, version, chosen.file)
        return self.get(chosen.file)

    def _choose_best(
        self,
        conn: sqlite3.Connection,
        name: str,
        version: str,
        metric: str,
        mode: Mode,
        *,
        prefer: str | None = None,
    ) -> BestRecord | None:
        """The best by ``metric``/``mode`` among recorded models. A tie goes to ``prefer`` (the
        file the best link holds now) if it is among the tied, else to the first saved."""
        candidates = [
            e
            for e in self.registry.entries(
                conn,
                "WHERE name = ? AND version = ? AND kind = 'model'",
                (name, version),
                by_save_time=True,
            )
            if metric in e.metrics and math.isfinite(e.metrics[metric])
        ]
        chosen: Entry | None = None
        rule = BestRecord(name, version, metric, mode, "")
        for entry in candidates:
            if chosen is None or rule.better(entry.metrics[metric], chosen.metrics[metric]):
                chosen = entry
        if chosen is None:
            return None
        for entry in candidates:
            if entry.file == prefer and entry.metrics[metric] == chosen.metrics[metric]:
                chosen = entry
        return BestRecord(name, version, metric, mode, chosen.file)

    # -- reading ------------------------------------------------------------------------------
    def list(self, *, kind: EntryKind | None = None) -> builtins.list[Entry]:
        """Every recorded file, ordered by model, kind, epoch and save time."""
        return self.find(kind=kind)

    def find(
        self,
        name: str | None = None,
        version: str | None = None,
        *,
        kind: EntryKind | None = None,
        metric: str | None = None,
        pinned: bool | None = None,
    ) -> builtins.list[Entry]:
        """Recorded files matching every criterion given."""
        return find_entries(self.registry, name, version, kind=kind, metric=metric, pinned=pinned)

    def get(self, ref: EntryRef) -> Entry:
        """The entry of a file name or path in this store (a ``_best.pth`` name gives the best
        model it points at)."""
        if isinstance(ref, Entry):
            file = ref.file
        else:
            given = Path(ref)
            file = given.name
            if given.parent != Path() and given.resolve().parent != self.root.resolve():
                raise StoreError(
                    f"{given} is not in the store {self.root}; pass a file name of this store "
                    "or a path inside it (load_model opens files outside any store)"
                )
        with self.registry.connect() as conn:
            found = self.registry.entries(conn, "WHERE file = ?", (file,))
            if found:
                return found[0]
            parsed = parse_name(file)
            if parsed is not None and parsed.kind == "best":
                for record in self.registry.best_records(conn):
                    if best_name(record.name, record.version) == file:
                        return self.registry.entries(conn, "WHERE file = ?", (record.file,))[0]
            files = sorted(self.registry.files(conn))
        close = difflib.get_close_matches(file, files, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise StoreError(
            f"{file} is not recorded in {self.root} ({len(files)} files recorded){hint} "
            "(`video-interpreter models list` shows them; `sync` records files copied in)"
        )

    def load(
        self,
        ref: EntryRef,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        strict: bool = True,
    ) -> VideoInterpreter:
        """Load a recorded model, refusing a file whose sha256 is not the one recorded."""
        entry = self.get(ref)
        if not entry.path.is_file():
            raise StoreError(
                f"{entry.path} is recorded but missing; `video-interpreter models verify` lists "
                "what else is, `sync` drops the records of deleted files"
            )
        try:
            return load_model(
                entry.path, device=device, dtype=dtype, strict=strict, verify=entry.sha256
            )
        except CheckpointError as exc:
            if entry.sha256 in str(exc):
                raise
            # The checkpoint stage's message may not say what the store expected.
            raise StoreError(
                f"{entry.path}: {exc} (the registry recorded sha256 {entry.sha256})"
            ) from exc

    def latest_checkpoint(self, name: str, version: str) -> Entry | None:
        """The training checkpoint of ``name``/``version`` with the highest epoch (the last
        saved among equal epochs), or None when the store holds none."""
        found = self.find(name, version, kind="checkpoint")
        return found[-1] if found else None

    def resume(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        *,
        restore_rng: bool = True,
    ) -> Checkpoint | None:
        """Continue training from the latest training checkpoint of ``model``'s name and
        version: its weights, the optimizer's and scheduler's states and the RNG states are
        restored (``checkpoint.resume``), after its sha256 is checked against the registry.
        Returns the checkpoint (``.epoch``, ``.step``, ``.loss``...), or None when the store
        holds no checkpoint of this model, and nothing is changed."""
        spec = _spec_of(model)
        entry = self.latest_checkpoint(spec.name, spec.version)
        if entry is None:
            return None
        if not entry.path.is_file():
            raise StoreError(
                f"{entry.path} is the latest checkpoint of {spec.name} {spec.version} but is "
                "missing; `video-interpreter models sync` drops the records of deleted files"
            )
        logger.info("resuming %s %s from %s", spec.name, spec.version, entry.file)
        return resume_checkpoint(
            model,
            entry.path,
            optimizer,
            scheduler,
            verify=entry.sha256,
            restore_rng=restore_rng,
        )

    # -- pins and retention -------------------------------------------------------------------
    def pin(self, ref: EntryRef) -> Entry:
        """Keep ``ref`` through every ``prune``."""
        return self._set_pinned(ref, True)

    def unpin(self, ref: EntryRef) -> Entry:
        return self._set_pinned(ref, False)

    def _set_pinned(self, ref: EntryRef, pinned: bool) -> Entry:
        entry = self.get(ref)
        with self._lock, self.registry.transaction() as conn:
            conn.execute("UPDATE entries SET pinned = ? WHERE file = ?", (int(pinned), entry.file))
        return self.get(entry.file)

    def prune(
        self,
        keep_last: int,
        *,
        name: str | None = None,
        version: str | None = None,
        kind: EntryKind | None = None,
        dry_run: bool = False,
    ) -> PruneResult:
        """Remove all but the last ``keep_last`` files of each model name, version and kind.

        "Last" is by epoch (numerically; files without an epoch come first), then by save
        time. The best model and pinned files are always kept and do not count toward
        ``keep_last``. Saved models and training checkpoints are counted separately; ``kind``
        restricts pruning to one of them. With ``dry_run`` nothing is removed.
        """
        with self._lock:
            removed, kept = self._prune_plan(keep_last, name, version, kind)
            if not dry_run and removed:
                # Rows first: a crash after this leaves unrecorded files, which sync adopts
                # again, never records of files that are gone.
                with self.registry.transaction() as conn:
                    conn.executemany(
                        "DELETE FROM entries WHERE file = ?", [(e.file,) for e in removed]
                    )
                for entry in removed:
                    entry.path.unlink(missing_ok=True)
                _fsync_dir(self.root)
                logger.info("pruned %d files from %s", len(removed), self.root)
        return PruneResult(tuple(removed), tuple(kept), dry_run)

    def _prune_plan(
        self, keep_last: int, name: str | None, version: str | None, kind: EntryKind | None
    ) -> tuple[builtins.list[Entry], builtins.list[Entry]]:
        """What ``prune`` removes and keeps (see ``prune``)."""
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise StoreError(f"keep_last must be an integer >= 0, got {keep_last!r}")
        groups: dict[tuple[str, str, str], builtins.list[Entry]] = {}
        for entry in self.find(name, version, kind=kind):
            groups.setdefault((entry.name, entry.version, entry.kind), []).append(entry)
        removed: builtins.list[Entry] = []
        kept: builtins.list[Entry] = []
        for entries in groups.values():  # already in retention order
            cut = len(entries) - keep_last
            for index, entry in enumerate(entries):
                if index >= cut or entry.is_best or entry.pinned:
                    kept.append(entry)
                else:
                    removed.append(entry)
        return removed, kept

    # -- consistency --------------------------------------------------------------------------
    def _store_files(self) -> builtins.list[str]:
        """The files in the directory that follow the store's naming convention."""
        return [f for f in self._scan() if _TEMP_MARK not in f and parse_name(f) is not None]

    def _scan(self) -> builtins.list[str]:
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.name not in _OWN_FILES and p.name != LOCK_FILE and (p.is_file() or p.is_symlink())
        )

    def verify(
        self,
        *,
        hashes: bool = True,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> builtins.list[StoreProblem]:
        """Every disagreement between the directory and the registry: recorded files that are
        missing or changed (sha256, or only size without ``hashes``), unrecorded store files,
        leftovers of interrupted writes, foreign files, and stale best links. Empty when all is
        well. Nothing is changed; ``sync`` repairs what can be repaired. ``progress(done,
        total, file)`` is called before each recorded file is checked (hashing is the long
        part).

        Examples:
            >>> from video_interpreter import ModelStore, build_model
            >>> store = ModelStore("store")
            >>> _ = store.save(build_model("tiny_r2plus1d"), metrics={"acc": 0.5}, epoch=1)
            >>> store.verify()
            []
        """
        problems: builtins.list[StoreProblem] = []
        with self.registry.connect() as conn:
            entries = self.registry.entries(conn)
            records = self.registry.best_records(conn)
        recorded = {e.file: e for e in entries}
        best_files = {best_name(r.name, r.version): r for r in records}
        for done, entry in enumerate(entries, 1):
            if progress is not None:
                progress(done, len(entries), entry.file)
            problem = self._check_entry(entry, hashes=hashes)
            if problem is not None:
                problems.append(problem)
        for link, record in best_files.items():
            source = recorded.get(record.file)
            path = self.root / link
            if not path.is_file():
                problems.append(StoreProblem("best", link, "the best model's copy is missing"))
            elif source is not None and _same_inode(path, source.path):
                problems.append(
                    StoreProblem(
                        "best",
                        link,
                        f"a hard link to {record.file}, not a copy: damage to one is damage "
                        "to both; sync replaces it with an independent copy",
                    )
                )
            elif source is not None and source.path.is_file():
                same = (
                    sha256_file(path) == source.sha256
                    if hashes
                    else path.stat().st_size == source.size_bytes
                )
                if not same:
                    problems.append(
                        StoreProblem(
                            "best",
                            link,
                            f"does not hold the bytes of {record.file}, the recorded best; "
                            "sync copies them again",
                        )
                    )
        for file in self._scan():
            if file in recorded or file in best_files:
                continue
            problems.append(self._classify_stray(file))
        problems.extend(self._stale_compressed(e for e in entries if e.is_best))
        return problems

    def _check_entry(self, entry: Entry, *, hashes: bool) -> StoreProblem | None:
        if not entry.path.is_file():
            return StoreProblem("missing", entry.file, "recorded in the registry but missing")
        size = entry.path.stat().st_size
        if size != entry.size_bytes:
            return StoreProblem(
                "changed",
                entry.file,
                f"size {size} bytes, recorded {entry.size_bytes}: changed since it was saved",
            )
        if hashes:
            try:
                actual = sha256_file(entry.path)
            except CheckpointError as exc:
                return StoreProblem("unreadable", entry.file, str(exc))
            if actual != entry.sha256:
                return StoreProblem(
                    "changed",
                    entry.file,
                    f"sha256 {actual}, recorded {entry.sha256}: changed since it was saved",
                )
        return None

    @staticmethod
    def _classify_stray(file: str) -> StoreProblem:
        if _TEMP_MARK in file:
            return StoreProblem(
                "leftover", file, "an unfinished write of an interrupted save; sync deletes it"
            )
        parsed = parse_name(file)
        if parsed is None:
            return StoreProblem("unknown", file, "not a store file name; the store leaves it alone")
        if parsed.kind == "best":
            return StoreProblem(
                "untracked", file, "a best copy no record points to; sync re-attaches it"
            )
        return StoreProblem(
            "untracked", file, "a store file the registry does not record; sync adopts it"
        )

    def sync(self, *, accept_changed: bool = False, trackers: bool = False) -> SyncReport:
        """Reconcile the registry with the files, which are the source of truth.

        Rebuilds a missing or damaged registry from the files (``report.rebuilt`` says so),
        adopts store files the registry lacks (from their embedded metadata), drops records of
        deleted files, restores a deleted or damaged best model from its ``_best`` copy,
        deletes leftovers of interrupted writes, re-chooses each best model (by the rule the
        registry or the files record) and copies it again to ``_best``. Any other file whose
        bytes changed since it was recorded stays refused (reported in ``problems``) unless
        ``accept_changed``, which re-records it as it now is. With ``trackers``, then replays
        to each of the store's trackers the saved models it lacks and moves its ``best``
        aliases (``report.tracked``; failures are in ``problems``).
        """
        report = SyncReport()
        with self._lock:
            report.rebuilt = self._rebuild_registry_if_unusable()
            files = self._scan()
            for file in files:
                if _TEMP_MARK in file:
                    (self.root / file).unlink(missing_ok=True)
                    report.deleted_leftovers.append(file)
            files = [f for f in files if _TEMP_MARK not in f]
            with self.registry.connect() as conn:
                entries = {e.file: e for e in self.registry.entries(conn)}
                records = {(r.name, r.version): r for r in self.registry.best_records(conn)}
            links = {f: parse_name(f) for f in files}
            best_links = {f for f, p in links.items() if p is not None and p.kind == "best"}

            for entry in entries.values():
                if not entry.path.is_file():
                    self._sync_missing(entry, records, report)
                else:
                    problem = self._check_entry(entry, hashes=True)
                    if problem is not None and not self._restore_from_best(entry, records):
                        self._sync_changed(entry, problem, accept_changed, report)
                    elif problem is not None:
                        report.restored.append(entry.file)
            adopt = [
                f
                for f, parsed in links.items()
                if f not in entries and parsed is not None and parsed.kind != "best"
            ]
            self._sync_adopt(adopt, report)
            self._sync_best(records, best_links, report)
            _fsync_dir(self.root)
        if trackers:
            self._sync_trackers(report)
        return report

    def _rebuild_registry_if_unusable(self) -> str | None:
        """Replace a missing or damaged registry by an empty one, which ``sync`` then fills
        from the files; a damaged file is kept as ``registry.sqlite.damaged``. Returns what
        was done (None when the registry was fine)."""
        try:
            with self.registry.connect():
                return None
        except UnusableRegistryError as exc:
            reason = str(exc).split(";", 1)[0]
        kept = ""
        if self.registry.exists():
            os.replace(self.registry_path, self.root / DAMAGED_REGISTRY)
            kept = f" (the damaged file is kept as {DAMAGED_REGISTRY})"
        for side in _SIDE_FILES:  # journals of the old file must not be applied to the new one
            (self.root / side).unlink(missing_ok=True)
        self.registry.create()
        logger.warning("%s; rebuilding it from the files in %s", reason, self.root)
        return (
            f"{reason}{kept}: rebuilt it from the files' embedded metadata (pins, which only "
            "the registry held, are gone: pin those files again)"
        )

    def _restore_from_best(
        self, entry: Entry, records: Mapping[tuple[str, str], BestRecord]
    ) -> bool:
        """Put back a recorded best model that was deleted or damaged from its best copy, when
        that copy still holds the recorded bytes."""
        record = records.get((entry.name, entry.version))
        copy = self.best_path(entry.name, entry.version)
        if record is None or record.file != entry.file or not copy.is_file():
            return False
        if _same_inode(copy, entry.path) or sha256_file(copy) != entry.sha256:
            return False
        _copy_file(copy, entry.path)
        return True

    def _sync_missing(
        self, entry: Entry, records: Mapping[tuple[str, str], BestRecord], report: SyncReport
    ) -> None:
        if self._restore_from_best(entry, records):
            report.restored.append(entry.file)
            return
        with self.registry.transaction() as conn:
            conn.execute("DELETE FROM entries WHERE file = ?", (entry.file,))
        report.removed.append(entry.file)

    def _sync_changed(
        self, entry: Entry, problem: StoreProblem, accept: bool, report: SyncReport
    ) -> None:
        if not accept:
            report.problems.append(
                StoreProblem(
                    "changed",
                    entry.file,
                    f"{problem.message}; kept the recorded hash, so load refuses the file "
                    "(restore it, or sync with accept_changed to record it as it is now)",
                )
            )
            return
        try:
            row = self._row(
                entry.file,
                read_metadata(entry.path),
                sha256_file(entry.path),
                entry.path.stat().st_size,
            )
        except VideoInterpreterError as exc:
            report.problems.append(StoreProblem("unreadable", entry.file, str(exc)))
            return
        with self.registry.transaction() as conn:
            self.registry.update(conn, row)
        report.updated.append(entry.file)

    def _sync_adopt(self, files: Iterable[str], report: SyncReport) -> None:
        """Record unrecorded store files, in the order they were saved (so ties in retention
        and best keep meaning "first saved")."""
        rows: builtins.list[tuple[tuple[str, int, str], RegistryRow]] = []
        for file in files:
            path = self.root / file
            try:
                row = self._row(file, read_metadata(path), sha256_file(path), path.stat().st_size)
            except VideoInterpreterError as exc:
                report.problems.append(StoreProblem("unreadable", file, f"not adopted: {exc}"))
                continue
            parsed = parse_name(file)
            rows.append(((row.created, parsed.duplicate if parsed else 1, file), row))
        rows.sort(key=lambda item: item[0])
        if rows:
            with self.registry.transaction() as conn:
                for _, row in rows:
                    self.registry.insert(conn, row)
        report.adopted.extend(row.file for _, row in rows)

    def _sync_best(
        self,
        records: Mapping[tuple[str, str], BestRecord],
        best_links: set[str],
        report: SyncReport,
    ) -> None:
        with self.registry.connect() as conn:
            entries = self.registry.entries(conn)
        groups = sorted({(e.name, e.version) for e in entries if e.kind == "model"})
        for name, version in groups:
            record = records.get((name, version))
            link = best_name(name, version)
            rule: tuple[str, Mode] | None = None
            group = [e for e in entries if (e.name, e.version) == (name, version)]
            holder = self._link_holder(link, group) if link in best_links else None
            if record is not None:
                rule = (record.metric, record.mode)
            else:
                rule = self._embedded_rule(group)
                if rule is None and holder is not None:
                    rule = self._infer_rule(holder, group)
            if rule is None:
                report.problems.append(
                    StoreProblem(
                        "best",
                        link,
                        f"no best model chosen for {name} {version}: its files do not record "
                        "which metric ranks them, or in which direction; choose with "
                        "store.set_monitor(name, version, metric=..., mode=...)",
                    )
                )
                continue
            with self.registry.transaction() as conn:
                chosen = self._choose_best(
                    conn, name, version, *rule, prefer=holder.file if holder else None
                )
                conn.execute("DELETE FROM best WHERE name = ? AND version = ?", (name, version))
                if chosen is not None:
                    self.registry.set_best(conn, chosen)
            if chosen is not None and (
                holder is None
                or holder.file != chosen.file
                or _same_inode(self.root / link, holder.path)  # an older store's hard link
            ):
                self._link_best(chosen)
                report.relinked.append(link)
        with self.registry.connect() as conn:
            attached = {best_name(r.name, r.version) for r in self.registry.best_records(conn)}
        for link in sorted(best_links - attached):
            report.problems.append(
                StoreProblem(
                    "untracked",
                    link,
                    "a best copy whose model is not recorded; left in place (it may be the "
                    "only copy of that model)",
                )
            )

    def _link_holder(self, link: str, entries: Iterable[Entry]) -> Entry | None:
        """The recorded saved model whose bytes a ``_best`` link holds."""
        path = self.root / link
        for entry in entries:
            try:
                if entry.kind == "model" and os.path.samefile(path, entry.path):
                    return entry
            except OSError:
                continue
        digest = sha256_file(path)
        return next((e for e in entries if e.kind == "model" and e.sha256 == digest), None)

    @staticmethod
    def _embedded_rule(entries: Iterable[Entry]) -> tuple[str, Mode] | None:
        """The ranking rule the most recently saved model file records (``ModelStore.save``
        writes its metric and direction into every model file)."""
        models = sorted((e for e in entries if e.kind == "model"), key=lambda e: e.created)
        for entry in reversed(models):
            try:
                monitor = read_metadata(entry.path).monitor
            except VideoInterpreterError:
                continue
            if monitor is not None and monitor[1] in _MODES:
                return monitor[0], "max" if monitor[1] == "max" else "min"
        return None

    @staticmethod
    def _infer_rule(holder: Entry, entries: Iterable[Entry]) -> tuple[str, Mode] | None:
        """The metric and direction behind a ``_best`` link when the registry lost them: the
        metric is the one that named the model the link holds; the direction is whichever
        makes that model the best of those recorded with the metric ("max" when both do)."""
        if holder.metric is None or holder.value is None:
            return None
        values = [e.metrics[holder.metric] for e in entries if holder.metric in e.metrics]
        mode: Mode = "max" if holder.value >= max(values) else "min"
        return holder.metric, mode

    # -- trackers -----------------------------------------------------------------------------
    def tracked_save(self, entry: Entry) -> TrackedSave:
        """What a tracker records of a saved model (the ranking rule from the registry).

        >>> store.tracked_save(store.best()).file  # doctest: +SKIP
        'video_interpreter_v1_acc_0.9.pth'
        """
        mode: str | None = None
        with self.registry.connect() as conn:
            record = self.registry.best_record(conn, entry.name, entry.version)
        if record is not None and record.metric == entry.metric:
            mode = record.mode
        return TrackedSave(
            file=entry.file,
            name=entry.name,
            version=entry.version,
            metric=entry.metric,
            mode=mode,
            metrics=dict(entry.metrics),
            epoch=entry.epoch,
            sha256=entry.sha256,
            created=entry.created,
            notes=entry.notes,
            store=self.location,
        )

    def _tracker_failed(self, tracker: Tracker, file: str, exc: BaseException) -> str:
        message = (
            f"{file} is saved in {self.location}, but tracker {tracker.url} did not record it: "
            f"{exc}; `video-interpreter models sync --root {self.location} --trackers ...` "
            "replays what it lacks"
        )
        self.tracker_errors.append(message)
        logger.error("%s", message)
        warnings.warn(TrackerWarning(message), stacklevel=4)
        return message

    def _mirror(
        self, model: nn.Module, entry: Entry, trackers: Sequence[Tracker] | None = None
    ) -> builtins.list[tuple[Tracker, str]]:
        """Send one saved model to ``trackers`` (default: all); returns each failure. Never
        raises: the model is already saved here, whatever a tracker does."""
        trackers = self.trackers if trackers is None else trackers
        if not trackers or entry.kind != "model":
            return []
        failures: builtins.list[tuple[Tracker, str]] = []
        save = self.tracked_save(entry)
        try:
            with make_bundle(_unwrapped(model), save) as bundle:
                for tracker in trackers:
                    try:
                        tracker.log_save(save, bundle, is_best=entry.is_best)
                    except Exception as exc:  # any failure of a sink: the save stands
                        failures.append((tracker, self._tracker_failed(tracker, entry.file, exc)))
        except Exception as exc:  # the artifacts could not even be written
            failures.extend((t, self._tracker_failed(t, entry.file, exc)) for t in trackers)
        return failures

    def _move_tracked_best(self, name: str, version: str, file: str) -> None:
        for tracker in self.trackers:
            try:
                tracker.set_best(name, version, file)
            except Exception as exc:
                self._tracker_failed(tracker, file, exc)

    def _sync_trackers(self, report: SyncReport) -> None:
        """Replay to each tracker the saved models it lacks, then point its ``best`` alias at
        the store's best models."""
        models = sorted(self.list(kind="model"), key=lambda e: e.created)
        for entry in models:
            save = self.tracked_save(entry)
            missing: builtins.list[Tracker] = []
            for tracker in self.trackers:
                try:
                    if not tracker.has(save):
                        missing.append(tracker)
                except Exception as exc:
                    report.problems.append(StoreProblem("tracker", entry.file, str(exc)))
            if not missing:
                continue
            failed = self._mirror(self.load(entry), entry, missing)
            report.problems.extend(StoreProblem("tracker", entry.file, m) for _, m in failed)
            failed_trackers = {id(t) for t, _ in failed}
            report.tracked.extend(
                f"{entry.file} -> {t.url}" for t in missing if id(t) not in failed_trackers
            )
        for best in self.bests():
            for tracker in self.trackers:
                try:
                    tracker.set_best(best.name, best.version, best.file)
                except Exception as exc:
                    report.problems.append(StoreProblem("tracker", best.file, str(exc)))

    # -- the README table ---------------------------------------------------------------------
    def render_table(self) -> str:
        """The registry as the Markdown table of ``models/README.md``."""
        copies = {copy.source: copy for copy in self.compressed_copies()}
        return render_table(self.list(kind="model"), copies)

    def write_readme(self, path: str | os.PathLike[str] = "models/README.md") -> Path:
        """Regenerate the table between ``<!-- registry:start -->`` and ``<!-- registry:end
        -->`` in ``path`` (a new file gets a heading and the markers)."""
        target = Path(path)
        try:
            if target.exists():
                text = target.read_text(encoding="utf-8")
            else:
                text = f"# Models\n\n{START_MARKER}\n{END_MARKER}\n"
            write_atomically(target, replace_table(text, self.render_table(), where=str(target)))
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot write the registry table to {target}: {exc}") from exc
        return target


def _unwrapped(model: nn.Module) -> nn.Module:
    """The ``VideoInterpreter`` inside a DDP or torch.compile wrapper (summaries and diagrams
    trace the model itself)."""
    for candidate in (model, getattr(model, "module", None), getattr(model, "_orig_mod", None)):
        if isinstance(candidate, VideoInterpreter):
            return candidate
    return model


def _matches(entry: Entry, name: str | None, version: str | None) -> bool:
    return (name is None or entry.name == name) and (version is None or entry.version == version)


_FICLONE = 0x40049409  # Linux's ioctl that shares a file's extents (a reflink)


def _same_inode(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _same_copy(copy: Path, source: Path) -> bool:
    """``copy`` was made from ``source`` as it is now (``_copy_file`` gives a copy its
    source's size and modification time); not a hard link to it."""
    try:
        a, b = copy.stat(), source.stat()
    except OSError:
        return False
    return (a.st_ino, a.st_dev) != (b.st_ino, b.st_dev) and (a.st_size, a.st_mtime_ns) == (
        b.st_size,
        b.st_mtime_ns,
    )


def _copy_file(source: Path, target: Path) -> None:
    """Make ``target`` an independent copy of ``source``, atomically: a reflink where the file
    system shares extents copy-on-write (no second copy of the weights on disk), else a byte
    copy; flushed, given the source's times, then one ``os.replace``. Never a hard link: damage
    to one name would be damage to both."""
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}{_TEMP_MARK}"
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            except OSError:
                shutil.copyfileobj(src, dst, 16 * 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        stat = source.stat()
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
