"""The store's registry: an embedded SQLite database recording every file the store wrote.

One row per saved model or training checkpoint (``entries``) and one row per model name and
version saying which saved model is the best by which metric (``best``). The database is an
index, not the truth: every field of a row is also in its file's embedded metadata, so
``ModelStore.sync`` can rebuild it. Pins (files retention must keep) live only here.

Each call opens its own connection (safe across ``fork`` and threads); writes run in
``BEGIN IMMEDIATE`` transactions under WAL with a busy timeout, so concurrent writers queue
instead of failing or losing rows.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ..errors import StoreError
from ._naming import SUFFIX

__all__ = [
    "COMPRESSED_DIR",
    "DEFAULT_ROOT",
    "REGISTRY_FILE",
    "BestRecord",
    "CompressedCopy",
    "Entry",
    "EntryKind",
    "Mode",
    "Registry",
    "RegistryRow",
    "UnusableRegistryError",
    "existing_root",
    "find_entries",
]

DEFAULT_ROOT = Path("models/saved_models")
REGISTRY_FILE = "registry.sqlite"
CARDS_DIR = "cards"  # model cards written on request, beside (not among) the store's files
# Compressed copies of best models, written on request, beside (not among) the store's files.
COMPRESSED_DIR = "compressed"
_COMPRESSED_SUFFIX = ".safetensors"

EntryKind = Literal["model", "checkpoint"]
Mode = Literal["max", "min"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    file        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('model', 'checkpoint')),
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    metric      TEXT,
    value       REAL,
    metrics     TEXT NOT NULL DEFAULT '{}',
    epoch       INTEGER,
    step        INTEGER,
    loss        REAL,
    created     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    notes       TEXT NOT NULL DEFAULT '',
    pinned      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_by_model ON entries (name, version, kind);
CREATE TABLE IF NOT EXISTS best (
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    metric  TEXT NOT NULL,
    mode    TEXT NOT NULL CHECK (mode IN ('max', 'min')),
    file    TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"""
_COLUMNS = (
    "file",
    "kind",
    "name",
    "version",
    "metric",
    "value",
    "metrics",
    "epoch",
    "step",
    "loss",
    "created",
    "sha256",
    "size_bytes",
    "fingerprint",
    "notes",
    "pinned",
)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


@dataclass(frozen=True)
class CompressedCopy:
    """A compressed copy of a saved model in ``compressed/``: ``{source stem}.{scheme}
    .safetensors`` (a self-describing checkpoint: ``load_model`` reads a bf16/fp16 copy,
    ``load_quantized`` an int8 one)."""

    file: str  # the copy's name inside compressed/
    source: str  # the store file it was made from
    scheme: str  # "bf16", "fp16", "int8_weight_only", "int8_dynamic"
    size_bytes: int
    location: str  # its path, or its URL in a store behind a URL

    @staticmethod
    def name_for(source: str, scheme: str) -> str:
        """The copy's name: ``video_interpreter_v1_acc_0.9.pth`` in bf16 is
        ``video_interpreter_v1_acc_0.9.bf16.safetensors``."""
        return f"{Path(source).stem}.{scheme}{_COMPRESSED_SUFFIX}"

    @classmethod
    def parse(cls, file: str, size_bytes: int, location: str) -> CompressedCopy | None:
        """The copy a name in ``compressed/`` stands for (None: not a copy's name; a scheme
        has no dot, so the last dotted token before the suffix is the scheme)."""
        stem, dot, scheme = file.removesuffix(_COMPRESSED_SUFFIX).rpartition(".")
        if not file.endswith(_COMPRESSED_SUFFIX) or not dot or not stem or not scheme:
            return None
        return cls(file, f"{stem}{SUFFIX}", scheme, size_bytes, location)


