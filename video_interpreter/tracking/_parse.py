"""Trackers from command-line words: ``mlflow:URI``, ``wandb:PROJECT``, ``wandb-offline:...``."""

from __future__ import annotations

from ._base import Tracker, TrackerError
from ._mlflow import MLflowTracker
from ._wandb import WandbTracker

__all__ = ["parse_tracker"]

_FORMS = "mlflow:TRACKING_URI, wandb:[ENTITY/]PROJECT or wandb-offline:[ENTITY/]PROJECT"


def parse_tracker(text: str) -> Tracker:
    """A tracker from its command-line form.

    >>> parse_tracker("mlflow:sqlite:///mlflow.db")
    MLflowTracker('sqlite:///mlflow.db')
    """
    kind, sep, target = text.partition(":")
    if not sep or not target:
        raise TrackerError(f"tracker {text!r} is not one of {_FORMS}")
    if kind == "mlflow":
        return MLflowTracker(target)
    if kind in ("wandb", "wandb-offline"):
        entity, _, project = target.rpartition("/")
        return WandbTracker(
            project,
            entity=entity or None,
            mode="offline" if kind == "wandb-offline" else "online",
        )
    raise TrackerError(f"tracker {text!r}: unknown kind {kind!r}; use {_FORMS}")
