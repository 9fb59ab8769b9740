"""The Weights & Biases sink: one run per saved model, its files logged as a ``model``
artifact of ``{name}-{version}`` with the aliases ``latest`` and, when it is the store's new best,
``best`` (W&B moves an alias to the newest version that claims it).

In offline mode (``mode="offline"``, nothing leaves the machine until ``wandb sync``) the
records are W&B's run logs under ``dir``; ``has`` reads them back (``read_offline_artifacts``),
so ``models sync --trackers`` knows what an offline tracker already holds.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._base import Bundle, TrackedSave, Tracker, TrackerError

__all__ = ["OfflineArtifact", "WandbTracker", "read_offline_artifacts"]

logger = logging.getLogger(__name__)

_ARTIFACT_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise TrackerError(
            "the W&B tracker needs wandb: pip install 'video-interpreter[wandb]'"
        ) from exc
    return wandb


def artifact_name(name: str, version: str) -> str:
    """The artifact collection of a model name and version (W&B allows ``[A-Za-z0-9_.-]``)."""
    return _ARTIFACT_BAD.sub("-", f"{name}-{version}").strip("-")


@dataclass(frozen=True)
class OfflineArtifact:
    """A model artifact recorded in an offline run's log."""

    run_log: Path
    name: str
    aliases: tuple[str, ...]
    metadata: dict[str, Any]
    files: tuple[str, ...]


# W&B's run log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then LevelDB's log format
# (32 KiB blocks of records: crc32c, length, type; a record may span blocks) carrying W&B's
# own protobuf ``Record`` messages.
_HEADER = struct.Struct("<4sHB")
_RECORD = struct.Struct("<IHB")
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(data: bytes) -> Iterator[bytes]:
    if len(data) < _HEADER.size or _HEADER.unpack_from(data)[:2] != (b":W&B", 0xBEE1):
        return
    offset, pending = _HEADER.size, b""
    while offset + _RECORD.size <= len(data):
        room = _BLOCK - offset % _BLOCK
        if room < _RECORD.size:  # the block's tail is padding
            offset += room
            continue
        _, length, kind = _RECORD.unpack_from(data, offset)
        start = offset + _RECORD.size
        chunk = data[start : start + length]
        offset = start + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        else:  # zero padding or a torn tail: nothing more to read
            return


def read_offline_artifacts(directory: str | Path) -> list[OfflineArtifact]:
    """Every artifact logged by the offline runs under ``directory`` (the ``dir`` given to
    ``wandb.init``), in log order.

    >>> [(a.name, a.aliases) for a in read_offline_artifacts("wandb-runs")]  # doctest: +SKIP
    [('video_interpreter-v1', ('best', 'latest'))]
    """
    from wandb.proto import wandb_internal_pb2

    found: list[OfflineArtifact] = []
    # Runs in log order: a run directory's name has a one-second timestamp and a random id, so
    # runs started within one second are ordered by when their log was last written.
    logs = sorted(
        Path(directory).glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime_ns
    )
    for log in logs:
        for raw in _records(log.read_bytes()):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            try:
                record.ParseFromString(raw)
            except Exception:  # a torn record at the end of a killed run's log
                break
            if record.WhichOneof("record_type") != "artifact":
                continue
            artifact = record.artifact
            metadata = json.loads(artifact.metadata) if artifact.metadata else {}
            files = tuple(sorted(entry.path for entry in artifact.manifest.contents))
            found.append(
                OfflineArtifact(
                    log, artifact.name, tuple(sorted(artifact.aliases)), metadata, files
                )
            )
    return found


