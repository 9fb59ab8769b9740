"""What a key map costs: mapping a source state dict forward, and exporting it back (which
includes its own check: the result mapped forward again on the meta device).

For every shipped key map the source is the reference library's model, built on the meta device
and given random tensors of its shapes; a synthetic ViT-B-sized map (12 blocks, q/k/v joined,
the k bias filled, MLP weights split, position table reshaped) shows the transforms at full size,
where concat and split copy tensors. Beside each figure: ``load_state_dict`` of the same tensors
into a module of the same shapes, the step every import ends with anyway. Times are medians of
warm repeats, on CPU. Prints a Markdown table.

    python benchmarks/key_maps.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from pytorchvideo.models import hub
from torch import nn

from video_interpreter.zoo import (
    KeyMap,
    apply_key_map,
    export_state_dict,
    key_map,
    key_map_from_dict,
    known_key_maps,
)

WIDTH, DEPTH, TOKENS = 768, 12, 1568


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _random(shapes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(v.shape, generator=generator)
        if v.is_floating_point()
        else torch.zeros(v.shape, dtype=v.dtype)
        for k, v in shapes.items()
    }


def _vit_case() -> tuple[KeyMap, dict[str, torch.Tensor]]:
    layer = r"^encoder\.layer\.(\d+)\."
    km = key_map_from_dict(
        {
            "source": "synthetic",
            "transforms": [
                {"fill": {"to": r"encoder.layer.\1.k_bias", "like": layer + r"q_bias$",
                          "value": 0}},
                {
                    "concat": {
                        "from": [layer + r"query\.weight$", r"encoder.layer.\1.key.weight",
                                 r"encoder.layer.\1.value.weight"],
                        "to": r"blocks.\1.attn.qkv.weight",
                        "dim": 0,
                    }
                },
                {
                    "concat": {
                        "from": [layer + r"q_bias$", r"encoder.layer.\1.k_bias",
                                 r"encoder.layer.\1.v_bias"],
                        "to": r"blocks.\1.attn.qkv.bias",
                        "dim": 0,
                    }
                },
                {
                    "split": {
                        "from": layer + r"mlp\.weight$",
                        "to": [r"blocks.\1.fc1.weight", r"blocks.\1.fc2_t.weight"],
                        "dim": 0,
                        "parts": 2,
                    }
                },
                {
                    "reshape": {
                        "from": r"^pos_embed$",
                        "to": "pos.table",
                        "shape": [TOKENS, WIDTH],
                        "source_shape": [1, TOKENS, WIDTH],
                    }
                },
            ],
            "rules": [{"match": layer + r"(norm\.(?:weight|bias))$", "replace": r"blocks.\1.\2"}],
        }
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    source = {"pos_embed": torch.randn(1, TOKENS, WIDTH, generator=generator)}
    for i in range(DEPTH):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            source[p + f"{name}.weight"] = torch.randn(WIDTH, WIDTH, generator=generator)
        source[p + "q_bias"] = torch.randn(WIDTH, generator=generator)
        source[p + "v_bias"] = torch.randn(WIDTH, generator=generator)
        source[p + "mlp.weight"] = torch.randn(8 * WIDTH, WIDTH, generator=generator)
        source[p + "norm.weight"] = torch.randn(WIDTH, generator=generator)
        source[p + "norm.bias"] = torch.randn(WIDTH, generator=generator)
    return km, source


def _holder(state: dict[str, torch.Tensor]) -> nn.Module:
    """A module with one parameter per key, to time load_state_dict on the same tensors."""
    module = nn.Module()
    for index, tensor in enumerate(state.values()):
        module.register_buffer(f"t{index}", torch.empty_like(tensor))
    return module


def _row(name: str, km: KeyMap, source: dict[str, torch.Tensor], repeats: int) -> str:
    mapped = apply_key_map(km, source)
    holder = _holder(mapped.state_dict)
    renamed = {f"t{i}": t for i, t in enumerate(mapped.state_dict.values())}
    apply_ms = _median_ms(lambda: apply_key_map(km, source), repeats)
    export_ms = _median_ms(lambda: export_state_dict(mapped.state_dict, km), repeats)
    load_ms = _median_ms(lambda: holder.load_state_dict(renamed), repeats)
    params = sum(t.numel() for t in source.values()) / 1e6
    return (
        f"| {name} | {len(source)} | {params:.1f} | {len(mapped.transformed)} | {apply_ms:.1f} "
        f"| {export_ms:.1f} | {load_ms:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats}")
    print("| key map | source tensors | params (M) | transforms applied | map forward (ms) "
          "| export + check (ms) | load_state_dict (ms) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch in known_key_maps("torchvision"):
        with torch.device("meta"):
            reference: nn.Module = torchvision.models.get_model(arch, weights=None)
        source = _random(reference.state_dict())
        print(_row(f"torchvision {arch}", key_map(arch), source, args.repeats))
    for arch in known_key_maps("pytorchvideo"):
        with torch.device("meta"):
            reference = getattr(hub, arch)(pretrained=False)
        source = _random(reference.state_dict())
        print(_row(f"pytorchvideo {arch}", key_map(arch, "pytorchvideo"), source, args.repeats))
    km, source = _vit_case()
    print(_row("synthetic ViT-B (concat, fill, split, reshape)", km, source, args.repeats))


if __name__ == "__main__":
    main()
