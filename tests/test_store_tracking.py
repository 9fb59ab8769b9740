"""Trackers as sinks of the store: MLflow (SQLite backend in a temporary directory) and W&B
(offline mode); a tracker that fails never costs the local save, and sync replays it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from video_interpreter.checkpoint import load_model
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError, StoreError
from video_interpreter.model import VideoInterpreter, build_model
from video_interpreter.store import ModelStore
from video_interpreter.tracking import (
    MLflowTracker,
    TrackerError,
    TrackerWarning,
    WandbTracker,
    parse_tracker,
    read_offline_artifacts,
)

from .conftest import tiny_spec

REPO = Path(__file__).resolve().parents[1]


def tiny_model(seed: int, version: str = "v1") -> VideoInterpreter:
    torch.manual_seed(seed)
    return build_model(tiny_spec(name="tracked", version=version, out_channels=4))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite tracking database for the module (creating one costs seconds); each test
    uses its own experiment and registered-model names."""
    return tmp_path_factory.mktemp("mlflow")


def mlflow_tracker(db: Path, tag: str) -> MLflowTracker:
    return MLflowTracker(
        f"sqlite:///{db / 'mlflow.db'}",
        experiment=f"exp-{tag}",
        registered_model=f"{tag}-{{version}}",
        artifact_location=str(db / "artifacts" / tag),
    )