class WandbTracker(Tracker):
    """Mirror the store's saves to Weights & Biases as model artifacts.

    >>> tracker = WandbTracker("video-models", mode="offline", dir="wandb-runs")
    >>> store = ModelStore("models/saved_models", trackers=[tracker])  # doctest: +SKIP
    """

    def __init__(
        self,
        project: str,
        *,
        entity: str | None = None,
        mode: Literal["online", "offline"] = "online",
        dir: str | Path | None = None,
    ) -> None:
        if mode not in ("online", "offline"):
            raise TrackerError(f"W&B mode must be 'online' or 'offline', got {mode!r}")
        self.project = project
        self.entity = entity
        self.mode = mode
        self.dir = Path(dir) if dir is not None else Path.cwd()
        where = f"{entity}/{project}" if entity else project
        self.url = f"wandb:{where}" + (f" (offline, {self.dir})" if mode == "offline" else "")

    def _fail(self, what: str, exc: BaseException) -> TrackerError:
        return TrackerError(f"W&B {self.url}: {what} failed: {exc}")

    def has(self, save: TrackedSave) -> bool:
        if self.mode == "offline":
            return any(
                a.metadata.get("file") == save.file and a.metadata.get("sha256") == save.sha256
                for a in read_offline_artifacts(self.dir)
            )
        wandb = _import_wandb()
        try:
            api = wandb.Api()
            path = f"{self.entity or api.default_entity}/{self.project}"
            collection = artifact_name(save.name, save.version)
            versions = api.artifacts("model", f"{path}/{collection}")
            return any(
                v.metadata.get("file") == save.file and v.metadata.get("sha256") == save.sha256
                for v in versions
            )
        except Exception as exc:
            if "not found" in str(exc).lower():
                return False
            raise self._fail("looking up the artifacts", exc) from exc

    def log_save(self, save: TrackedSave, bundle: Bundle, *, is_best: bool) -> None:
        wandb = _import_wandb()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            run = wandb.init(
                project=self.project,
                entity=self.entity,
                mode=self.mode,
                dir=str(self.dir),
                name=save.stem,
                job_type="model-save",
                config=dict(bundle.params),
                notes=save.notes or None,
                reinit="create_new",
            )
        except Exception as exc:
            raise self._fail("starting a run", exc) from exc
        try:
            values: dict[str, float] = dict(save.metrics)
            if save.epoch is not None:
                values["epoch"] = float(save.epoch)
            run.log(values)
            artifact = wandb.Artifact(
                artifact_name(save.name, save.version),
                type="model",
                metadata={
                    "file": save.file,
                    "sha256": save.sha256,
                    "weights_sha256": bundle.weights_sha256,
                    "metrics": dict(save.metrics),
                    "epoch": save.epoch,
                    "store": save.store,
                },
            )
            artifact.add_dir(str(bundle.directory))
            run.log_artifact(artifact, aliases=["latest", "best"] if is_best else ["latest"])
        except Exception as exc:
            run.finish(exit_code=1)
            raise self._fail("logging the model artifact", exc) from exc
        run.finish()
        logger.info("W&B %s: recorded %s", self.url, save.file)

    def set_best(self, name: str, version: str, file: str) -> None:
        if self.mode == "offline":
            collection = artifact_name(name, version)
            aliased = [
                a
                for a in read_offline_artifacts(self.dir)
                if a.name == collection and "best" in a.aliases
            ]
            if aliased and aliased[-1].metadata.get("file") == file:
                return  # the newest version claiming "best" holds it: W&B gives it the alias
            raise TrackerError(
                f"W&B {self.url}: moving the alias best to an earlier version ({file}) needs "
                "online mode (an offline run can only alias what it logs itself)"
            )
        wandb = _import_wandb()
        try:
            api = wandb.Api()
            path = f"{self.entity or api.default_entity}/{self.project}"
            for artifact in api.artifacts("model", f"{path}/{artifact_name(name, version)}"):
                if artifact.metadata.get("file") == file:
                    if "best" not in artifact.aliases:
                        artifact.aliases.append("best")
                        artifact.save()
                    return
        except Exception as exc:
            raise self._fail("moving the alias best", exc) from exc
        raise TrackerError(f"W&B {self.url}: no artifact records {file}; sync records it first")
