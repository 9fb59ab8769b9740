"""The MLflow sink: one run per saved model, a registered-model version, the alias ``best``.

Each save becomes a run in ``experiment`` with the spec flattened into parameters, every metric
(at step = epoch) and the epoch, tags naming the store file and its sha256, and the bundle
(``model.safetensors``, ``spec.yaml``, ``summary.txt``, the diagram) under the run's ``model/``
artifacts. That directory becomes a new version of the registered model named by
``registered_model`` (a format string over ``name`` and ``version``); the alias ``best`` (an
alias: stages are deprecated) follows the store's best model. ``load_model("models:/NAME@best")``
reads it back without MLflow's model flavours, so without pickle.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.parse
from typing import Any

from ._base import Bundle, TrackedSave, Tracker, TrackerError

__all__ = ["MLflowTracker"]

logger = logging.getLogger(__name__)

TAG_FILE = "video_interpreter.file"
TAG_SHA256 = "video_interpreter.sha256"
TAG_WEIGHTS = "video_interpreter.weights_sha256"
TAG_STORE = "video_interpreter.store"
ARTIFACT_DIR = "model"
_PARAM_CHUNK = 100  # MLflow takes at most 100 params per batch
_PARAM_VALUE_MAX = 6000  # and values of at most 6000 characters


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise TrackerError(
            "the MLflow tracker needs mlflow: pip install 'video-interpreter[mlflow]'"
        ) from exc
    return mlflow


def check_reachable(url: str, *, timeout: float = 5.0) -> None:
    """Fail fast, naming ``url``, when an http(s) tracking server does not answer: MLflow's
    own client retries a refused connection for minutes before it gives up."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or parsed.hostname is None:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return
    except OSError as exc:
        raise TrackerError(
            f"MLflow tracking server {url} is unreachable ({exc.strerror or exc}); the model "
            "is saved in the store: start the server, then `video-interpreter models sync "
            "--trackers mlflow:URL` records what it missed"
        ) from exc


