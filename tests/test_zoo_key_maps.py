"""Key maps v2: each transform forward and back, the checks on reading a key-map file, the
refusals of import and export, and bit-identical round trips through every shipped key map."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from pytorchvideo.models import hub
from torch import nn

from video_interpreter.errors import KeyMapError
from video_interpreter.zoo import (
    KeyMap,
    apply_key_map,
    convert_state_dict,
    export_state_dict,
    key_map,
    key_map_from_dict,
    known_key_maps,
    read_key_map,
    resolve_key_map,
)

from .zoo_parity import torchvision_model


def write(tmp_path: Path, text: str, name: str = "map.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def one_map(*transforms: dict[str, Any], rules: list[dict[str, str]] | None = None) -> KeyMap:
    return key_map_from_dict(
        {"source": "synthetic", "transforms": list(transforms), "rules": rules or []}
    )


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def random_like(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Distinct random values in every tensor's shape and dtype (meta tensors welcome)."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if tensor.is_floating_point():
            out[key] = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
        else:
            out[key] = torch.randint(0, 9, tensor.shape, generator=generator, dtype=tensor.dtype)
    return out


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


# -- each transform, forward and back ---------------------------------------------------------


def test_concat_joins_inputs_along_dim_and_export_cuts_them_apart() -> None:
    km = one_map(
        {
            "concat": {
                "from": [r"^l\.(\d+)\.q$", r"l.\1.k", r"l.\1.v"],
                "to": r"blocks.\1.qkv",
                "dim": 0,
            }
        }
    )
    source = {f"l.0.{n}": seeded(2, 3, seed=i) for i, n in enumerate("qkv")}
    mapped = apply_key_map(km, source)
    assert list(mapped.state_dict) == ["blocks.0.qkv"]
    torch.testing.assert_close(
        mapped.state_dict["blocks.0.qkv"],
        torch.cat([source["l.0.q"], source["l.0.k"], source["l.0.v"]]),
    )
    assert str(mapped.transformed[0]) == (
        "concat (transforms[0]): l.0.q (2, 3) + l.0.k (2, 3) + l.0.v (2, 3) -> blocks.0.qkv (6, 3)"
    )
    assert_identical(export_state_dict(mapped.state_dict, km), source)


def test_concat_of_unequal_parts_needs_sizes_so_export_can_cut_them_again() -> None:
    entry = {"from": [r"^(a)$", "b"], "to": "ab", "dim": 1}
    source = {"a": seeded(3, 2), "b": seeded(3, 5, seed=1)}
    with pytest.raises(KeyMapError, match=r"sizes \[2, 5\] along dim 1; unequal parts need sizes"):
        apply_key_map(one_map({"concat": entry}), source)
    km = one_map({"concat": {**entry, "sizes": [2, 5]}})
    mapped = apply_key_map(km, source)
    assert mapped.state_dict["ab"].shape == (3, 7)
    assert_identical(export_state_dict(mapped.state_dict, km), source)
    with pytest.raises(
        KeyMapError, match=r"the inputs have sizes \[2, 5\] along dim 1, sizes says \[5, 2\]"
    ):
        apply_key_map(one_map({"concat": {**entry, "sizes": [5, 2]}}), source)


def test_concat_refuses_inputs_of_different_dtypes_or_other_dims() -> None:
    km = one_map({"concat": {"from": ["^(a)$", "b"], "to": "ab", "dim": 0}})
    with pytest.raises(KeyMapError, match="dtypes differ"):
        apply_key_map(km, {"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.float64)})
    with pytest.raises(KeyMapError, match=r"shapes \(2, 3\), \(2, 4\) differ outside dim 0"):
        apply_key_map(km, {"a": torch.zeros(2, 3), "b": torch.zeros(2, 4)})


@pytest.mark.parametrize("cut", [{"sizes": [2, 4]}, {"parts": 2}])
def test_split_cuts_by_sizes_or_equal_parts_and_export_joins_them(cut: dict[str, Any]) -> None:
    km = one_map(
        {"split": {"from": r"^in_proj\.(\w+)$", "to": [r"a.\1", r"b.\1"], "dim": -1, **cut}}
    )
    source = {"in_proj.bias": seeded(3, 6)}
    mapped = apply_key_map(km, source)
    first = 2 if "sizes" in cut else 3
    torch.testing.assert_close(mapped.state_dict["a.bias"], source["in_proj.bias"][:, :first])
    torch.testing.assert_close(mapped.state_dict["b.bias"], source["in_proj.bias"][:, first:])
    # outputs share no storage, so the state dict saves as safetensors
    assert mapped.state_dict["a.bias"].untyped_storage().data_ptr() != (
        mapped.state_dict["b.bias"].untyped_storage().data_ptr()
    )
    assert_identical(export_state_dict(mapped.state_dict, km), source)


def test_split_sizes_that_do_not_add_up_name_both_figures() -> None:
    km = one_map({"split": {"from": "^(w)$", "to": ["a", "b"], "dim": 0, "sizes": [2, 2]}})
    with pytest.raises(KeyMapError, match=r"sizes \[2, 2\] add up to 4, the tensor \(5,\) has 5"):
        apply_key_map(km, {"w": torch.zeros(5)})
    km = one_map({"split": {"from": "^(w)$", "to": ["a", "b"], "dim": 0, "parts": 2}})
    with pytest.raises(KeyMapError, match="has 5 along dim 0, which 2 equal parts do not cut"):
        apply_key_map(km, {"w": torch.zeros(5)})


def test_reshape_gives_the_shape_and_export_goes_back_to_source_shape() -> None:
    km = one_map(
        {
            "reshape": {
                "from": "^pos_embed$",
                "to": "pos.table",
                "shape": [-1, 3],
                "source_shape": [1, 8, 3],
            }
        }
    )
    source = {"pos_embed": seeded(1, 8, 3)}
    mapped = apply_key_map(km, source)
    assert mapped.state_dict["pos.table"].shape == (8, 3)
    assert_identical(export_state_dict(mapped.state_dict, km), source)
    with pytest.raises(
        KeyMapError, match=r"the tensor is \(1, 4, 6\), source_shape says \[1, 8, 3\]"
    ):
        apply_key_map(km, {"pos_embed": torch.zeros(1, 4, 6)})


def test_reshape_to_another_element_count_names_both_shapes() -> None:
    km = one_map({"reshape": {"from": "^(w)$", "to": "t", "shape": [5, 5]}})
    with pytest.raises(
        KeyMapError,
        match=r"\(reshape\).*'w': cannot reshape \(8, 3\) \(24 elements\) to \[5, 5\]",
    ):
        apply_key_map(km, {"w": torch.zeros(8, 3)})


def test_unsqueeze_adds_a_dim_and_export_squeezes_it() -> None:
    km = one_map({"unsqueeze": {"from": r"^conv\.(\w+)$", "to": r"conv3d.\1", "dim": 2}})
    source = {"conv.weight": seeded(4, 3, 7, 7)}
    mapped = apply_key_map(km, source)
    assert mapped.state_dict["conv3d.weight"].shape == (4, 3, 1, 7, 7)
    assert_identical(export_state_dict(mapped.state_dict, km), source)
    with pytest.raises(
        KeyMapError, match=r"dim 9 is out of range for the result of unsqueezing \(4, 3, 7, 7\)"
    ):
        apply_key_map(
            one_map({"unsqueeze": {"from": "^(w)$", "to": "t", "dim": 9}}),
            {"w": seeded(4, 3, 7, 7)},
        )


def test_expand_repeats_along_a_new_dim_or_a_size_one_dim() -> None:
    weight = seeded(4, 3, 7, 7)
    km = one_map({"expand": {"from": "^(w)$", "to": "t", "dim": 2, "size": 3}})
    out = apply_key_map(km, {"w": weight}).state_dict["t"]
    assert out.shape == (4, 3, 3, 7, 7)
    assert out.is_contiguous()
    assert all(torch.equal(out[:, :, i], weight) for i in range(3))
    km = one_map({"expand": {"from": "^(w)$", "to": "t", "dim": 2, "size": 3, "new": False}})
    out = apply_key_map(km, {"w": weight.unsqueeze(2)}).state_dict["t"]
    assert out.shape == (4, 3, 3, 7, 7)
    with pytest.raises(
        KeyMapError, match=r"dim 2 of \(4, 3, 7, 7\) has size 7; new: false repeats a size-1 dim"
    ):
        apply_key_map(km, {"w": weight})


def test_copy_keeps_its_source_for_the_rules_and_owns_its_storage() -> None:
    km = one_map(
        {"copy": {"from": r"^l\.(\d+)\.attn$", "to": r"b.\1.attn_time"}},
        rules=[{"match": r"^l\.(\d+)\.attn$", "replace": r"b.\1.attn"}],
    )
    weight = seeded(4, 4)
    mapped = apply_key_map(km, {"l.0.attn": weight})
    assert sorted(mapped.state_dict) == ["b.0.attn", "b.0.attn_time"]
    copied = mapped.state_dict["b.0.attn_time"]
    assert torch.equal(copied, weight)
    assert copied.untyped_storage().data_ptr() != weight.untyped_storage().data_ptr()
    with pytest.raises(KeyMapError, match=r"transforms\[0\] \(copy\).*copy starts a model tensor"):
        export_state_dict(mapped.state_dict, km)


def test_fill_makes_a_tensor_like_a_source_key_or_of_a_shape() -> None:
    km = one_map(
        {"fill": {"to": r"attn.\1.k_bias", "like": r"^attn\.(\d+)\.q_bias$", "value": 0.0}},
        {"fill": {"to": "cls_token", "shape": [1, 1, 4], "value": 0.5, "dtype": "float64"}},
        rules=[{"match": "^(.*)$", "replace": r"\1"}],
    )
    source = {"attn.0.q_bias": seeded(4)}
    mapped = apply_key_map(km, source)
    assert torch.equal(mapped.state_dict["attn.0.k_bias"], torch.zeros(4))
    assert torch.equal(mapped.state_dict["attn.0.q_bias"], source["attn.0.q_bias"])  # kept
    assert torch.equal(
        mapped.state_dict["cls_token"], torch.full((1, 1, 4), 0.5, dtype=torch.float64)
    )
    assert_identical(export_state_dict(mapped.state_dict, km), source)


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        ("int64", 0.5, r"value 0\.5 is not an integer, and the tensor is torch\.int64"),
        ("uint8", -1, r"value -1\.0 does not fit torch\.uint8"),
    ],
)
def test_a_fill_value_the_dtype_cannot_hold_is_refused(
    dtype: str, value: float, message: str
) -> None:
    km = one_map({"fill": {"to": "x", "shape": [2], "dtype": dtype, "value": value}})
    with pytest.raises(KeyMapError, match=rf"transforms\[0\] \(fill\).*: {message}"):
        apply_key_map(km, {})


def test_a_filled_tensor_feeds_a_later_concat() -> None:
    """q and v biases without a k bias: a zero k bias is filled, then the three joined."""
    km = one_map(
        {"fill": {"to": r"l.\1.k_bias", "like": r"^l\.(\d+)\.q_bias$", "value": 0.0}},
        {
            "concat": {
                "from": [r"^l\.(\d+)\.q_bias$", r"l.\1.k_bias", r"l.\1.v_bias"],
                "to": r"b.\1.qkv.bias",
                "dim": 0,
            }
        },
    )
    source = {"l.0.q_bias": seeded(4), "l.0.v_bias": seeded(4, seed=1)}
    mapped = apply_key_map(km, source)
    expected = torch.cat([source["l.0.q_bias"], torch.zeros(4), source["l.0.v_bias"]])
    assert_identical(mapped.state_dict, {"b.0.qkv.bias": expected})
    assert [t.op for t in mapped.transformed] == ["fill", "concat"]
    assert_identical(export_state_dict(mapped.state_dict, km), source)


def test_drop_with_a_value_is_restored_on_export_and_refuses_other_values() -> None:
    km = one_map(
        {"drop": {"from": r"^l\.(\d+)\.mask$", "like": r"l.\1.scale", "value": 0.0}},
        rules=[{"match": r"^l\.(\d+)\.scale$", "replace": r"b.\1.scale"}],
    )
    source = {"l.0.mask": torch.zeros(3), "l.0.scale": seeded(3)}
    mapped = apply_key_map(km, source)
    assert list(mapped.state_dict) == ["b.0.scale"]
    assert_identical(export_state_dict(mapped.state_dict, km), source)
    with pytest.raises(
        KeyMapError,
        match=r"the tensor \(3,\) holds values other than 0.0; discarding it would lose them",
    ):
        apply_key_map(km, {"l.0.mask": torch.ones(3), "l.0.scale": seeded(3)})


def test_renames_take_the_first_matching_rule_and_drops_are_reported() -> None:
    km = key_map_from_dict(
        {
            "source": "synthetic",
            "rules": [
                {"match": r"^fc\.(.*)$", "replace": r"heads.action.fc.\1"},
                {"match": r"^(.*)$", "replace": r"backbone.\1"},
            ],
            "drop": [r"^aux\."],
        }
    )
    mapped = apply_key_map(
        km, {"fc.weight": seeded(2), "conv.weight": seeded(2), "aux.w": seeded(2)}
    )
    assert mapped.renamed == {
        "fc.weight": "heads.action.fc.weight",
        "conv.weight": "backbone.conv.weight",
    }
    assert mapped.dropped == ["aux.w"]


# -- round trips: source -> ours -> source, bit-identical --------------------------------------

EVERY_TRANSFORM = r"""
source: synthetic
transforms:
  - fill: {to: 'layers.\1.k_bias', like: '^layers\.(\d+)\.q_bias$', value: 0.0}
  - concat: {from: ['^layers\.(\d+)\.q_bias$', 'layers.\1.k_bias', 'layers.\1.v_bias'],
             to: 'blocks.\1.qkv.bias', dim: 0}
  - concat: {from: ['^layers\.(\d+)\.up\.weight$', 'layers.\1.gate.weight'],
             to: 'blocks.\1.mlp.weight', dim: 1, sizes: [2, 5]}
  - split: {from: '^layers\.(\d+)\.in_proj\.bias$', to: ['blocks.\1.a.bias', 'blocks.\1.b.bias'],
            dim: 0, sizes: [2, 4]}
  - split: {from: '^layers\.(\d+)\.pair$', to: ['blocks.\1.first', 'blocks.\1.second'], dim: -1,
            parts: 2}
  - reshape: {from: '^pos_embed$', to: 'pos.table', shape: [-1, 3], source_shape: [1, 8, 3]}
  - drop: {from: '^layers\.(\d+)\.mask$', like: 'layers.\1.scale', value: 0.0}
  - drop: {from: '^version$', shape: [], dtype: int64, value: 2}
  - unsqueeze: {from: '^layers\.(\d+)\.scale$', to: 'blocks.\1.scale', dim: 0}
  - fill: {to: 'cls_token', shape: [1, 3], value: 0.0}
