"""What every tracker receives and promises: one saved model, described once (``TrackedSave``),
its files for the tracker's artifact store (``Bundle``), and the three calls a tracker answers.

A tracker is a sink: the store saves locally first and mirrors the save afterwards, so a
tracker that fails never costs a saved model. ``has`` lets ``ModelStore.sync(trackers=True)``
replay exactly what a tracker is missing.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import save_model
from ..errors import StoreError

__all__ = ["Bundle", "TrackedSave", "Tracker", "TrackerError", "TrackerWarning", "make_bundle"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "spec.yaml"
SUMMARY_FILE = "summary.txt"


class TrackerError(StoreError):
    """A tracker is unreachable, misconfigured or refused a record; the local save stands."""


class TrackerWarning(UserWarning):
    """A save was kept in the store but a tracker could not mirror it (``models sync
    --trackers`` replays it)."""


@dataclass(frozen=True)
class TrackedSave:
    """One saved model of the store, as a tracker records it."""

    file: str
    name: str
    version: str
    metric: str | None
    mode: str | None
    metrics: Mapping[str, float]
    epoch: int | None
    sha256: str
    created: str
    notes: str
    store: str  # the store's root, for the record

    @property
    def stem(self) -> str:
        return self.file.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Bundle:
    """The files a tracker uploads for one save, in one local directory: the weights as
    ``model.safetensors`` (no pickle: the loader rebuilds the model from the embedded spec),
    ``spec.yaml``, ``summary.txt`` and the diagram (``diagram.svg``, or ``diagram.dot`` where
    Graphviz is not installed)."""

    directory: Path
    weights_sha256: str
    params: Mapping[str, str]

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS_FILE


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested spec as ``{"backbone.0.type": "Conv3d", ...}`` (trackers take flat params)."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif (
        isinstance(value, list | tuple)
        and value
        and any(isinstance(v, Mapping | list | tuple) for v in value)
    ):
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "value"] = str(value)
    return out


@contextlib.contextmanager
def make_bundle(model: nn.Module, save: TrackedSave) -> Iterator[Bundle]:
    """Write a save's artifacts to a temporary directory, removed on exit.

    >>> with make_bundle(model, store.tracked_save(entry)) as bundle:  # doctest: +SKIP
    ...     sorted(p.name for p in bundle.directory.iterdir())
    ['diagram.svg', 'model.safetensors', 'spec.yaml', 'summary.txt']
    """
    from ..diagram import DiagramError, render_diagram
    from ..summary import summarize

    spec = getattr(model, "spec", None)
    if spec is None:
        raise TrackerError(f"{save.file}: the model has no spec to record")
    with tempfile.TemporaryDirectory(prefix="vi-track-") as tmp:
        directory = Path(tmp)
        saved = save_model(
            model,
            directory / WEIGHTS_FILE,
            epoch=save.epoch,
            metrics=dict(save.metrics),
            notes=save.notes or None,
            monitor=(save.metric, save.mode) if save.metric and save.mode else None,
        )
        (directory / SPEC_FILE).write_text(spec.to_yaml(), encoding="utf-8")
        (directory / SUMMARY_FILE).write_text(summarize(model).to_text(), encoding="utf-8")
        try:
            render_diagram(model, directory / "diagram.svg")
        except DiagramError as exc:  # Graphviz missing or failing: the DOT text still says it
            logger.info("%s: no SVG diagram (%s); recording diagram.dot", save.file, exc)
            render_diagram(model, directory / "diagram.dot")
        yield Bundle(directory, saved.sha256, flatten(spec.to_dict()))


class Tracker(abc.ABC):
    """A sink for the store's saves. Subclasses name where they send things in ``url``."""

    url: str

    @abc.abstractmethod
    def log_save(self, save: TrackedSave, bundle: Bundle, *, is_best: bool) -> None:
        """Record one save (a run, its metrics and artifacts, a model version)."""

    @abc.abstractmethod
    def has(self, save: TrackedSave) -> bool:
        """Whether this save is already recorded completely."""

    @abc.abstractmethod
    def set_best(self, name: str, version: str, file: str) -> None:
        """Point the ``best`` alias of ``name``/``version`` at the record of ``file``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
