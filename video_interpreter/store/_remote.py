"""``ModelStore("s3://bucket/prefix")``: the store on an object store, through fsspec.

Object stores have no rename and no locks, so the commit is built from what they do have:
an object appears whole or not at all, and (on S3) a write can be conditional on nothing being
there yet (``If-None-Match: *``). A save therefore:

1. uploads the checkpoint under its conventional name, on condition that the name is free
   (a taken name gets ``-2``, ``-3``...: two processes can never write the same file);
2. creates the small manifest ``_registry/entries/{file}.json`` (the row the local store keeps
   in SQLite), again conditionally: the manifest is the commit point; readers list manifests,
   so they never see a file whose save did not finish;
3. refreshes the ``{name}_{version}_best.pth`` copy when the new model is the best.

The registry is these manifests beside the files, plus one ``_registry/models/...json`` per
model name and version holding its ranking rule. The best model is derived from the manifests
and the rule (ties go to the first saved), so concurrent saves can never leave a wrong best.
A process killed anywhere leaves at most a file without a manifest (``verify`` reports it,
``sync`` adopts it) or a stale best copy (``sync`` copies it again). Downloads for ``load`` go
to temporary files: no local cache stands in for the store. Without conditional writes
(fsspec back ends other than S3) a name is checked, then written: two processes racing for
the same name in the same instant could collide; the docs say so.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import json
import logging
import math
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..checkpoint import Checkpoint, load_model, read_metadata, save_model, sha256_file
from ..checkpoint import resume as resume_checkpoint
from ..checkpoint._remote import remote_failure, upload, url_filesystem
from ..errors import CheckpointError, StoreError, VideoInterpreterError
from ..model import VideoInterpreter
from ..sharing import write_model_card
from ..spec import ArchitectureSpec
from ..tracking import TrackedSave, Tracker
from ._naming import (
    best_name,
    checkpoint_name,
    parse_name,
    sanitize_name,
    sanitize_version,
    with_duplicate,
)
from ._registry import (
    COMPRESSED_DIR,
    BestRecord,
    CompressedCopy,
    Entry,
    EntryKind,
    Mode,
    RegistryRow,
)
from ._store import (
    CARDS_DIR,
    EntryRef,
    ModelStore,
    PruneResult,
    StoreProblem,
    SyncReport,
    _matches,
    _metrics,
    _spec_of,
    _write_compressed,
)

__all__ = ["MANIFEST_DIR", "RemoteModelStore"]

logger = logging.getLogger(__name__)

MANIFEST_DIR = "_registry"
_ENTRIES = f"{MANIFEST_DIR}/entries"
_MODELS = f"{MANIFEST_DIR}/models"
_BEST = f"{MANIFEST_DIR}/best"


class RemoteModelStore(ModelStore):
    """A ``ModelStore`` whose root is a URL (``ModelStore("s3://bucket/models")`` makes one).

    Same interface and rules as the local store; ``storage_options`` go to fsspec (for S3,
    e.g. ``{"client_kwargs": {"endpoint_url": ...}}``; credentials come from the usual
    environment). Entries carry ``url``; their ``path`` is the key inside the bucket.

    >>> store = ModelStore("s3://my-bucket/models")  # doctest: +SKIP
    >>> store.save(model, metrics={"acc": 0.9}).url  # doctest: +SKIP
    's3://my-bucket/models/video_interpreter_v1_acc_0.9.pth'
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        create: bool = True,
        lock_timeout: float = 600.0,  # no locks on an object store; kept for the signature
        trackers: Sequence[Tracker] = (),
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        del lock_timeout
        self.trackers = tuple(trackers)
        self.tracker_errors = []
        self.url = str(root).rstrip("/")
        try:
            self.fs, self._base = url_filesystem(self.url, storage_options)
        except CheckpointError as exc:
            raise StoreError(str(exc)) from exc
        self._base = self._base.rstrip("/")
        self.root = Path(self._base)
        bucket = self._base.split("/", 1)[0]
        # A store is any prefix holding objects: a crash before the first manifest leaves only
        # a file, and `models sync` must still open it to adopt that file.
        exists = self._remote("reaching the store", self.fs.exists, self._key(_ENTRIES)) or bool(
            self._listing("")
        )
        if not exists and not create:
            raise StoreError(
                f"no model store at {self.url}; save a model there first, or pass the store's "
                "URL (--root)"
            )
        if (
            not exists
            and "s3" in _protocols(self.fs)
            and not self._remote("finding the bucket", self.fs.exists, bucket)
        ):
            raise StoreError(
                f"{self.url}: the bucket {bucket!r} does not exist (or these credentials "
                "cannot see it); create it first: the store never creates buckets"
            )

    def __repr__(self) -> str:
        return f"ModelStore({self.url!r})"

    @property
    def location(self) -> str:
        return self.url

    # -- object-store primitives ------------------------------------------------------------
    def _key(self, relative: str) -> str:
        return f"{self._base}/{relative}" if relative else self._base

    def _url(self, relative: str) -> str:
        return f"{self.url}/{relative}"

    def _remote(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (FileExistsError, FileNotFoundError):  # callers decide what these mean
            raise
        except Exception as exc:
            failure = remote_failure(self.url, what, exc, StoreError)
            raise failure from exc

    def _invalidate(self) -> None:
        # fsspec caches listings; another process may have changed the store since.
        self.fs.invalidate_cache()

    def _listing(self, relative: str) -> builtins.list[str]:
        self._invalidate()
        try:
            found = self._remote("listing the store", self.fs.ls, self._key(relative), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(str(p).rstrip("/")) for p in found)

    def _read_json(self, relative: str) -> dict[str, Any] | None:
        try:
            raw = self._remote("reading the registry", self.fs.cat_file, self._key(relative))
        except FileNotFoundError:
            return None
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"{relative} holds {type(data).__name__}, not an object")
        return data

    def _write_json(self, relative: str, data: Mapping[str, Any], *, exclusive: bool) -> None:
        body = json.dumps(data, sort_keys=True, indent=1).encode()
        with tempfile.NamedTemporaryFile(prefix="vi-manifest-", suffix=".json") as tmp:
            tmp.write(body)
            tmp.flush()
            try:
                upload(Path(tmp.name), self._url(relative), exclusive=exclusive, fs=self.fs)
            except CheckpointError as exc:
                raise StoreError(str(exc)) from exc

    def _put_file(self, local: Path, relative: str, *, exclusive: bool) -> None:
        try:
            upload(local, self._url(relative), exclusive=exclusive, fs=self.fs)
        except CheckpointError as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.contextmanager
    def _downloaded(self, relative: str) -> Iterator[Path]:
        """A temporary local copy of a store object (a download, never a cache)."""
        with tempfile.TemporaryDirectory(prefix="vi-store-") as tmp:
            target = Path(tmp) / posixpath.basename(relative)
            self._remote("downloading", self.fs.get_file, self._key(relative), str(target))
            yield target

    def _size(self, relative: str) -> int | None:
        try:
            info = self._remote("reading a file's size", self.fs.info, self._key(relative))
        except FileNotFoundError:
            return None
        return int(info["size"])

    # -- registry: manifests and rules -----------------------------------------------------
    def _manifests(self) -> dict[str, dict[str, Any]]:
        keys = [
            self._key(f"{_ENTRIES}/{n}") for n in self._listing(_ENTRIES) if n.endswith(".json")
        ]
        if not keys:
            return {}
        # One concurrent batch of reads (s3fs gathers them), not one round trip per entry.
        raw = self._remote("reading the registry", self.fs.cat, keys, on_error="omit")
        out: dict[str, dict[str, Any]] = {}
        for body in raw.values():
            try:
                data = json.loads(body)
            except ValueError:
                continue  # unreadable: verify reports it, sync rebuilds it from the file
            if isinstance(data, dict) and "file" in data:
                out[str(data["file"])] = data
        return out

    def _rules(self) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for name in self._listing(_MODELS):
            with contextlib.suppress(ValueError):
                data = self._read_json(f"{_MODELS}/{name}")
                if data is not None:
                    out[(str(data["name"]), str(data["version"]))] = data
        return out

    @staticmethod
    def _rule_file(name: str, version: str) -> str:
        return f"{_MODELS}/{sanitize_name(name)}_{sanitize_version(version)}.json"

    def _entry(self, data: Mapping[str, Any], best_files: Mapping[str, str]) -> Entry:
        file = str(data["file"])
        return Entry(
            path=Path(self._key(file)),
            kind=data["kind"],
            name=data["name"],
            version=data["version"],
            metric=data["metric"],
            value=data["value"],
            metrics={str(k): float(v) for k, v in data["metrics"].items()},
            epoch=data["epoch"],
            step=data["step"],
            loss=data["loss"],
            created=data["created"],
            sha256=data["sha256"],
            size_bytes=int(data["size_bytes"]),
            fingerprint=data["fingerprint"],
            notes=data.get("notes", ""),
            pinned=bool(data.get("pinned", False)),
            best_by=best_files.get(file),
            url=self._url(file),
        )

    @staticmethod
    def _order(data: Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            data["name"],
            data["version"],
            0 if data["kind"] == "model" else 1,
            -1 if data["epoch"] is None else data["epoch"],
            data["created"],
            data.get("saved_ns", 0),
            data["file"],
        )

    @staticmethod
    def _choose(
        rows: Sequence[Mapping[str, Any]], metric: str, mode: str
    ) -> Mapping[str, Any] | None:
        """The best model by ``metric``/``mode``; a tie goes to the first saved."""
        chosen: Mapping[str, Any] | None = None
        record = BestRecord("", "", metric, "max" if mode == "max" else "min", "")
        ordered = sorted(rows, key=lambda d: (d["created"], d.get("saved_ns", 0), d["file"]))
        for row in ordered:
            value = row["metrics"].get(metric)
            if row["kind"] != "model" or value is None or not math.isfinite(value):
                continue
            if chosen is None or record.better(value, chosen["metrics"][metric]):
                chosen = row
        return chosen

    def _best_files(
        self,
        manifests: Mapping[str, Mapping[str, Any]],
        rules: Mapping[tuple[str, str], Mapping[str, Any]],
    ) -> dict[str, str]:
        """file -> the metric that makes it the best of its name and version."""
        out: dict[str, str] = {}
        for (name, version), rule in rules.items():
            if rule.get("metric") is None:
                continue
            rows = [d for d in manifests.values() if (d["name"], d["version"]) == (name, version)]
            chosen = self._choose(rows, rule["metric"], rule["mode"])
            if chosen is not None:
                out[chosen["file"]] = rule["metric"]
        return out

    def _all_entries(self) -> builtins.list[Entry]:
        manifests = self._manifests()
        best_files = self._best_files(manifests, self._rules())
        rows = sorted(manifests.values(), key=self._order)
        return [self._entry(d, best_files) for d in rows]

    # -- saving ------------------------------------------------------------------------------
    def _write_ranked(
        self,
        model: nn.Module,
        spec: ArchitectureSpec,
        base: str,
        rule: tuple[str, Mode],
        compressed: str | None,
        **write: Any,
    ) -> Entry:
        """Claim the monitored rule (no lock on an object store: a conditional write), write
        the model, then its compressed copy if it became the best."""
        self._claim_rule(spec.name, spec.version, *rule)
        entry = self._write(model, base, kind="model", monitor=rule, **write)
        if compressed is not None and entry.is_best:
            self._keep_compressed(model, entry, compressed)
        return entry

    def compressed_copies(self) -> builtins.list[CompressedCopy]:
        """The compressed copies under ``compressed/``; ``copy.location`` is the copy's URL."""
        self._invalidate()
        try:
            found = self._remote(
                "listing the compressed copies", self.fs.ls, self._key(COMPRESSED_DIR), detail=True
            )
        except FileNotFoundError:
            return []
        copies = []
        for info in sorted(found, key=lambda i: str(i["name"])):
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            if info.get("type") == "file":
                url = self._url(f"{COMPRESSED_DIR}/{name}")
                copies.append(CompressedCopy.parse(name, int(info["size"]), url))
        return [copy for copy in copies if copy is not None]

    def _put_compressed(self, model: nn.Module, entry: Entry, scheme: str, name: str) -> None:
        """Written to a temporary file, then uploaded (replacing a copy of the same name)."""
        with tempfile.TemporaryDirectory(prefix="vi-compressed-") as tmp:
            local = Path(tmp) / name
            _write_compressed(model, entry, scheme, local)
            self._put_file(local, f"{COMPRESSED_DIR}/{name}", exclusive=False)

    def _remove_compressed(self, copy: CompressedCopy) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._remote(
                "removing a compressed copy",
                self.fs.rm_file,
                self._key(f"{COMPRESSED_DIR}/{copy.file}"),
            )

    def card_path(self, ref: EntryRef) -> Path:
        """The key of a stored file's model card inside the store: ``cards/{file stem}.md``."""
        return Path(CARDS_DIR) / f"{Path(self.get(ref).file).stem}.md"

    def write_card(self, ref: EntryRef) -> Path:
        """Write the model card of a stored file (and its diagram) under ``cards/``: made from a
        temporary download of the file, then uploaded. Returns the card's key in the store."""
        entry = self.get(ref)
        key = self.card_path(entry)
        with (
            self._downloaded(entry.file) as local,
            tempfile.TemporaryDirectory(prefix="vi-card-") as tmp,
        ):
            try:
                write_model_card(local, Path(tmp) / key.name)
            except (VideoInterpreterError, OSError) as exc:
                raise StoreError(
                    f"{entry.file} is saved, but its card could not be written: {exc}"
                ) from exc
            for written in sorted(Path(tmp).iterdir()):
                self._put_file(written, posixpath.join(CARDS_DIR, written.name), exclusive=False)
        return key

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
        spec = _spec_of(model)
        self._claim_rule(spec.name, spec.version, None, None)
        return self._write(
            model,
            checkpoint_name(spec.name, spec.version, epoch),
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

    def _claim_rule(self, name: str, version: str, metric: str | None, mode: str | None) -> None:
        """Record (or check) the model's identity and ranking rule: the first save of a name
        and version creates its rule file; a save that disagrees with it is refused, as in the
        local store; two names that sanitise alike share the file and are refused."""
        relative = self._rule_file(name, version)
        wanted = {"name": name, "version": version, "metric": metric, "mode": mode}
        for _ in range(3):
            try:
                current = self._read_json(relative)
            except ValueError:
                current = None
            if current is None:
                try:
                    self._write_json(relative, wanted, exclusive=True)
                    return
                except FileExistsError:
                    continue  # another process made it first: check against theirs
            if (current["name"], current["version"]) != (name, version):
                raise StoreError(
                    f"{name} {version} and {current['name']} {current['version']} (already in "
                    f"{self.url}) would share the file names "
                    f"{sanitize_name(name)}_{sanitize_version(version)}_*; rename one"
                )
            if metric is None:
                return
            if current.get("metric") is None:
                self._write_json(relative, wanted, exclusive=False)
                return
            if (current["metric"], current["mode"]) != (metric, mode):
                raise StoreError(
                    f"the best {name} {version} is chosen by {current['metric']} "
                    f"({current['mode']}), but this save monitors {metric} ({mode}); monitor "
                    f"{current['metric']!r} with mode={current['mode']!r} (other metrics can "
                    "still be recorded in metrics=), or change the rule with "
                    "store.set_monitor(...)"
                )
            return
        raise StoreError(f"{self.url}: could not record the rule of {name} {version}; retry")

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
        """Data first (a conditional create claims the name), the manifest last."""
        with tempfile.TemporaryDirectory(prefix="vi-save-") as tmp:
            local = Path(tmp) / base
            saved = save_model(model, local, metrics=metrics, monitor=monitor, **fields)
            meta = read_metadata(local)
            duplicate = 1
            while True:
                file = with_duplicate(base, duplicate)
                try:
                    self._put_file(local, file, exclusive=True)
                    break
                except FileExistsError:
                    if on_conflict == "error":
                        raise StoreError(
                            f"{self._url(file)} already exists; save with on_conflict='suffix' "
                            "to keep both (the new file gets -2, -3...), or remove the old one "
                            "first"
                        ) from None
                    duplicate += 1
        row = self._row(file, meta, saved.sha256, saved.size_bytes)
        manifest = self._manifest(row, tag=self._tag(file))
        self._write_json(f"{_ENTRIES}/{file}.json", manifest, exclusive=True)
        if kind == "model":
            self._refresh_best(row.name, row.version)
        logger.info("saved %s (sha256 %s)", self._url(file), saved.sha256[:12])
        return self.get(file)

    @staticmethod
    def _manifest(row: RegistryRow, *, tag: str | None) -> dict[str, Any]:
        """A manifest: the registry row, plus the data object's tag (S3's ETag) when it was
        recorded, which lets ``sync`` skip hashing files whose tag has not changed."""
        return {
            "file": row.file,
            "kind": row.kind,
            "name": row.name,
            "version": row.version,
            "metric": row.metric,
            "value": row.value,
            "metrics": dict(row.metrics),
            "epoch": row.epoch,
            "step": row.step,
            "loss": row.loss,
            "created": row.created,
            "sha256": row.sha256,
            "size_bytes": row.size_bytes,
            "fingerprint": row.fingerprint,
            "notes": row.notes,
            "pinned": False,
            "saved_ns": time.time_ns(),
            "tag": tag,
        }

    # -- the best model ---------------------------------------------------------------------
    def best_location(self, name: str, version: str) -> str:
        """The URL of the copy of the best ``name``/``version``."""
        return self._url(best_name(name, version))

    def _refresh_best(self, name: str, version: str) -> bool:
        """Copy the best model to ``{name}_{version}_best.pth`` unless the copy's marker
        (``_registry/best/...json``: the sha256 copied and the copy's ETag) says it holds it
        already. True when it copied."""
        best = [e for e in self.bests() if (e.name, e.version) == (name, version)]
        link = best_name(name, version)
        marker = f"{_BEST}/{link}.json"
        if not best:
            for relative in (link, marker):
                with contextlib.suppress(FileNotFoundError):
                    self._remote("removing a best copy", self.fs.rm_file, self._key(relative))
            return False
        if self._copy_current(best[0], link):
            return False
        self._copy_best(best[0], link)
        return True

    def _copy_current(self, best: Entry, link: str) -> bool:
        """Whether the best copy's marker says it holds ``best`` as the copy is now."""
        try:
            held = self._read_json(f"{_BEST}/{link}.json")
        except ValueError:
            return False
        return (
            held is not None
            and held.get("sha256") == best.sha256
            and held.get("tag") == self._tag(link)
        )

    def _tag(self, relative: str) -> str | None:
        """What identifies an object's current bytes cheaply (S3's ETag; size and time
        elsewhere), or None when it is missing."""
        try:
            info = self._remote("reading a file's details", self.fs.info, self._key(relative))
        except FileNotFoundError:
            return None
        return _tag_of(info)

    def _objects(self) -> dict[str, dict[str, Any]]:
        """Every object directly in the root with its details (size, ETag): one listing."""
        self._invalidate()
        try:
            found = self._remote("listing the store", self.fs.ls, self._base, detail=True)
        except FileNotFoundError:
            return {}
        return {posixpath.basename(str(i["name"]).rstrip("/")): i for i in found}

    def _copy_best(self, entry: Entry, link: str) -> None:
        self._remote("copying the best model", self.fs.copy, self._key(entry.file), self._key(link))
        self._write_json(
            f"{_BEST}/{link}.json",
            {"file": entry.file, "sha256": entry.sha256, "tag": self._tag(link)},
            exclusive=False,
        )

    def bests(self) -> builtins.list[Entry]:
        return [e for e in self._all_entries() if e.is_best]

    def set_monitor(self, name: str, version: str, *, metric: str, mode: Mode) -> Entry | None:
        if mode not in ("max", "min"):
            raise StoreError(f"mode must be 'max' or 'min', got {mode!r}")
        relative = self._rule_file(name, version)
        self._write_json(
            relative,
            {"name": name, "version": version, "metric": metric, "mode": mode},
            exclusive=False,
        )
        self._refresh_best(name, version)
        chosen = [e for e in self.bests() if (e.name, e.version) == (name, version)]
        if not chosen:
            return None
        self._move_tracked_best(name, version, chosen[0].file)
        return chosen[0]

    def tracked_save(self, entry: Entry) -> TrackedSave:
        rule = self._rules().get((entry.name, entry.version), {})
        mode = rule.get("mode") if rule.get("metric") == entry.metric else None
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
            store=self.url,
        )

    # -- reading ----------------------------------------------------------------------------
    def find(
        self,
        name: str | None = None,
        version: str | None = None,
        *,
        kind: EntryKind | None = None,
        metric: str | None = None,
        pinned: bool | None = None,
    ) -> builtins.list[Entry]:
        return [
            e
            for e in self._all_entries()
            if _matches(e, name, version)
            and (kind is None or e.kind == kind)
            and (metric is None or e.metric == metric)
            and (pinned is None or e.pinned == pinned)
        ]

    def get(self, ref: EntryRef) -> Entry:
        if isinstance(ref, Entry):
            file = ref.file
        else:
            text = str(ref)
            file = posixpath.basename(text)
            inside = text.startswith((f"{self.url}/", f"{self._base}/"))
            if "/" in text and not inside:
                raise StoreError(
                    f"{text} is not in the store {self.url}; pass a file name of this store"
                )
        entries = self._all_entries()
        for entry in entries:
            if entry.file == file:
                return entry
        parsed = parse_name(file)
        if parsed is not None and parsed.kind == "best":
            for entry in entries:
                if entry.is_best and best_name(entry.name, entry.version) == file:
                    return entry
        files = sorted(e.file for e in entries)
        close = difflib.get_close_matches(file, files, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise StoreError(
            f"{file} is not recorded in {self.url} ({len(files)} files recorded){hint} "
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
        entry = self.get(ref)
        try:
            with self._downloaded(entry.file) as local:
                return load_model(
                    local, device=device, dtype=dtype, strict=strict, verify=entry.sha256
                )
        except FileNotFoundError as exc:
            raise StoreError(
                f"{entry.location} is recorded but missing; `video-interpreter models verify` "
                "lists what else is, `sync` drops the records of deleted files"
            ) from exc
        except CheckpointError as exc:
            if entry.sha256 in str(exc):
                raise
            raise StoreError(
                f"{entry.location}: {exc} (the registry recorded sha256 {entry.sha256})"
            ) from exc

    def resume(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        *,
        restore_rng: bool = True,
    ) -> Checkpoint | None:
        spec = _spec_of(model)
        entry = self.latest_checkpoint(spec.name, spec.version)
        if entry is None:
            return None
        with self._downloaded(entry.file) as local:
            return resume_checkpoint(
                model, local, optimizer, scheduler, verify=entry.sha256, restore_rng=restore_rng
            )

    # -- pins and retention -----------------------------------------------------------------
    def _set_pinned(self, ref: EntryRef, pinned: bool) -> Entry:
        entry = self.get(ref)
        data = self._read_json(f"{_ENTRIES}/{entry.file}.json") or {}
        data["pinned"] = pinned
        self._write_json(f"{_ENTRIES}/{entry.file}.json", data, exclusive=False)
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
        removed, kept = self._prune_plan(keep_last, name, version, kind)
        if not dry_run and removed:
            # Manifests first: a crash after this leaves unrecorded files, which sync adopts
            # again, never records of files that are gone.
            for entry in removed:
                self._remote(
                    "removing a manifest",
                    self.fs.rm_file,
                    self._key(f"{_ENTRIES}/{entry.file}.json"),
                )
            for entry in removed:
                with contextlib.suppress(FileNotFoundError):
                    self._remote("removing a file", self.fs.rm_file, self._key(entry.file))
            logger.info("pruned %d files from %s", len(removed), self.url)
        return PruneResult(tuple(removed), tuple(kept), dry_run)

    # -- consistency ------------------------------------------------------------------------
    def _store_files(self) -> builtins.list[str]:
        return [f for f in self._listing("") if parse_name(f) is not None]

    def _hash(self, relative: str) -> str:
        with self._downloaded(relative) as local:
            return sha256_file(local)

    def _check_remote(
        self, entry: Entry, *, hashes: bool, objects: Mapping[str, Mapping[str, Any]]
    ) -> StoreProblem | None:
        info = objects.get(entry.file)
        size = None if info is None else int(info["size"])
        if size is None:
            return StoreProblem("missing", entry.file, "recorded in the registry but missing")
        if size != entry.size_bytes:
            return StoreProblem(
                "changed",
                entry.file,
                f"size {size} bytes, recorded {entry.size_bytes}: changed since it was saved",
            )
        if hashes:
            actual = self._hash(entry.file)
            if actual != entry.sha256:
                return StoreProblem(
                    "changed",
                    entry.file,
                    f"sha256 {actual}, recorded {entry.sha256}: changed since it was saved",
                )
        return None

    def verify(
        self,
        *,
        hashes: bool = True,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> builtins.list[StoreProblem]:
        problems: builtins.list[StoreProblem] = []
        entries = self._all_entries()
        recorded = {e.file for e in entries}
        manifest_files = {
            n[: -len(".json")] for n in self._listing(_ENTRIES) if n.endswith(".json")
        }
        for file in sorted(manifest_files - recorded):
            problems.append(
                StoreProblem("unreadable", file, "its manifest is unreadable; sync rebuilds it")
            )
        objects = self._objects()
        for done, entry in enumerate(entries, 1):
            if progress is not None:
                progress(done, len(entries), entry.file)
            problem = self._check_remote(entry, hashes=hashes, objects=objects)
            if problem is not None:
                problems.append(problem)
        links = set()
        for best in (e for e in entries if e.is_best):
            link = best_name(best.name, best.version)
            links.add(link)
            size = self._size(link)
            if size is None:
                problems.append(StoreProblem("best", link, "the best model's copy is missing"))
            elif (
                size != best.size_bytes
                or not self._copy_current(best, link)
                or (hashes and self._hash(link) != best.sha256)
            ):
                problems.append(
                    StoreProblem(
                        "best",
                        link,
                        f"does not hold the bytes of {best.file}, the recorded best; sync "
                        "copies them again",
                    )
                )
        for file in sorted(objects):
            if (
                file in recorded
                or file in links
                or file in (MANIFEST_DIR, CARDS_DIR, COMPRESSED_DIR)
            ):
                continue
            problems.append(self._classify_stray(file))
        problems.extend(self._stale_compressed(e for e in entries if e.is_best))
        return problems

    def sync(self, *, accept_changed: bool = False, trackers: bool = False) -> SyncReport:
        """Reconcile the manifests with the files (the truth), as the local ``sync`` does:
        rebuild unreadable manifests, adopt files without one (a save killed before its
        commit), drop manifests of deleted files (restoring a deleted best from its copy),
        refuse changed files unless ``accept_changed``, and copy each best model again."""
        report = SyncReport()
        manifests = self._manifests()
        files = set(self._store_files())
        manifest_files = {
            n[: -len(".json")] for n in self._listing(_ENTRIES) if n.endswith(".json")
        }
        for file in sorted(manifest_files - set(manifests)):  # unreadable manifests
            self._remote(
                "removing a damaged manifest", self.fs.rm_file, self._key(f"{_ENTRIES}/{file}.json")
            )
            report.removed.append(file)
        tags = {file: data.get("tag") for file, data in manifests.items()}
        objects = self._objects()
        for entry in self._all_entries():
            tag, info = tags.get(entry.file), objects.get(entry.file)
            if tag is not None and info is not None and tag == _tag_of(info):
                continue  # the object was not rewritten since it was recorded: no download
            problem = self._check_remote(entry, hashes=True, objects=objects)
            if problem is None:
                continue
            if self._restore_from_copy(entry):
                report.restored.append(entry.file)
            elif problem.kind == "missing":
                self._remote(
                    "removing a manifest",
                    self.fs.rm_file,
                    self._key(f"{_ENTRIES}/{entry.file}.json"),
                )
                report.removed.append(entry.file)
            elif accept_changed:
                self._adopt(entry.file, report, replace=True)
            else:
                report.problems.append(
                    StoreProblem(
                        "changed",
                        entry.file,
                        f"{problem.message}; kept the recorded hash, so load refuses the file "
                        "(restore it, or sync with accept_changed to record it as it is now)",
                    )
                )
        recorded = {e.file for e in self._all_entries()}
        unrecorded = sorted(f for f in files if f not in recorded and parse_name(f) is not None)
        rows: builtins.list[tuple[tuple[str, int, str], RegistryRow]] = []
        for file in unrecorded:
            parsed = parse_name(file)
            if parsed is None or parsed.kind == "best":
                continue
            row = self._file_row(file, report)
            if row is not None:
                rows.append(((row.created, parsed.duplicate, file), row))
        for _, row in sorted(rows, key=lambda item: item[0]):  # in save order: ties stay fair
            try:
                manifest = self._manifest(row, tag=self._tag(row.file))
                self._write_json(f"{_ENTRIES}/{row.file}.json", manifest, exclusive=True)
            except FileExistsError:
                continue  # a slow save committed it meanwhile
            report.adopted.append(row.file)
        self._sync_rules(report)
        for name, version in sorted({(e.name, e.version) for e in self.list(kind="model")}):
            if self._refresh_best(name, version) or self._stale_copy(name, version):
                report.relinked.append(best_name(name, version))
        if trackers:
            self._sync_trackers(report)
        return report

    def _stale_copy(self, name: str, version: str) -> bool:
        """Compare the best copy's bytes with the best model's; copy again when they differ."""
        best = [e for e in self.bests() if (e.name, e.version) == (name, version)]
        link = best_name(name, version)
        if not best or self._size(link) is None or self._hash(link) == best[0].sha256:
            return False
        self._copy_best(best[0], link)
        return True

    def _restore_from_copy(self, entry: Entry) -> bool:
        """Put back a recorded best model that was deleted or damaged from its best copy."""
        if not entry.is_best:
            return False
        link = best_name(entry.name, entry.version)
        if self._size(link) != entry.size_bytes or self._hash(link) != entry.sha256:
            return False
        self._remote(
            "restoring the best model", self.fs.copy, self._key(link), self._key(entry.file)
        )
        return True

    def _file_row(self, file: str, report: SyncReport) -> RegistryRow | None:
        """The manifest row of a store file, from its bytes and embedded metadata."""
        try:
            with self._downloaded(file) as local:
                size = local.stat().st_size
                return self._row(file, read_metadata(local), sha256_file(local), size)
        except VideoInterpreterError as exc:
            report.problems.append(StoreProblem("unreadable", file, f"not adopted: {exc}"))
            return None

    def _adopt(self, file: str, report: SyncReport, *, replace: bool) -> None:
        row = self._file_row(file, report)
        if row is None:
            return
        manifest = self._manifest(row, tag=self._tag(file))
        if replace:  # re-recorded as it is now, keeping its pin and its place in save order
            with contextlib.suppress(ValueError):
                old = self._read_json(f"{_ENTRIES}/{file}.json") or {}
                manifest.update({k: old[k] for k in ("pinned", "saved_ns") if k in old})
        try:
            self._write_json(f"{_ENTRIES}/{file}.json", manifest, exclusive=not replace)
        except FileExistsError:
            return  # a slow save committed it meanwhile
        (report.updated if replace else report.adopted).append(file)

    def _sync_rules(self, report: SyncReport) -> None:
        """A model name and version whose rule file is gone gets the rule its newest model file
        records (``ModelStore.save`` embeds it)."""
        rules = self._rules()
        for name, version in sorted({(e.name, e.version) for e in self.list()}):
            if rules.get((name, version), {}).get("metric") is not None:
                continue
            models = sorted(self.find(name, version, kind="model"), key=lambda e: e.created)
            for entry in reversed(models):
                with self._downloaded(entry.file) as local:
                    monitor = read_metadata(local).monitor
                if monitor is not None and monitor[1] in ("max", "min"):
                    self._write_json(
                        self._rule_file(name, version),
                        {
                            "name": name,
                            "version": version,
                            "metric": monitor[0],
                            "mode": monitor[1],
                        },
                        exclusive=False,
                    )
                    break
            else:
                if models:
                    report.problems.append(
                        StoreProblem(
                            "best",
                            best_name(name, version),
                            f"no best model chosen for {name} {version}: its files do not "
                            "record which metric ranks them; choose with store.set_monitor(...)",
                        )
                    )


def _tag_of(info: Mapping[str, Any]) -> str:
    tag = info.get("ETag") or info.get("etag")
    return str(tag) if tag else f"{info.get('size')}:{info.get('mtime', info.get('LastModified'))}"


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, tuple | list) else (str(protocol),)
