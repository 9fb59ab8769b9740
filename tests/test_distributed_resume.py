"""Resuming sharded training: a parameter that never had a gradient (a head the loss leaves
out), and the sharding tutorial's training loop run as written on gloo without a GPU."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from video_interpreter.distributed import load_sharded, save_sharded
from video_interpreter.model import VideoInterpreter, build_model

from .conftest import tiny_spec

REPO = Path(__file__).resolve().parents[1]


def two_head_spec() -> dict[str, Any]:
    spec = tiny_spec()
    spec["heads"]["aux"] = {"type": "ClassificationHead", "num_classes": 2}
    return spec


def step(model: VideoInterpreter, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    clips = torch.randn(2, 3, 4, 16, 16, generator=generator)
    labels = torch.randint(0, 5, (2,), generator=generator)
    loss = F.cross_entropy(model(clips)["action"], labels)  # heads.aux gets no gradient
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    optimizer.zero_grad()


def test_load_sharded_resumes_when_a_parameter_never_had_a_gradient(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(two_head_spec())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    step(model, optimizer, 1)
    save_sharded(model, tmp_path / "last", optimizer=optimizer, step=1)
    torch.manual_seed(1)
    resumed = build_model(two_head_spec())
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=1e-2)
    assert load_sharded(resumed, tmp_path / "last", resumed_optimizer).step == 1
    unused = resumed.get_parameter("heads.aux.fc.weight")
    assert unused not in resumed_optimizer.state  # as in the optimizer that saved
    assert len(resumed_optimizer.state) == len(optimizer.state)
    for seed in (2, 3):
        step(model, optimizer, seed)
        step(resumed, resumed_optimizer, seed)
    for (key, expected), actual in zip(
        model.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(expected, actual), key


def _readme_training_script() -> str:
    page = (REPO / "docs" / "tutorials" / "sharding.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", page, re.S)
    assert code is not None
    return code.group(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_readme_training_loop_runs_and_resumes_on_gloo_without_a_gpu(tmp_path: Path) -> None:
    script = _readme_training_script()
    # The tutorial's own code, shortened: a two-head tiny spec, 4 steps, a save every 2.
    for old, new in (
        ('"configs/v1.yaml"', '"two_heads.json"'),
        ("range(start, 10_000)", "range(start, STOP)"),
        ("step % 1000 == 999", "step % 2 == 1"),
    ):
        assert old in script
        script = script.replace(old, new)
    prelude = textwrap.dedent(
        """
        import json, sys, torch, torch.nn.functional as F
        STOP = int(sys.argv[1])
        def next_batch():
            return torch.randn(2, 3, 4, 16, 16), torch.randint(0, 5, (2,))
        def train_step(model, optimizer, batch):
            clips, labels = batch
            loss = F.cross_entropy(model(clips)["action"], labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.item()
        """
    )
    (tmp_path / "two_heads.json").write_text(json.dumps(two_head_spec()))
    (tmp_path / "train.py").write_text(prelude + script)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CUDA_VISIBLE_DEVICES": "",  # as on a machine without a GPU
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "OMP_NUM_THREADS": "1",
    }
    for stop in (2, 4):  # the second run resumes from runs/v1/last
        run = subprocess.run(
            [sys.executable, "train.py", str(stop)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    final = tmp_path / "models/saved_models/video_interpreter_v1_final.pth"
    assert torch.load(final, weights_only=True)["step"] == 4
