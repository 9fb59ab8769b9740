"""build_model and VideoInterpreter: v1 end to end, meta builds, dtypes, initialisation."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from video_interpreter import BuildError, VideoInterpreter, build_model
from video_interpreter.model import build_meta, initialize
from video_interpreter.spec import load_spec
from video_interpreter.zoo import list_models

from .conftest import TINY_SPEC


def test_v1_classifies_a_clip_batch_into_400_actions() -> None:
    model = build_model("configs/v1.yaml").eval()
    assert isinstance(model, VideoInterpreter)
    assert sum(p.numel() for p in model.parameters()) == 31_505_325
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 16, 112, 112))
    assert list(out) == ["action"]
    assert out["action"].shape == (2, 400)


def test_v1_on_the_meta_device_materialises_nothing() -> None:
    model = build_model("v1", device="meta")
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors
    assert all(t.is_meta for t in tensors)
    assert sum(p.numel() for p in model.parameters()) == 31_505_325


def test_the_model_keeps_its_spec_and_fingerprint() -> None:
    model = build_model(TINY_SPEC, overrides=["heads.action.num_classes=3"])
    assert model.spec.name == "tiny"
    assert model.spec["heads"]["action"]["num_classes"] == 3
    assert model.spec.fingerprint == load_spec(model.spec.to_dict()).fingerprint
    assert model(torch.randn(1, 3, 4, 16, 16))["action"].shape == (1, 3)


def test_a_dtype_applies_to_every_weight() -> None:
    model = build_model(TINY_SPEC, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model(torch.randn(1, 3, 4, 16, 16, dtype=torch.float64))["action"].dtype == torch.float64


def test_forward_refuses_a_clip_without_a_batch_dimension() -> None:
    model = build_model(TINY_SPEC)
    with pytest.raises(ValueError, match=r"expected a clip batch \(B, C, T, H, W\) such as"):
        model(torch.randn(3, 4, 16, 16))


def test_a_spec_with_several_heads_returns_one_output_each() -> None:
    model = build_model("tiny_resnet").eval()
    out = model(torch.randn(2, 3, 4, 32, 32))
    assert {name: tuple(t.shape) for name, t in out.items()} == {"action": (2, 10), "scene": (2, 5)}


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_transformer", "v1"])
def test_initialisation_reaches_every_parameter_and_buffer(name: str) -> None:
    spec = load_spec(name)
    model = build_meta(spec)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.fill_(math.nan)
        initialize(model, spec.init)
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert not tensor.isnan().any(), f"{key} was not initialised"


def test_the_resnet_scheme_initialises_like_torchvision() -> None:
    torch.manual_seed(0)
    model = build_model("v1")
    conv = model.get_submodule("backbone.layer1.0.conv1.0.0")
    assert isinstance(conv, nn.Conv3d)
    fan_out = conv.weight.shape[0] * math.prod(conv.weight.shape[2:])
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.1)
    head = model.get_submodule("heads.action.fc")
    assert isinstance(head, nn.Linear)
    assert head.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert head.bias.abs().max().item() == 0.0


def test_a_module_with_tensors_but_no_reset_parameters_is_an_error() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(1))

    holder = nn.Sequential(Scale())
    with pytest.raises(
        BuildError, match=r"module 0 \(Scale\) holds tensors .* no reset_parameters"
    ):
        initialize(holder)


def test_transformer_spec_trains_a_step() -> None:
    model = build_model("tiny_transformer")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    clip = torch.randn(2, 3, 4, 32, 32)
    loss = model(clip)["action"].logsumexp(dim=1).mean()
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None for p in model.parameters())


def test_a_model_deep_copies_and_pickles_with_its_spec() -> None:
    import copy
    import pickle

    model = build_model(TINY_SPEC).eval()
    twin = copy.deepcopy(model)
    assert twin.spec is model.spec
    clip = torch.randn(1, 3, 4, 16, 16)
    torch.testing.assert_close(twin(clip)["action"], model(clip)["action"])
    restored = pickle.loads(pickle.dumps(model.spec))
    assert restored == model.spec
    assert restored.fingerprint == model.spec.fingerprint


def test_validating_and_building_in_a_fresh_process_runs_no_torch_op_of_note() -> None:
    """Types propagate in plain Python, modules are only constructed on meta and storage comes
    from torch.empty, so torch's symbolic-shape machinery (sympy, about 0.7 s to import with
    torch.fx) and its compiler stay unimported."""
    names = ["v1", *list_models(library="torchvision")]
    names += ["tiny_transformer", "tiny_mvit", "tiny_swin", "tiny_resnet", "tiny_two_pathway"]
    script = (
        "import sys\n"
        "from video_interpreter import load_spec\n"
        "from video_interpreter.model import build_model\n"
        f"for name in {names!r}:\n"
        "    load_spec(name).check_shapes()\n"
        "    build_model(name, device='meta')\n"
        "    build_model(name)\n"
        "    loaded = [m for m in sys.modules if m.startswith(('sympy', 'torch._dynamo'))]\n"
        "    assert not loaded, f'building {name} imported {sorted(loaded)[:3]}'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