rules:
  - {match: '^head\.(.*)$', replace: 'heads.action.\1'}
  - {match: '^layers\.(\d+)\.(norm\.(?:weight|bias))$', replace: 'blocks.\1.\2'}
"""


def every_transform_source() -> dict[str, torch.Tensor]:
    source = {"pos_embed": seeded(1, 8, 3), "version": torch.tensor(2), "head.weight": seeded(5, 3)}
    for i in range(2):
        p = f"layers.{i}."
        shapes = {"q_bias": (4,), "v_bias": (4,), "up.weight": (3, 2), "gate.weight": (3, 5),
                  "in_proj.bias": (6,), "pair": (2, 6), "scale": (3,),
                  "norm.weight": (3,)}  # fmt: skip
        for j, (name, shape) in enumerate(shapes.items()):
            source[p + name] = seeded(*shape, seed=10 * i + j)
        source[p + "mask"] = torch.zeros(3)
    return source


def test_a_map_using_every_transform_round_trips_bit_identically(tmp_path: Path) -> None:
    path = write(tmp_path, EVERY_TRANSFORM)
    km = read_key_map(path)
    source = every_transform_source()
    mapped = apply_key_map(km, source)
    assert not mapped.unmapped
    assert {t.op for t in mapped.transformed} == {
        "fill",
        "concat",
        "split",
        "reshape",
        "drop",
        "unsqueeze",
    }
    assert_identical(export_state_dict(mapped.state_dict, path), source)  # by path too


@pytest.mark.parametrize("arch", known_key_maps("torchvision"))
def test_torchvision_weights_round_trip_bit_identically(arch: str) -> None:
    with torch.device("meta"):
        reference = torchvision_model(arch)
    source = random_like(reference.state_dict())
    mapped = convert_state_dict(arch, source)
    assert_identical(export_state_dict(mapped.state_dict, key_map(arch)), source)


@pytest.mark.parametrize("arch", known_key_maps("pytorchvideo"))
def test_pytorchvideo_weights_round_trip_bit_identically(arch: str) -> None:
    reference: nn.Module
    if arch == "mvit_base_16x4":  # its builder cannot run on meta: a small clip keeps it cheap
        reference = hub.mvit_base_16x4(pretrained=False, spatial_size=32, temporal_size=2)
    else:
        with torch.device("meta"):
            reference = getattr(hub, arch)(pretrained=False)
    source = random_like(reference.state_dict())
    mapped = convert_state_dict(arch, source, "pytorchvideo")
    assert_identical(export_state_dict(mapped.state_dict, key_map(arch, "pytorchvideo")), source)


def test_export_takes_a_model_and_picks_the_rule_that_spells_more_of_the_key() -> None:
    """``stem.norm.x`` could come from ``conv.norm.x`` (the wide rule) or ``norm.x`` (the rule
    written for it): the rule that spells more of the key wins."""
    km = key_map_from_dict(
        {
            "source": "synthetic",
            "rules": [
                {"match": r"^conv\.(.*)$", "replace": r"stem.\1"},
                {"match": r"^norm\.(.*)$", "replace": r"stem.norm.\1"},
            ],
        }
    )
    model = nn.Module()
    model.stem = nn.Module()
    model.stem.weight = nn.Parameter(seeded(2))
    model.stem.norm = nn.LayerNorm(2)
    assert set(export_state_dict(model, km)) == {"conv.weight", "norm.weight", "norm.bias"}


def test_export_gives_a_key_that_only_looks_like_a_transform_output_to_its_rule() -> None:
    km = key_map_from_dict(
        {
            "source": "s",
            "transforms": [{"unsqueeze": {"from": r"^conv\.(.*)$", "to": r"b.\1", "dim": 0}}],
            "rules": [{"match": r"^norm\.(weight)$", "replace": r"b.\1"}],
        }
    )
    source = {"conv.kernel": seeded(3), "norm.weight": seeded(3, seed=1)}
    mapped = apply_key_map(km, source)
    assert set(mapped.state_dict) == {"b.kernel", "b.weight"}  # both fit the output pattern
    assert_identical(export_state_dict(mapped.state_dict, km), source)


# -- export refusals ---------------------------------------------------------------------------


def test_export_refuses_an_expand_naming_the_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path, "source: s\ntransforms:\n  - expand: {from: '^(w)$', to: t, dim: 0, size: 2}\n"
    )
    km = read_key_map(path)
    mapped = apply_key_map(km, {"w": seeded(3)})
    with pytest.raises(
        KeyMapError,
        match=rf"cannot export through transforms\[0\] \(expand\) at {path}:3:5: expand repeats",
    ):
        export_state_dict(mapped.state_dict, km)


def test_export_refuses_a_reshape_without_source_shape() -> None:
    km = one_map({"reshape": {"from": "^(w)$", "to": "t", "shape": [6]}})
    with pytest.raises(KeyMapError, match=r"transforms\[0\] \(reshape\).*add source_shape"):
        export_state_dict({"t": seeded(6)}, km)


def test_export_refuses_a_key_map_that_drops_source_keys() -> None:
    km = key_map_from_dict(
        {"source": "s", "rules": [{"match": "^(.*)$", "replace": r"\1"}], "drop": ["^aux$"]}
    )
    with pytest.raises(KeyMapError, match=r"drop \['\^aux\$'\] discards source tensors on import"):
        export_state_dict({"w": seeded(2)}, km)


def test_export_refuses_to_discard_a_filled_tensor_that_changed() -> None:
    km = one_map({"fill": {"to": r"\1.k_bias", "like": r"^(a)\.q_bias$", "value": 0.0}},
                 rules=[{"match": "^(.*)$", "replace": r"\1"}])  # fmt: skip
    state = {"a.q_bias": seeded(2), "a.k_bias": torch.tensor([0.0, 0.3])}
    with pytest.raises(KeyMapError, match=r"cannot export 'a.k_bias'.*holds values other than 0.0"):
        export_state_dict(state, km)


@pytest.mark.parametrize(
    ("match", "reason"),
    [
        (r"fc\.(.*)$", "is not anchored: start it with"),
        (r"^fc\..*$", r"'\.' in '\^fc\\\.\.\*\$' stands for more than one key outside a group"),
        (r"^(?:fc|head)\.(.*)$", "does not capture"),
    ],
)
def test_export_names_the_rules_it_cannot_read_backwards(match: str, reason: str) -> None:
    km = key_map_from_dict({"source": "s", "rules": [{"match": match, "replace": "heads.w"}]})
    with pytest.raises(
        KeyMapError,
        match=rf"gives 'heads.w' \(rules that cannot be read backwards: rules\[0\].*{reason}",
    ):
        export_state_dict({"heads.w": seeded(2)}, km)


# -- reading key-map files ---------------------------------------------------------------------


def test_an_unknown_operation_is_located_with_the_valid_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path, "source: s\ntransforms:\n  - concatenate: {from: [a, b], to: c, dim: 0}\n"
    )
    with pytest.raises(KeyMapError) as caught:
        read_key_map(path)
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{path}:3:5: transforms[0].concatenate: unknown key 'concatenate'; valid keys: concat, "
        "copy, drop, expand, fill, reshape, split, unsqueeze (did you mean 'concat'?)"
    )


def test_wrong_types_and_missing_keys_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        source: s
        transforms:
          - split: {from: '^(w)$', to: [a, b], dim: '0', parts: 2}
          - unsqueeze: {from: '^(w)$', dim: 0}
        """,
    )
    with pytest.raises(KeyMapError) as caught:
        read_key_map(path)
    assert [str(p) for p in caught.value.problems] == [
        f'{path}:3:45: transforms[0].split.dim: expected integer, got string "0"',
        f"{path}:4:16: transforms[1].unsqueeze: missing required key 'to'",
    ]