@dataclass(frozen=True)
class Entry:
    """One file in the store, as the registry records it.

    ``metric``/``value`` are the monitored metric of a saved model (None for a checkpoint);
    ``metrics`` holds every metric given at save time; ``created`` is ISO 8601 in UTC.
    """

    path: Path
    kind: EntryKind
    name: str
    version: str
    metric: str | None
    value: float | None
    metrics: Mapping[str, float]
    epoch: int | None
    step: int | None
    loss: float | None
    created: str
    sha256: str
    size_bytes: int
    fingerprint: str
    notes: str = ""
    pinned: bool = False
    best_by: str | None = None  # the metric that makes this the best model; None if it is not
    url: str | None = None  # in a store behind a URL (s3://...), where the file is

    @property
    def location(self) -> str:
        """The file's URL in a remote store, else its path."""
        return self.url if self.url is not None else str(self.path)

    def __hash__(self) -> int:  # metrics is a mapping; path and content identify an entry
        return hash((self.path, self.sha256))

    @property
    def file(self) -> str:
        return self.path.name

    @property
    def date(self) -> str:
        return self.created[:10]

    @property
    def is_best(self) -> bool:
        return self.best_by is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``path`` as a string; a non-finite number, which JSON
        cannot hold, as None)."""
        return {
            "file": self.file,
            "path": self.location,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "metric": self.metric,
            "value": _finite(self.value),
            "metrics": {key: _finite(value) for key, value in self.metrics.items()},
            "epoch": self.epoch,
            "step": self.step,
            "loss": _finite(self.loss),
            "created": self.created,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "fingerprint": self.fingerprint,
            "notes": self.notes,
            "pinned": self.pinned,
            "is_best": self.is_best,
            "best_by": self.best_by,
        }


@dataclass(frozen=True)
class RegistryRow:
    """What is written for a new file (an ``Entry`` without its derived fields)."""

    file: str
    kind: EntryKind
    name: str
    version: str
    metric: str | None
    value: float | None
    metrics: Mapping[str, float]
    epoch: int | None
    step: int | None
    loss: float | None
    created: str
    sha256: str
    size_bytes: int
    fingerprint: str
    notes: str = ""
    pinned: bool = False

    def values(self) -> tuple[Any, ...]:
        metrics = json.dumps(dict(self.metrics), sort_keys=True, allow_nan=True)
        return (
            self.file,
            self.kind,
            self.name,
            self.version,
            self.metric,
            self.value,
            metrics,
            self.epoch,
            self.step,
            self.loss,
            self.created,
            self.sha256,
            self.size_bytes,
            self.fingerprint,
            self.notes,
            int(self.pinned),
        )


@dataclass(frozen=True)
class BestRecord:
    """Which saved model is the best of ``name``/``version``, by ``metric`` and ``mode``."""

    name: str
    version: str
    metric: str
    mode: Mode
    file: str

    def better(self, value: float, than: float) -> bool:
        """Strictly better: on a tie the model saved first stays the best."""
        return value > than if self.mode == "max" else value < than


class UnusableRegistryError(StoreError):
    """The registry file is missing or damaged: ``ModelStore.sync`` rebuilds it."""


# sqlite3's reactions to a file that is not (or no longer) a whole registry.
_DAMAGE = ("not a database", "malformed", "no such table", "no such column", "file is empty")


@dataclass
class Registry:
    """The SQLite database at ``path``; ``create`` makes it, ``connect`` only opens it."""

    path: Path
    root: Path
    timeout: float = 60.0

    def exists(self) -> bool:
        return self.path.is_file()

    def _hint(self) -> str:
        return (
            f"`video-interpreter models sync --root {self.root}` (ModelStore.sync()) rebuilds it "
            "from the files' embedded metadata"
        )

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if type(exc) is sqlite3.DatabaseError or any(mark in text for mark in _DAMAGE):
            return UnusableRegistryError(
                f"the registry {self.path} is damaged ({text}); {self._hint()}"
            )
        return StoreError(f"registry {self.path}: {text}")

    def create(self) -> None:
        """Make a new registry file with its tables (the caller holds the store's lock)."""
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create the registry {self.path}: {exc}") from exc
        try:
            # WAL lets readers go on while one process writes; a property of the file, set once.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create the registry {self.path}: {exc}") from exc
        finally:
            conn.close()

    def _open(self) -> sqlite3.Connection:
        """An existing registry, never creating a file. In a directory this process cannot
        write (a read-only mount or folder), read-only and, when SQLite cannot make its
        shared-memory file there, as an immutable file (nobody can be writing it)."""
        if not self.exists():
            raise UnusableRegistryError(f"the registry {self.path} is missing; {self._hint()}")
        uri = self.path.resolve().as_uri()
        if os.access(self.path.parent, os.W_OK):
            return sqlite3.connect(
                f"{uri}?mode=rw", uri=True, timeout=self.timeout, isolation_level=None
            )
        conn = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, timeout=self.timeout, isolation_level=None
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        return sqlite3.connect(
            f"{uri}?mode=ro&immutable=1", uri=True, timeout=self.timeout, isolation_level=None
        )

    def _check(self, conn: sqlite3.Connection) -> None:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > _SCHEMA_VERSION:
            raise StoreError(
                f"registry {self.path} has schema version {found}, newer than this package's "
                f"{_SCHEMA_VERSION}; upgrade video_interpreter, or run `video-interpreter models "
                "sync` with a fresh registry file"
            )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"entries", "best"} <= tables:
            raise UnusableRegistryError(
                f"the registry {self.path} is damaged (its tables are missing); {self._hint()}"
            )

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection to the existing registry; ``UnusableRegistryError`` (a ``StoreError``
        saying how to rebuild it) when the file is missing or damaged."""
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._check(conn)
            yield conn
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything in it is recorded, or nothing is."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- rows -> entries ----------------------------------------------------------------------
    def _entry(self, row: sqlite3.Row, best_files: Mapping[str, str]) -> Entry:
        metrics = json.loads(row["metrics"])
        return Entry(
            path=self.root / row["file"],
            kind=row["kind"],
            name=row["name"],
            version=row["version"],
            metric=row["metric"],
            value=row["value"],
            metrics=MappingProxyType({str(k): float(v) for k, v in metrics.items()}),
            epoch=row["epoch"],
            step=row["step"],
            loss=row["loss"],
            created=row["created"],
            sha256=row["sha256"],
            size_bytes=row["size_bytes"],
            fingerprint=row["fingerprint"],
            notes=row["notes"],
            pinned=bool(row["pinned"]),
            best_by=best_files.get(row["file"]),
        )

    def entries(
        self,
        conn: sqlite3.Connection,
        where: str = "",
        params: tuple[Any, ...] = (),
        *,
        by_save_time: bool = False,
    ) -> list[Entry]:
        """Entries in retention order: by model, kind (saved models first), epoch (numerically;
        none first), then save time; or, ``by_save_time``, in the order they were saved."""
        best_files = {r["file"]: r["metric"] for r in conn.execute("SELECT file, metric FROM best")}
        order = (
            "created, id"
            if by_save_time
            else "name, version, kind DESC, COALESCE(epoch, -1), created, id"
        )
        rows = conn.execute(f"SELECT * FROM entries {where} ORDER BY {order}", params)
        return [self._entry(row, best_files) for row in rows]

    def insert(self, conn: sqlite3.Connection, row: RegistryRow) -> None:
        marks = ", ".join("?" for _ in _COLUMNS)
        conn.execute(f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({marks})", row.values())

    def update(self, conn: sqlite3.Connection, row: RegistryRow) -> None:
        """Re-record ``row.file`` as ``row`` says, keeping its id (save order) and pin."""
        columns = [c for c in _COLUMNS if c not in ("file", "pinned")]
        values = dict(zip(_COLUMNS, row.values(), strict=True))
        conn.execute(
            f"UPDATE entries SET {', '.join(f'{c} = ?' for c in columns)} WHERE file = ?",
            (*(values[c] for c in columns), row.file),
        )

    def files(self, conn: sqlite3.Connection) -> set[str]:
        return {r["file"] for r in conn.execute("SELECT file FROM entries")}

    def best_records(self, conn: sqlite3.Connection) -> list[BestRecord]:
        rows = conn.execute("SELECT * FROM best ORDER BY name, version")
        return [
            BestRecord(r["name"], r["version"], r["metric"], r["mode"], r["file"]) for r in rows
        ]

    def best_record(self, conn: sqlite3.Connection, name: str, version: str) -> BestRecord | None:
        row = conn.execute(
            "SELECT * FROM best WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            return None
        return BestRecord(row["name"], row["version"], row["metric"], row["mode"], row["file"])

    def set_best(self, conn: sqlite3.Connection, record: BestRecord) -> None:
        conn.execute(
            "INSERT INTO best (name, version, metric, mode, file) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name, version) DO UPDATE SET metric = excluded.metric, "
            "mode = excluded.mode, file = excluded.file",
            (record.name, record.version, record.metric, record.mode, record.file),
        )


def existing_root(root: str | os.PathLike[str]) -> Path:
    """The directory of a store that must already exist; a ``StoreError`` saying what to pass
    when it is missing or is not a directory."""
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is not a directory; pass the store's directory")
    if not path.is_dir():
        raise StoreError(
            f"no model store at {path}; save a model there first, or pass the store's "
            "directory (--root)"
        )
    return path


def find_entries(
    registry: Registry,
    name: str | None = None,
    version: str | None = None,
    *,
    kind: EntryKind | None = None,
    metric: str | None = None,
    pinned: bool | None = None,
) -> list[Entry]:
    """Recorded files matching every criterion given (``ModelStore.find``; the command line's
    ``models list`` calls it directly, so listing a store never imports torch)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, wanted in (("name", name), ("version", version), ("kind", kind)):
        if wanted is not None:
            clauses.append(f"{column} = ?")
            params.append(wanted)
    if metric is not None:
        clauses.append("metric = ?")
        params.append(metric)
    if pinned is not None:
        clauses.append("pinned = ?")
        params.append(int(pinned))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with registry.connect() as conn:
        return registry.entries(conn, where, tuple(params))
