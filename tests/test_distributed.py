"""FSDP2 sharding and sharded checkpoints, with real processes: two ranks on the CPU (gloo), a
free port from the OS. One launch trains a tiny model for four steps, saving a sharded
checkpoint after the second, then resumes from it with new objects and scrambled random
generators, reshards checkpoints written by one process and as a single file, and reports
through files. Everything else runs in this process, without a process group.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
)
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.multiprocessing.spawn import start_processes

from video_interpreter.checkpoint import load_checkpoint, load_model, resume
from video_interpreter.cli import main
from video_interpreter.distributed import (
    GRANULARITIES,
    Granularity,
    consolidate,
    load_sharded,
    load_sharded_model,
    read_sharded_metadata,
    save_sharded,
    shard_model,
    sharding_units,
)
from video_interpreter.distributed._state import join_state, split_state
from video_interpreter.errors import BuildError, CheckpointError
from video_interpreter.model import VideoInterpreter, build_meta, build_model
from video_interpreter.spec import load_spec

# Conv3d + BatchNorm3d + ReLU + ResStage + GlobalAvgPool3d + ClassificationHead on 3x4x16x16;
# the head's dropout makes resuming depend on the restored random generator states.
SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "tiny_sharded",
    "version": "v1",
    "init": "resnet",
    "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
    "backbone": [
        {"type": "Conv3d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "BatchNorm3d"},
        {"type": "ReLU"},
        {"type": "ResStage", "depth": 2, "out_channels": 12, "stride": 2},
    ],
    "neck": {"type": "GlobalAvgPool3d"},
    "heads": {"action": {"type": "ClassificationHead", "num_classes": 5, "dropout": 0.2}},
}
WORLD = 2
STEPS = 4
SAVED_AT = 2  # the checkpoint holds the state after this many steps
SEED = 0
LAUNCH_TIMEOUT_S = 150
ZOO = ("tiny_resnet", "tiny_transformer", "tiny_swin", "tiny_mvit")


# -- launching ranks ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rank_entry(rank: int, port: int, worker: Callable[[int, Path], None], folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        worker(rank, Path(folder))
    finally:
        dist.destroy_process_group()


def launch(worker: Callable[[int, Path], None], folder: Path) -> None:
    """Run ``worker(rank, folder)`` on two fresh processes joined by a gloo process group."""
    context = start_processes(  # type: ignore[no-untyped-call]
        _rank_entry,
        args=(_free_port(), worker, str(folder)),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"ranks did not finish within {LAUNCH_TIMEOUT_S} s")


# -- what the ranks do ----------------------------------------------------------------------


def batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each rank's own batch of a step, independent of the global random generator."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    clips = torch.randn(2, 3, 4, 16, 16, generator=generator)
    return clips, torch.randint(0, 5, (2,), generator=generator)


def fixed_clips() -> torch.Tensor:
    return torch.randn(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(7))


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, rank: int
) -> float:
    clips, labels = batch(step, rank)
    loss = F.cross_entropy(model(clips)["action"], labels)
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    return float(loss.item())


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> Any:
    """A copy of the whole model (and optimizer) state, gathered on rank 0 (empty elsewhere)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state: Any = get_model_state_dict(model, options=options)
    if optimizer is not None:
        state = (state, get_optimizer_state_dict(model, optimizer, options=options))
    return copy.deepcopy(state)  # whole tensors (buffers) come back as the live ones


def new_optimizer(model: torch.nn.Module, lr: float = 1e-2) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.8, 0.95))


def scramble_random_generators(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed)