def test_each_save_becomes_a_run_a_model_version_and_best_follows_the_store(
    mlflow_db: Path, tmp_path: Path
) -> None:
    tracker = mlflow_tracker(mlflow_db, "runs")
    store = ModelStore(tmp_path / "store", trackers=[tracker])
    store.save(tiny_model(0), metrics={"acc": 0.5, "loss": 1.0}, epoch=1, notes="first")
    store.save(tiny_model(1), metrics={"acc": 0.7, "loss": 0.8}, epoch=2)
    store.save(tiny_model(2), metrics={"acc": 0.6, "loss": 0.9}, epoch=3)
    assert store.tracker_errors == []

    client = tracker.client()
    runs = client.search_runs([tracker.experiment_id()], order_by=["attributes.start_time ASC"])
    assert [r.info.run_name for r in runs] == [
        "tracked_v1_acc_0.5",
        "tracked_v1_acc_0.7",
        "tracked_v1_acc_0.6",
    ]
    first = runs[0].data
    assert first.metrics == {"acc": 0.5, "loss": 1.0, "epoch": 1.0}
    assert first.params["name"] == "tracked"
    assert first.params["backbone.0.out_channels"] == "4"
    assert first.tags["video_interpreter.file"] == "tracked_v1_acc_0.5.pth"
    assert first.tags["video_interpreter.sha256"] == store.get("tracked_v1_acc_0.5.pth").sha256
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "model")}
    assert artifacts == {
        "model/model.safetensors",
        "model/spec.yaml",
        "model/summary.txt",
        "model/diagram.svg",
    }
    versions = client.search_model_versions("name = 'runs-v1'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    assert int(client.get_model_version_by_alias("runs-v1", "best").version) == 2

    store.set_monitor("tracked", "v1", metric="loss", mode="max")  # now 0.5 (loss 1.0) is best
    assert int(client.get_model_version_by_alias("runs-v1", "best").version) == 1


_CHILD = textwrap.dedent(
    """
    import pickle, sys
    import torch
    from safetensors.torch import load_file, save_file

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    pickle.load = pickle.loads = torch.load = refuse
    pickle.Unpickler = refuse
    from video_interpreter.checkpoint import load_model

    clip = load_file(sys.argv[1])["clip"]
    outputs = {}
    for key, uri in (("best", sys.argv[3]), ("number", sys.argv[4])):
        model = load_model(uri).eval()
        with torch.no_grad():
            outputs[key] = model(clip)["action"].contiguous()
    save_file(outputs, sys.argv[2])
    """
)


def test_models_uri_loads_in_a_fresh_process_without_pickle_bit_identically(
    mlflow_db: Path, tmp_path: Path
) -> None:
    tracker = mlflow_tracker(mlflow_db, "fresh")
    store = ModelStore(tmp_path / "store", trackers=[tracker])
    models = [tiny_model(seed) for seed in range(3)]
    for model, acc in zip(models, (0.4, 0.9, 0.6), strict=True):
        store.save(model, metrics={"acc": acc})
    clip = torch.randn(2, 3, 4, 16, 16)
    save_file({"clip": clip}, tmp_path / "clip.safetensors")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": tracker.url,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "out.safetensors"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(tmp_path / "clip.safetensors"),
            str(out),
            "models:/fresh-v1@best",
            "models:/fresh-v1/3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = load_file(out)
    with torch.no_grad():
        expected_best = models[1].eval()(clip)["action"]
        expected_third = models[2].eval()(clip)["action"]
    assert torch.equal(got["best"], expected_best)
    assert torch.equal(got["number"], expected_third)


def test_a_bad_models_uri_is_an_error_naming_it(
    mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_db / 'mlflow.db'}")
    with pytest.raises(CheckpointError, match="models:/no-such-model@best"):
        load_model("models:/no-such-model@best")
    with pytest.raises(CheckpointError, match="names no version"):
        load_model("models:/v1")


def test_an_unreachable_tracker_keeps_the_save_and_sync_replays_it(
    mlflow_db: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    root = tmp_path / "store"
    store = ModelStore(root, trackers=[MLflowTracker(url)])
    with pytest.warns(TrackerWarning, match=url.replace(".", r"\.")) as caught:
        entry = store.save(tiny_model(0), metrics={"acc": 0.8})
    assert "unreachable" in str(caught[0].message)
    assert [e.file for e in store.list()] == [entry.file]
    assert store.load(entry) is not None
    assert len(store.tracker_errors) == 1

    tracker = mlflow_tracker(mlflow_db, "replay")
    replaying = ModelStore(root, trackers=[tracker])
    report = replaying.sync(trackers=True)
    assert report.tracked == [f"{entry.file} -> {tracker.url}"]
    assert report.problems == []
    assert tracker.has(replaying.tracked_save(entry))
    client = tracker.client()
    assert int(client.get_model_version_by_alias("replay-v1", "best").version) == 1
    assert replaying.sync(trackers=True).tracked == []  # nothing missing any more


def test_models_sync_trackers_on_the_command_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MLflow's default artifact root is ./mlruns, fixed when a tracking URI is first opened:
    # a database of its own, opened from here, keeps the artifacts in the temporary folder.
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "store"
    ModelStore(root).save(tiny_model(0), metrics={"acc": 0.3})
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    code = main(["models", "sync", "--root", str(root), "--json", "--trackers", f"mlflow:{uri}"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tracked"] == [f"tracked_v1_acc_0.3.pth -> {uri}"]


def test_wandb_offline_logs_each_save_as_a_model_artifact_with_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = WandbTracker("video-models", mode="offline", dir=tmp_path / "wandb")
    store = ModelStore(tmp_path / "store", trackers=[tracker])
    for seed, acc in ((0, 0.5), (1, 0.7), (2, 0.6)):
        store.save(tiny_model(seed), metrics={"acc": acc}, epoch=seed)
    assert store.tracker_errors == []
    logged = read_offline_artifacts(tmp_path / "wandb")
    assert [(a.name, a.metadata["file"], a.aliases) for a in logged] == [
        ("tracked-v1", "tracked_v1_acc_0.5.pth", ("best", "latest")),
        ("tracked-v1", "tracked_v1_acc_0.7.pth", ("best", "latest")),
        ("tracked-v1", "tracked_v1_acc_0.6.pth", ("latest",)),
    ]
    assert logged[0].files == ("diagram.svg", "model.safetensors", "spec.yaml", "summary.txt")
    assert logged[1].metadata["sha256"] == store.best().sha256
    report = store.sync(trackers=True)
    assert (report.tracked, report.problems) == ([], [])


def test_tracker_words_parse_and_bad_ones_are_explained() -> None:
    assert isinstance(parse_tracker("mlflow:http://localhost:5000"), MLflowTracker)
    offline = parse_tracker("wandb-offline:team/proj")
    assert isinstance(offline, WandbTracker)
    assert (offline.entity, offline.project, offline.mode) == ("team", "proj", "offline")
    with pytest.raises(TrackerError, match="mlflow:TRACKING_URI"):
        parse_tracker("neptune:x")
    with pytest.raises(StoreError, match="format string"):
        MLflowTracker("sqlite:///x.db", registered_model="{nam}").model_name("a", "b")


def test_checkpoints_are_not_sent_to_trackers(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = ModelStore(tmp_path / "store", trackers=[MLflowTracker(url)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.save_checkpoint(tiny_model(0), epoch=1)


_WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys
    for name in ("mlflow", "wandb", "fsspec", "s3fs"):
        sys.modules[name] = None  # as if not installed
    import video_interpreter.cli, video_interpreter.store, video_interpreter.tracking
    from video_interpreter.checkpoint import load_model
    from video_interpreter.errors import CheckpointError, StoreError
    from video_interpreter.store import ModelStore
    from video_interpreter.tracking import MLflowTracker
    messages = []
    for attempt in (
        lambda: MLflowTracker("sqlite:///x.db").client(),
        lambda: load_model("s3://bucket/model.pth"),
        lambda: ModelStore("s3://bucket/models"),
    ):
        try:
            attempt()
        except (CheckpointError, StoreError) as exc:
            messages.append(str(exc))
    print("\\n".join(messages))
    """
)


def test_the_package_imports_without_the_optional_extras() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "the MLflow tracker needs mlflow: pip install 'video-interpreter[mlflow]'",
        "s3://bucket/model.pth: URLs need fsspec: pip install 'video-interpreter[remote]'",
        "s3://bucket/models: URLs need fsspec: pip install 'video-interpreter[remote]'",
    ]