def test_every_problem_of_a_key_map_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        r"""
        source: s
        transforms:
          - split: {from: '^(x', to: [a, b], dim: 0}
          - split: {from: '^(w)$', to: [a, b, c], dim: 0, sizes: [1, 2]}
          - fill: {to: k, value: 0}
          - drop: {from: '^m$', like: w}
          - reshape: {from: '^(w)$', to: t, shape: [-1, -1]}
          - concat: {from: ['^(w)$', 'v'], to: t, dim: 0, sizes: [1, 2, 3]}
        rules:
          - {match: '^(.*)$', replace: 'backbone.\2'}
          - {match: '^(.*)$', replace: 'backbone\.\1'}
        """,
    )
    with pytest.raises(KeyMapError, match=r"^9 problems in key map:") as caught:
        read_key_map(path)
    text = [str(p).removeprefix(f"{path}:") for p in caught.value.problems]
    assert text == [
        "4:19: transforms[0].split.from: '^(x' is not a valid regex: missing ), unterminated "
        "subpattern at position 1",
        "4:12: transforms[0].split: give either sizes (a list, one per output) or parts "
        "(equal parts)",
        "5:58: transforms[1].split.sizes: 2 sizes for 3 outputs; give one size per output",
        "6:11: transforms[2].fill: give either like (a pattern of keys to copy) or shape",
        "7:31: transforms[3].drop.like: like restores a dropped tensor on export and needs value: "
        "(what every element of it holds)",
        "8:44: transforms[4].reshape.shape: [-1, -1] has 2 -1; at most one size may be -1",
        "9:58: transforms[5].concat.sizes: 3 sizes for 2 inputs; give one size per input",
        "11:32: rules[0].replace: 'backbone.\\2': \\2 refers to group 2, but '^(.*)$' has 1 group",
        "12:32: rules[1].replace: 'backbone\\.\\1': unknown escape \\.: a template is a key, not a "
        "regex (write '.' for a dot); it knows \\1, \\g<name> and \\\\",
    ]