def two_ranks(rank: int, folder: Path) -> None:
    """Everything the tests below check about two ranks, in one launch (starting processes is
    the slow part)."""
    torch.manual_seed(SEED)
    model = shard_model(SPEC)
    initial = full_state(model)
    optimizer = new_optimizer(model)
    losses = [train_step(model, optimizer, step, rank) for step in range(SAVED_AT)]
    save_sharded(model, folder / "ckpt", optimizer=optimizer, step=SAVED_AT, loss=losses[-1])
    saved_model, saved_optimizer = full_state(model, optimizer)
    model.eval()
    outputs = model(fixed_clips())["action"].detach()
    model.train()
    try:  # a second save to the same place without overwrite=True: refused on every rank
        save_sharded(model, folder / "ckpt")
    except CheckpointError as exc:
        refused = str(exc)
    else:
        refused = ""
    losses += [train_step(model, optimizer, step, rank) for step in range(SAVED_AT, STEPS)]
    if rank == 0:  # consolidation is a one-process job, also inside a distributed one
        consolidate(folder / "ckpt", folder / "consolidated.pth")
    dist.barrier()

    # Resume with new objects, other seeds and another learning rate: whatever continues the
    # run identically can only come from the checkpoint.
    scramble_random_generators(SEED + 99)
    resumed = shard_model(SPEC, init=False)
    resumed_optimizer = new_optimizer(resumed, lr=5.0)
    metadata = load_sharded(resumed, folder / "ckpt", resumed_optimizer)
    resumed_losses = [
        train_step(resumed, resumed_optimizer, step, rank) for step in range(SAVED_AT, STEPS)
    ]

    # Resharding: a checkpoint written by one process, a single file, a directory.
    one_process = shard_model(SPEC, init=False)
    load_sharded(one_process, folder / "one_process_ckpt")
    loaded = {
        "from_one_process": full_state(one_process),
        "from_file": full_state(load_sharded_model(folder / "consolidated.pth")),
        "from_directory": full_state(load_sharded_model(folder / "ckpt", granularity="stage")),
    }

    # Every small spec of the zoo: sharded weights equal build_model's, and a step runs.
    zoo = {}
    for name in ZOO:
        torch.manual_seed(SEED)
        sharded = shard_model(name)
        zoo[name] = full_state(sharded)
        channels, frames, height, width = sharded.spec.input
        clips = torch.randn(2, channels, frames, height, width)
        sum(out.square().sum() for out in sharded(clips).values()).backward()

    # The first steps again at every granularity.
    by_granularity = {}
    granularity: Granularity
    for granularity in ("block", "stage", "root"):
        torch.manual_seed(SEED)
        other = shard_model(SPEC, granularity=granularity)
        other_optimizer = new_optimizer(other)
        by_granularity[granularity] = [
            train_step(other, other_optimizer, step, rank) for step in range(SAVED_AT)
        ]
    torch.save(
        {
            "losses": losses,
            "resumed_losses": resumed_losses,
            "resumed_step": metadata.step,
            "resumed_lr": resumed_optimizer.param_groups[0]["lr"],
            "refused": refused,
            "by_granularity": by_granularity,
        },
        folder / f"rank{rank}.pt",
    )
    if rank == 0:
        state = {"initial": initial, "model": saved_model, "optimizer": saved_optimizer}
        torch.save({**state, **loaded, "outputs": outputs, "zoo": zoo}, folder / "state.pt")


# -- the launch runs once for the whole file ------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(SEED + 1)  # for the ranks to load, written without a process group
    save_sharded(build_model(SPEC), folder / "one_process_ckpt")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by each rank's torch at import
    launch(two_ranks, folder)
    return folder