class MLflowTracker(Tracker):
    """Mirror the store's saves to MLflow.

    >>> tracker = MLflowTracker("sqlite:///mlflow.db", registered_model="{version}")
    >>> store = ModelStore("models/saved_models", trackers=[tracker])  # doctest: +SKIP
    >>> load_model("models:/v1@best")  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        experiment: str = "video_interpreter",
        registered_model: str = "{name}_{version}",
        artifact_location: str | None = None,
    ) -> None:
        self.url = tracking_uri
        self.experiment = experiment
        self.registered_model = registered_model
        self.artifact_location = artifact_location
        self._client: Any = None
        self._experiment_id: str | None = None

    def model_name(self, name: str, version: str) -> str:
        try:
            return self.registered_model.format(name=name, version=version)
        except (KeyError, IndexError, ValueError) as exc:
            raise TrackerError(
                f"registered_model {self.registered_model!r} is not a format string over "
                f"{{name}} and {{version}}: {exc}"
            ) from exc

    # -- connection ---------------------------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        mlflow = _import_mlflow()
        try:
            return fn(*args, **kwargs)
        except mlflow.exceptions.MlflowException as exc:
            raise TrackerError(f"MLflow at {self.url}: {what} failed: {exc.message}") from exc
        except OSError as exc:
            raise TrackerError(f"MLflow at {self.url}: {what} failed: {exc}") from exc

    def client(self) -> Any:
        """MLflow's client for this tracking URI, after a quick check that an http(s) server
        answers (every call: a server can go away between two saves)."""
        mlflow = _import_mlflow()
        check_reachable(self.url)
        if self._client is None:
            self._client = mlflow.MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            client = self.client()
            found = self._call(
                "finding the experiment", client.get_experiment_by_name, self.experiment
            )
            if found is not None:
                self._experiment_id = str(found.experiment_id)
            else:
                self._experiment_id = str(
                    self._call(
                        "creating the experiment",
                        client.create_experiment,
                        self.experiment,
                        artifact_location=self.artifact_location,
                    )
                )
        return self._experiment_id

    # -- records ------------------------------------------------------------------------------
    def _run_of(self, save: TrackedSave) -> Any:
        """The finished run recording ``save`` (same file, same bytes), or None."""
        client = self.client()
        runs = self._call(
            "searching runs",
            client.search_runs,
            [self.experiment_id()],
            filter_string=(
                f"tags.`{TAG_FILE}` = '{save.file}' and tags.`{TAG_SHA256}` = '{save.sha256}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=1,
        )
        return runs[0] if runs else None

    def _version_of(self, name: str, version: str, run_id: str) -> Any:
        client = self.client()
        found = self._call(
            "searching model versions",
            client.search_model_versions,
            f"name = '{self.model_name(name, version)}' and run_id = '{run_id}'",
        )
        return found[0] if found else None

    def has(self, save: TrackedSave) -> bool:
        run = self._run_of(save)
        return (
            run is not None
            and self._version_of(save.name, save.version, run.info.run_id) is not None
        )

    def log_save(self, save: TrackedSave, bundle: Bundle, *, is_best: bool) -> None:
        mlflow = _import_mlflow()
        from mlflow.entities import Metric, Param, RunTag

        client = self.client()
        run = self._run_of(save)
        if run is None:
            tags = {
                TAG_FILE: save.file,
                TAG_SHA256: save.sha256,
                TAG_WEIGHTS: bundle.weights_sha256,
                TAG_STORE: save.store,
                "mlflow.note.content": save.notes,
            }
            run = self._call(
                "creating a run",
                client.create_run,
                self.experiment_id(),
                run_name=save.stem,
                tags=tags,
            )
            run_id = run.info.run_id
            try:
                step = save.epoch or 0
                stamp = int(mlflow.utils.time.get_current_time_millis())
                metrics = [Metric(k, v, stamp, step) for k, v in save.metrics.items()]
                if save.epoch is not None:
                    metrics.append(Metric("epoch", float(save.epoch), stamp, step))
                params = [Param(k, v[:_PARAM_VALUE_MAX]) for k, v in sorted(bundle.params.items())]
                for start in range(0, max(len(params), 1), _PARAM_CHUNK):
                    self._call(
                        "logging parameters and metrics",
                        client.log_batch,
                        run_id,
                        metrics=metrics if start == 0 else [],
                        params=params[start : start + _PARAM_CHUNK],
                        tags=[RunTag("video_interpreter.kind", "model")] if start == 0 else [],
                    )
                self._call(
                    "uploading the artifacts",
                    client.log_artifacts,
                    run_id,
                    str(bundle.directory),
                    ARTIFACT_DIR,
                )
            except BaseException:
                # Best effort: the original error is what the user needs to see.
                with contextlib.suppress(Exception):
                    client.set_terminated(run_id, "FAILED")
                raise
            self._call("finishing the run", client.set_terminated, run_id, "FINISHED")
        else:
            run_id = run.info.run_id
        model = self.model_name(save.name, save.version)
        if self._version_of(save.name, save.version, run_id) is None:
            try:
                self._call("finding the registered model", client.get_registered_model, model)
            except TrackerError:
                self._call("registering the model", client.create_registered_model, model)
            self._call(
                "creating a model version",
                client.create_model_version,
                model,
                f"{run.info.artifact_uri}/{ARTIFACT_DIR}",
                run_id,
                tags={
                    TAG_FILE: save.file,
                    TAG_SHA256: save.sha256,
                    TAG_WEIGHTS: bundle.weights_sha256,
                },
            )
        logger.info("MLflow %s: recorded %s as %s (run %s)", self.url, save.file, model, run_id)
        if is_best:
            self.set_best(save.name, save.version, save.file)

    def set_best(self, name: str, version: str, file: str) -> None:
        client = self.client()
        model = self.model_name(name, version)
        found = self._call(
            "searching model versions",
            client.search_model_versions,
            f"name = '{model}' and tags.`{TAG_FILE}` = '{file}'",
        )
        if not found:
            raise TrackerError(
                f"MLflow at {self.url}: {file} has no version of {model} to call best; "
                "`models sync --trackers` records it first"
            )
        newest = max(found, key=lambda v: int(v.version))
        self._call(
            "moving the alias best",
            client.set_registered_model_alias,
            model,
            "best",
            str(newest.version),
        )