def test_a_json_key_map_reads_like_a_yaml_one(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(
        '{"source": "s",\n "transforms": [{"unsqueeze": {"from": "^(w)$", "to": "t", "dim": -1}}]}',
        encoding="utf-8",
    )
    km = read_key_map(path)
    assert km.transforms[0].where == f"{path}:2:17"
    mapped = apply_key_map(km, {"w": seeded(3)})
    assert mapped.state_dict["t"].shape == (3, 1)
    assert str(mapped.transformed[0]) == "unsqueeze (transforms[0]): w (3,) -> t (3, 1)"
    path.write_text('{"source": "s", "transforms": [{"unsqueeze": {"from": "^(w)$"}}]}')
    with pytest.raises(
        KeyMapError, match=r"map.json:1:46: transforms\[0\].unsqueeze: missing required key 'to'"
    ):
        read_key_map(path)


def test_a_key_map_given_as_data_is_checked_like_a_file() -> None:
    with pytest.raises(KeyMapError, match=r"<key map>: transforms\[0\].split.to: expected array"):
        key_map_from_dict(
            {
                "source": "s",
                "transforms": [{"split": {"from": "a", "to": "b", "dim": 0, "parts": 2}}],
            }
        )
    assert resolve_key_map({"source": "s"}).source == "s"


def test_a_file_that_is_not_a_key_map_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyMapError, match="missing required key 'source'"):
        read_key_map(write(tmp_path, "rules: []\n"))
    with pytest.raises(KeyMapError, match="not valid YAML"):
        read_key_map(write(tmp_path, "source: [\n"))
    with pytest.raises(KeyMapError, match="cannot read"):
        read_key_map(tmp_path / "absent.yaml")