@pytest.fixture(scope="module")
def result(runs: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(runs / "state.pt", weights_only=True)
    state["ranks"] = [
        torch.load(runs / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)
    ]
    return state


# -- two ranks ------------------------------------------------------------------------------


def test_sharded_initialisation_equals_build_model_under_the_same_seed(
    result: dict[str, Any],
) -> None:
    torch.manual_seed(SEED)
    torch.testing.assert_close(result["initial"], build_model(SPEC).state_dict(), rtol=0, atol=0)


@pytest.mark.parametrize("name", ZOO)
def test_sharded_zoo_specs_initialise_like_build_model(name: str, result: dict[str, Any]) -> None:
    torch.manual_seed(SEED)
    torch.testing.assert_close(result["zoo"][name], build_model(name).state_dict(), rtol=0, atol=0)


def test_two_ranks_train_on_their_own_batches(result: dict[str, Any]) -> None:
    losses = [run["losses"] for run in result["ranks"]]
    assert all(len(rank_losses) == STEPS for rank_losses in losses)
    assert losses[0] != losses[1]


def test_a_checkpoint_from_two_ranks_loads_in_one_process_with_equal_outputs(
    runs: Path, result: dict[str, Any]
) -> None:
    model = build_model(SPEC, device="meta")
    metadata = load_sharded(model, runs / "ckpt")
    torch.testing.assert_close(model.state_dict(), result["model"])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(fixed_clips())["action"], result["outputs"])
    assert (metadata.world_size, metadata.step) == (WORLD, SAVED_AT)
    assert metadata.training_state == ("optimizer", "rng")


def test_resuming_on_two_ranks_continues_exactly_like_the_uninterrupted_run(
    result: dict[str, Any],
) -> None:
    for rank in range(WORLD):
        run = result["ranks"][rank]
        assert run["resumed_losses"] == run["losses"][SAVED_AT:]
        assert run["resumed_step"] == SAVED_AT
        assert run["resumed_lr"] == 1e-2  # the saved learning rate, not 5.0


def test_sharding_granularity_changes_memory_not_the_numbers(result: dict[str, Any]) -> None:
    for run in result["ranks"]:
        for granularity in GRANULARITIES:
            assert run["by_granularity"][granularity] == run["losses"][:SAVED_AT], granularity


def test_saving_over_an_existing_checkpoint_is_refused_on_every_rank(
    result: dict[str, Any],
) -> None:
    for run in result["ranks"]:
        assert "already exists" in run["refused"]


def test_a_checkpoint_from_one_process_loads_sharded_over_two_ranks(
    result: dict[str, Any],
) -> None:
    torch.manual_seed(SEED + 1)
    torch.testing.assert_close(result["from_one_process"], build_model(SPEC).state_dict())


def test_load_sharded_model_reads_a_directory_or_a_single_file_over_two_ranks(
    result: dict[str, Any],
) -> None:
    torch.testing.assert_close(result["from_directory"], result["model"])
    torch.testing.assert_close(result["from_file"], result["model"])


# -- consolidation --------------------------------------------------------------------------


def test_consolidation_equals_the_full_state_dict(runs: Path, result: dict[str, Any]) -> None:
    checkpoint = load_checkpoint(runs / "consolidated.pth")
    torch.testing.assert_close(dict(checkpoint.state_dict), result["model"])
    saved = result["optimizer"]
    optimizer_state = checkpoint.optimizer_state_dict
    assert optimizer_state is not None
    names = saved["param_groups"][0]["params"]
    assert optimizer_state["param_groups"][0]["params"] == list(range(len(names)))
    assert optimizer_state["param_groups"][0]["betas"] == [0.8, 0.95]
    for number, name in enumerate(names):
        torch.testing.assert_close(optimizer_state["state"][number], saved["state"][name])
    assert (checkpoint.step, checkpoint.metadata.fingerprint) == (
        SAVED_AT,
        load_spec(SPEC).fingerprint,
    )


def test_a_consolidated_checkpoint_resumes_training_in_one_process(
    runs: Path, result: dict[str, Any]
) -> None:
    model = build_model(SPEC)
    optimizer = new_optimizer(model, lr=5.0)
    resume(model, runs / "consolidated.pth", optimizer)
    assert optimizer.param_groups[0]["lr"] == 1e-2
    torch.testing.assert_close(model.state_dict(), result["model"])
    train_step(model, optimizer, SAVED_AT, 0)  # the optimizer state fits its parameters


