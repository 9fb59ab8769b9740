"""Trackers: optional sinks that mirror the store's saves to MLflow or Weights & Biases.

The store saves locally first; each tracker then records the same model (weights as
``.safetensors``, spec, summary, diagram, metrics, epoch) and moves its ``best`` alias when the
store's best changes. A tracker that fails costs nothing saved: the store warns
(``TrackerWarning``) and ``ModelStore.sync(trackers=True)`` (``models sync --trackers``)
replays what each tracker lacks::

    from video_interpreter.tracking import MLflowTracker, WandbTracker
    store = ModelStore("models/saved_models", trackers=[
        MLflowTracker("sqlite:///mlflow.db", registered_model="{version}"),
        WandbTracker("video-models", mode="offline"),
    ])
    store.save(model, metrics={"acc": 0.9})
    load_model("models:/v1@best")             # through MLflow's artifact store, no pickle

mlflow and wandb are optional (extras ``mlflow``, ``wandb``): importing this package needs
neither, using a tracker needs its own.
"""

from ._base import Bundle as Bundle
from ._base import TrackedSave, Tracker, TrackerError, TrackerWarning
from ._base import make_bundle as make_bundle
from ._mlflow import MLflowTracker
from ._parse import parse_tracker
from ._wandb import OfflineArtifact as OfflineArtifact
from ._wandb import WandbTracker
from ._wandb import read_offline_artifacts as read_offline_artifacts

__all__ = [
    "MLflowTracker",
    "TrackedSave",
    "Tracker",
    "TrackerError",
    "TrackerWarning",
    "WandbTracker",
    "parse_tracker",
]
