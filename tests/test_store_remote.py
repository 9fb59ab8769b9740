"""The store on an object store: a local S3 server (moto's, started by the ``s3_bucket``
fixture), the commit protocol without rename or locks, crashes and concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from video_interpreter.checkpoint import load_model, save_model
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError, StoreError
from video_interpreter.model import VideoInterpreter, build_model
from video_interpreter.store import ModelStore, RemoteModelStore

from .conftest import tiny_spec

SPEC = tiny_spec(name="remote", version="v1", out_channels=4)


def tiny_model(seed: int = 0) -> VideoInterpreter:
    torch.manual_seed(seed)
    return build_model(SPEC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outputs(model: VideoInterpreter, clip: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        result: torch.Tensor = model.eval()(clip)["action"]
    return result


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_model_and_load_model_take_s3_urls(s3_bucket: str, suffix: str) -> None:
    model = tiny_model(3)
    url = f"{s3_bucket}/runs/model{suffix}"
    saved = save_model(model, url, metrics={"acc": 0.5})
    assert saved.url == url
    loaded = load_model(url, verify=saved.sha256)
    clip = torch.randn(1, 3, 4, 16, 16)
    assert torch.equal(outputs(loaded, clip), outputs(model, clip))


def test_the_registry_is_manifests_beside_the_files(s3_bucket: str) -> None:
    store = ModelStore(f"{s3_bucket}/models")
    entry = store.save(tiny_model(), metrics={"acc": 0.5})
    assert isinstance(store, RemoteModelStore)
    fs = store.fs
    base = store.root.as_posix()
    manifest = json.loads(fs.cat_file(f"{base}/_registry/entries/{entry.file}.json"))
    assert (manifest["file"], manifest["sha256"]) == (entry.file, entry.sha256)
    assert entry.url == f"{s3_bucket}/models/{entry.file}"
    assert not any(name.endswith(".sqlite") for name in fs.find(base))
    assert repr(store) == f"ModelStore('{s3_bucket}/models')"


def test_a_file_without_its_manifest_is_invisible_until_sync_adopts_it(s3_bucket: str) -> None:
    store = ModelStore(f"{s3_bucket}/models")
    store.save(tiny_model(0), metrics={"acc": 0.5})
    # What a save killed between its upload and its manifest leaves: the file alone.
    orphan = save_model(
        tiny_model(1),
        f"{s3_bucket}/models/remote_v1_acc_0.9.pth",
        metrics={"acc": 0.9},
        monitor=("acc", "max"),
    )
    assert [e.file for e in store.list()] == ["remote_v1_acc_0.5.pth"]
    assert [p.kind for p in store.verify()] == ["untracked"]
    report = store.sync()
    assert report.adopted == ["remote_v1_acc_0.9.pth"]
    assert store.best().sha256 == orphan.sha256
    assert store.verify() == []


def _save_forever(root: str, start: int, saved_one: Any) -> None:
    store = ModelStore(root)
    for step in range(start, start + 1000):
        store.save(tiny_model(step), metrics={"acc": step / 1000})
        saved_one.set()


def test_a_save_killed_at_random_points_keeps_the_previous_best(s3_bucket: str) -> None:
    root = f"{s3_bucket}/killed"
    store = ModelStore(root)
    store.save(tiny_model(0), metrics={"acc": 0.0})
    rng = random.Random(19)
    context = multiprocessing.get_context("fork")
    clip = torch.randn(1, 3, 4, 16, 16)
    repaired = 0  # trials whose kill left something for sync to repair
    for trial in range(20):
        before = store.best()
        saved_one = context.Event()
        child = context.Process(target=_save_forever, args=(root, (trial + 1) * 10, saved_one))
        child.start()
        # Kill at a random point of a later save (the first one also pays for the start-up).
        assert saved_one.wait(timeout=60)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join()
        # Before any repair: the previous best (or a better one that committed) loads.
        best = store.best()
        assert best.value is not None
        assert before.value is not None
        assert best.value >= before.value
        store.load(before)
        repaired += bool(store.verify(hashes=False))
        assert main(["models", "sync", "--root", root]) == 0
        assert store.verify(hashes=False) == []  # sizes, manifests and the best copy's marker
        best = store.best()
        assert best == max(store.list(), key=lambda e: e.value or 0.0)
        assert best.value is not None
        saved_from = tiny_model(round(best.value * 1000))  # the child saved step/1000
        assert torch.equal(outputs(store.load(best), clip), outputs(saved_from, clip))
    print(f"{repaired} of 20 kills left a file without its manifest or a stale best copy")
    assert repaired > 0  # the kills did land inside saves


def _save_some(root: str, worker: int) -> None:
    store = ModelStore(root)
    for step in range(5):  # every worker saves the same five names: claims must not collide
        store.save(tiny_model(worker * 10 + step), metrics={"acc": step / 10})


def test_four_processes_saving_at_once_lose_no_entry(s3_bucket: str) -> None:
    root = f"{s3_bucket}/shared"
    ModelStore(root)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_save_some, args=(root, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    store = ModelStore(root)
    entries = store.list()
    assert len(entries) == 20
    assert len({e.sha256 for e in entries}) == 20
    assert sorted(e.file for e in entries if e.value == 0.4) == [
        "remote_v1_acc_0.4-2.pth",
        "remote_v1_acc_0.4-3.pth",
        "remote_v1_acc_0.4-4.pth",
        "remote_v1_acc_0.4.pth",
    ]
    assert store.best().value == 0.4
    assert store.verify() == []


def test_an_unreachable_endpoint_is_an_error_naming_the_url(s3_endpoint: str) -> None:
    url = "s3://no-server/models"
    options = {
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
    }
    with pytest.raises(StoreError, match=f"{url}: reaching the store failed"):
        ModelStore(url, storage_options=options)


def test_a_missing_bucket_is_an_error_naming_it(s3_endpoint: str) -> None:
    with pytest.raises(StoreError, match="the bucket 'no-such-bucket' does not exist"):
        ModelStore("s3://no-such-bucket/models")
    with pytest.raises(CheckpointError, match=r"s3://no-such-bucket/x\.pth: downloading"):
        load_model("s3://no-such-bucket/x.pth")


def test_opening_a_missing_remote_store_without_create_is_an_error(s3_bucket: str) -> None:
    with pytest.raises(StoreError, match="no model store at s3://"):
        ModelStore(f"{s3_bucket}/nothing", create=False)


def test_sync_repairs_a_store_whose_first_save_never_committed(s3_bucket: str) -> None:
    root = f"{s3_bucket}/first"
    save_model(
        tiny_model(), f"{root}/remote_v1_acc_0.3.pth", metrics={"acc": 0.3}, monitor=("acc", "max")
    )  # the file of a first save killed before its manifest
    assert main(["models", "sync", "--root", root]) == 0
    store = ModelStore(root, create=False)
    assert [e.file for e in store.list()] == ["remote_v1_acc_0.3.pth"]
    assert store.best().file == "remote_v1_acc_0.3.pth"
    assert store.verify() == []


def test_the_cli_lists_and_verifies_a_remote_store(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = f"{s3_bucket}/cli"
    ModelStore(root).save(tiny_model(), metrics={"acc": 0.25})
    assert main(["models", "list", "--root", root, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["file"], e["path"]) for e in listed] == [
        ("remote_v1_acc_0.25.pth", f"{root}/remote_v1_acc_0.25.pth")
    ]
    assert main(["models", "verify", "--root", root]) == 0


def test_a_local_storage_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="storage_options apply to a store behind a URL"):
        ModelStore(tmp_path, storage_options={"anon": True})


def test_trackers_mirror_a_remote_store_and_sync_replays_a_missed_save(
    s3_bucket: str, tmp_path: Path
) -> None:
    from video_interpreter.tracking import MLflowTracker, TrackerWarning

    root = f"{s3_bucket}/tracked"
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.warns(TrackerWarning, match=down.replace(".", r"\.")):
        entry = ModelStore(root, trackers=[MLflowTracker(down)]).save(
            tiny_model(), metrics={"acc": 0.6}
        )
    tracker = MLflowTracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        registered_model="remote-{version}",
        artifact_location=str(tmp_path / "artifacts"),
    )
    report = ModelStore(root, trackers=[tracker]).sync(trackers=True)
    assert report.tracked == [f"{entry.file} -> {tracker.url}"]
    client = tracker.client()
    best = client.get_model_version_by_alias("remote-v1", "best")
    assert best.tags["video_interpreter.sha256"] == entry.sha256
    assert best.tags["video_interpreter.file"] == entry.file


def test_sharded_checkpoints_save_to_and_load_from_an_s3_url(
    s3_bucket: str, tmp_path: Path
) -> None:
    from video_interpreter.distributed import (
        consolidate,
        load_sharded,
        read_sharded_metadata,
        save_sharded,
    )

    model = tiny_model(5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 4, 16, 16))["action"].sum().backward()
    optimizer.step()
    url = f"{s3_bucket}/runs/step_10"
    save_sharded(model, url, optimizer=optimizer, step=10, notes="remote")
    assert read_sharded_metadata(url).step == 10
    with pytest.raises(CheckpointError, match="already holds a sharded checkpoint"):
        save_sharded(model, url)

    fresh = tiny_model(6)
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    loaded = load_sharded(fresh, url, fresh_optimizer)
    assert (loaded.step, loaded.notes) == (10, "remote")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert str(fresh_optimizer.state_dict()) == str(optimizer.state_dict())

    single = consolidate(url, tmp_path / "final.safetensors")
    clip = torch.randn(1, 3, 4, 16, 16)
    assert torch.equal(outputs(load_model(single.path), clip), outputs(model, clip))
    with pytest.raises(CheckpointError, match="holds no sharded checkpoint"):
        load_sharded(fresh, f"{s3_bucket}/runs/nothing")