def test_the_consolidate_command_writes_a_loadable_file(
    runs: Path, result: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "weights.safetensors"
    assert main(["consolidate", str(runs / "ckpt"), str(out)]) == 0
    assert f"saved by {WORLD} ranks at step {SAVED_AT}" in capsys.readouterr().out
    torch.testing.assert_close(load_model(out).state_dict(), result["model"])


def test_the_consolidate_command_exits_1_on_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["consolidate", str(tmp_path / "nowhere"), str(tmp_path / "out.pth")]) == 1
    assert "expected a directory written by save_sharded" in capsys.readouterr().err


# -- one process, no process group ------------------------------------------------------------


def tiny_model(seed: int = 1) -> VideoInterpreter:
    torch.manual_seed(seed)
    return build_model(SPEC)


def test_a_checkpoint_saved_in_one_process_describes_itself(tmp_path: Path) -> None:
    model = tiny_model()
    saved = save_sharded(model, tmp_path / "ckpt", epoch=3, metrics={"acc": 0.5}, notes="hi")
    assert sorted(p.name for p in saved.path.iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "metadata.json",
        "spec.json",
    ]
    again = read_sharded_metadata(tmp_path / "ckpt")
    assert again == saved
    assert (again.epoch, dict(again.metrics), again.notes) == (3, {"acc": 0.5}, "hi")
    assert again.spec == model.spec
    assert json.loads(json.dumps(again.to_dict()))["training_state"] == ["rng"]
    assert set(again.model_keys) == set(model.state_dict())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_saving_works_when_torch_returns_its_index_without_the_file_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.10 and 2.11 return the index of a save without its storage data (the written
    file still has it); the checkpoint must list and hash its files all the same."""

    def save_like_torch_2_11(*args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(dcp_save(*args, **kwargs), storage_data=None)

    monkeypatch.setattr("video_interpreter.distributed._storage.dcp_save", save_like_torch_2_11)
    saved = save_sharded(tiny_model(), tmp_path / "ckpt")
    assert "__0_0.distcp" in saved.files
    model = build_model(SPEC, device="meta")
    load_sharded(model, tmp_path / "ckpt")
    torch.testing.assert_close(model.state_dict(), tiny_model().state_dict())


def test_overwrite_replaces_a_checkpoint_whole(tmp_path: Path) -> None:
    save_sharded(tiny_model(1), tmp_path / "ckpt", step=1)
    save_sharded(tiny_model(2), tmp_path / "ckpt", step=2, overwrite=True)
    model = build_model(SPEC, device="meta")
    assert load_sharded(model, tmp_path / "ckpt").step == 2
    torch.testing.assert_close(model.state_dict(), tiny_model(2).state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_failed_save_leaves_no_directory_behind(tmp_path: Path) -> None:
    class OddScheduler:
        def state_dict(self) -> dict[str, Any]:
            return {"lambda": object()}

        def load_state_dict(self, state: Any, /) -> None: ...

    with pytest.raises(CheckpointError, match=r"scheduler/lambda holds a builtins.object"):
        save_sharded(tiny_model(), tmp_path / "ckpt", scheduler=OddScheduler())
    assert list(tmp_path.iterdir()) == []


def test_a_scheduler_state_round_trips(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = new_optimizer(model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    save_sharded(model, tmp_path / "ckpt", optimizer=optimizer, scheduler=scheduler)
    fresh = tiny_model(5)
    fresh_optimizer = new_optimizer(fresh)
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, step_size=9, gamma=0.1)
    load_sharded(fresh, tmp_path / "ckpt", fresh_optimizer, scheduler=fresh_scheduler)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_loading_into_another_architecture_shows_the_spec_diff(tmp_path: Path) -> None:
    save_sharded(tiny_model(), tmp_path / "ckpt")
    other = build_model(
        {**SPEC, "heads": {"action": {"type": "ClassificationHead", "num_classes": 7}}}
    )
    with pytest.raises(CheckpointError, match=r"(?s)holds architecture .*num_classes: 7"):
        load_sharded(other, tmp_path / "ckpt")


def test_loading_optimizer_state_that_was_not_saved_is_refused(tmp_path: Path) -> None:
    save_sharded(tiny_model(), tmp_path / "ckpt")
    model = tiny_model()
    with pytest.raises(CheckpointError, match=r"holds no optimizer state"):
        load_sharded(model, tmp_path / "ckpt", new_optimizer(model))


def test_another_optimizer_s_state_is_refused_naming_both(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = new_optimizer(model)
    train_step(model, optimizer, 0, 0)
    save_sharded(model, tmp_path / "ckpt", optimizer=optimizer)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match=r"SGD optimizer \(saved: AdamW\) state does not fit"):
        load_sharded(model, tmp_path / "ckpt", sgd)


def test_a_plain_module_with_other_keys_is_refused_listing_them(tmp_path: Path) -> None:
    save_sharded(tiny_model(), tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: 0\.bias, 0\.weight"):
        load_sharded(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "ckpt")


def test_a_corrupted_shard_fails_verification(tmp_path: Path) -> None:
    save_sharded(tiny_model(), tmp_path / "ckpt")
    shard = tmp_path / "ckpt" / "__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"__0_0\.distcp has sha256 .* corrupt"):
        load_sharded(tiny_model(), tmp_path / "ckpt")


def test_an_altered_spec_file_is_detected(tmp_path: Path) -> None:
    save_sharded(tiny_model(), tmp_path / "ckpt")
    spec_file = tmp_path / "ckpt" / "spec.json"
    spec = json.loads(spec_file.read_text())
    spec["heads"]["action"]["num_classes"] = 6
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"was altered after saving"):
        read_sharded_metadata(tmp_path / "ckpt")


class _RunsCode:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getenv, ("HOME",))


def test_an_index_that_would_run_code_is_refused(tmp_path: Path) -> None:
    save_sharded(tiny_model(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / ".metadata").write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(CheckpointError, match=r"refusing os\.getenv"):
        load_sharded(tiny_model(), tmp_path / "ckpt", check_digests=False)


def test_a_directory_that_is_not_a_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"metadata\.json is missing"):
        read_sharded_metadata(tmp_path)


def test_shard_model_needs_a_process_group() -> None:
    with pytest.raises(BuildError, match=r"needs a process group.*init_process_group"):
        shard_model(SPEC)


def test_sharding_units_follow_the_spec_structure() -> None:
    model = build_meta(load_spec(SPEC))
    assert sharding_units(model, "block") == ["backbone.3.0", "backbone.3.1"]
    assert sharding_units(model, "stage") == ["backbone.3"]
    assert sharding_units(model, "root") == []


def test_sharding_units_reach_into_composite_layers() -> None:
    mvit = build_meta(load_spec("tiny_mvit"))
    units = sharding_units(mvit, "block")
    assert units[-1] == "backbone.encoder"  # around its blocks, for its own parameters
    assert all(u.startswith("backbone.encoder.blocks.") for u in units[:-1])
    resnet = build_meta(load_spec("tiny_resnet"))
    assert "backbone.mixed" in sharding_units(resnet, "block")  # a Concat is one block


def test_an_unknown_granularity_lists_the_known_ones() -> None:
    with pytest.raises(BuildError, match=r"unknown sharding granularity 'layer'.*'block'"):
        sharding_units(build_meta(load_spec(SPEC)), "layer")  # type: ignore[arg-type]


def test_state_splits_into_json_and_tensors_and_joins_back() -> None:
    state = {"state": {"w": {"m": torch.ones(2)}}, "param_groups": [{"betas": (0.9, 0.99)}]}
    skeleton, tensors = split_state(state, "optimizer")
    assert json.loads(json.dumps(skeleton)) == skeleton
    assert list(tensors) == ["optimizer/state/w/m"]
    joined = join_state(skeleton, tensors, like=state)
    assert joined["param_groups"][0]["betas"] == (0.9, 0.99)
    assert joined["state"]["w"]["m"] is tensors["optimizer/state/w/m"]