def test_every_shipped_key_map_reads_and_names_its_architecture() -> None:
    for source in ("torchvision", "pytorchvideo"):
        for arch in known_key_maps(source):
            km = key_map(arch, source)
            assert (km.architecture, km.source) == (arch, source)


# -- failures on tensors -----------------------------------------------------------------------


def test_a_missing_partner_key_is_named_with_the_closest() -> None:
    km = one_map({"concat": {"from": [r"^(\w+)\.query$", r"\1.key"], "to": r"\1.qk", "dim": 0}})
    with pytest.raises(
        KeyMapError,
        match=r"'a.query': it needs 'a.key', which the state dict does not hold "
        r"\(closest: 'a.keys'\)",
    ):
        apply_key_map(km, {"a.query": seeded(2), "a.keys": seeded(2)})


def test_two_keys_sent_to_one_are_refused() -> None:
    km = key_map_from_dict({"source": "s", "rules": [{"match": r"^(a|b)\.w$", "replace": "w"}]})
    with pytest.raises(KeyMapError, match=r"keys 'a\.w' and 'b\.w' both map to 'w'"):
        apply_key_map(km, {"a.w": seeded(2), "b.w": seeded(2)})
    km = one_map({"unsqueeze": {"from": "^(a)$", "to": "b", "dim": 0}})
    with pytest.raises(KeyMapError, match="it produces 'b', which the state dict already holds"):
        apply_key_map(km, {"a": seeded(2), "b": seeded(2)})


def test_keys_no_entry_covers_are_listed_not_guessed() -> None:
    km = key_map_from_dict(
        {"source": "s", "rules": [{"match": r"^fc\.(.*)$", "replace": r"head.\1"}]}
    )
    mapped = apply_key_map(km, {"fc.w": seeded(2), "conv.w": seeded(2)})
    assert mapped.unmapped == ["conv.w"]
    with pytest.raises(
        KeyMapError, match=r"torchvision keys 'x' match no rule of the r3d_18 key map"
    ):
        convert_state_dict("r3d_18", {"x": seeded(2)})
