"""``load_weights``: put a state dict into a model, strictly by default, and report every key.

Intended changes are declared, never silent: ``reinit`` patterns name tensors to initialise
afresh (a new head), ``key_map`` renames source keys, ``inflate`` turns 2D convolution weights
into 3D ones (I3D), ``adapt`` brings a checkpoint into a changed architecture by the rules
its layers declare (``_adapt``), and the ``module.`` (DistributedDataParallel) and
``_orig_mod.`` (torch.compile) prefixes are stripped and noted. Nothing touches the model
until the whole report is known, so a refused load leaves the model as it was.

A model still on the meta device receives the tensors themselves (``assign=True``): loading a
memory-mapped checkpoint then copies nothing, and only tensors the source lacks are allocated
and initialised.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import BuildError, CheckpointError, RegistryError
from ..layers import get_init
from ..model import initializer_for
from ..spec import ArchitectureSpec
from ..zoo import AppliedTransform, apply_key_map, convert_state_dict, known_key_maps
from ..zoo import KeyMap as FileKeyMap
from ._adapt import Adapt, AdaptPlan, plan_adaptation
from ._read import read_checkpoint, refuse_quantized
from ._report import DtypeMismatch, LoadError, LoadReport, ShapeMismatch, spec_diff
from ._types import Checkpoint

__all__ = ["KeyMap", "WeightsSource", "apply_weights", "load_weights", "unwrap_model"]

logger = logging.getLogger(__name__)

# A rename (mapping, or function returning the new key or None to drop it), or a key map with
# transforms (``video_interpreter.zoo.read_key_map``).
KeyMap = Mapping[str, str] | Callable[[str], str | None] | FileKeyMap
WeightsSource = str | Path | Mapping[str, torch.Tensor] | Checkpoint

_DDP = "module."
_COMPILED = "_orig_mod"
_HINT = (
    "pass strict=False to load what fits, reinit=[...] to declare tensors to initialise "
    "afresh (glob patterns such as 'heads.action.*'), or key_map= to rename source keys"
)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(getattr(model, _COMPILED, None), nn.Module):
            model = getattr(model, _COMPILED)
        else:
            return model


def _spec_of(model: nn.Module) -> ArchitectureSpec | None:
    spec = getattr(model, "spec", None)
    return spec if isinstance(spec, ArchitectureSpec) else None


def _first_device(model: nn.Module) -> torch.device:
    tensor: torch.Tensor
    for tensor in model.state_dict().values():
        if not tensor.is_meta:
            return tensor.device
    return torch.device("cpu")


def _resolve_source(
    source: WeightsSource, model: nn.Module, verify: str | None, trust_pickle: bool
) -> tuple[dict[str, torch.Tensor], ArchitectureSpec | None, str]:
    if isinstance(source, Checkpoint):
        refuse_quantized(source)
        return source.state_dict, source.spec, str(source.path)
    if isinstance(source, str | Path):
        checkpoint = read_checkpoint(
            source, verify=verify, map_location=_first_device(model), trust_pickle=trust_pickle
        )
        refuse_quantized(checkpoint)
        return checkpoint.state_dict, checkpoint.spec, str(source)
    if verify is not None:
        raise CheckpointError("verify= checks a file's sha256; the source is an in-memory dict")
    inner = source.get("model_state_dict")
    state = inner if isinstance(inner, Mapping) else source
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"the source state dict has {len(bad)} entries that are not str -> tensor, "
            f"e.g. {bad[0]!r}"
        )
    return dict(state), None, "state dict"


def _foreign_hint(
    state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    source_spec: ArchitectureSpec | None,
) -> str:
    """When a state dict that does not fit is another library's (its keys follow one of the
    zoo's key maps), say how to import it."""
    if source_spec is not None or not state:
        return ""
    candidates: list[tuple[int, str]] = []
    for architecture in known_key_maps("torchvision"):
        try:
            mapped = convert_state_dict(architecture, state, "torchvision")
        except (CheckpointError, RegistryError):
            continue  # some key follows none of this map's rules
        if not mapped.renamed:
            continue
        fits = sum(
            1
            for key, tensor in mapped.state_dict.items()
            if key in model_state and model_state[key].shape == tensor.shape
        )
        candidates.append((fits, architecture))
    if not candidates:
        return ""
    best = max(fits for fits, _ in candidates)
    names = sorted(name for fits, name in candidates if fits == best)
    arch = names[0] if len(names) == 1 else "ARCH"
    which = names[0] if len(names) == 1 else f"one of {', '.join(names)}"
    return (
        f"the keys are those of a torchvision {which} state dict: import it with "
        f"`video-interpreter convert --from torchvision {arch} IN OUT` "
        "(video_interpreter.checkpoint.import_state_dict)"
    )


def _strip_prefixes(
    state: dict[str, torch.Tensor], model_keys: Sequence[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    notes: list[str] = []
    segment = f".{_COMPILED}."
    if not any(segment in f".{k}" for k in model_keys) and any(segment in f".{k}" for k in state):
        stripped = {
            ".".join(p for p in k.split(".") if p != _COMPILED): v for k, v in state.items()
        }
        if len(stripped) == len(state):
            count = sum(segment in f".{k}" for k in state)
            notes.append(f"removed '{_COMPILED}.' (torch.compile) from {count} keys")
            state = stripped
    if (
        state
        and all(k.startswith(_DDP) for k in state)
        and not any(k.startswith(_DDP) for k in model_keys)
    ):
        state = {k[len(_DDP) :]: v for k, v in state.items()}
        notes.append(
            f"stripped prefix '{_DDP}' (DistributedDataParallel / DataParallel) from "
            f"{len(state)} keys"
        )
    return state, notes


def _apply_key_map(
    state: dict[str, torch.Tensor], key_map: KeyMap | None
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str], tuple[AppliedTransform, ...]]:
    if key_map is None:
        return state, {}, [], ()
    if isinstance(key_map, FileKeyMap):
        mapped = apply_key_map(key_map, state)
        # keys the map does not cover keep their names: the report lists them as unexpected
        kept = {**mapped.state_dict, **{k: state[k] for k in mapped.unmapped}}
        return kept, mapped.renamed, mapped.dropped, tuple(mapped.transformed)
    out: dict[str, torch.Tensor] = {}
    renamed: dict[str, str] = {}
    dropped: list[str] = []
    origin: dict[str, str] = {}
    for key, tensor in state.items():
        new = key_map.get(key, key) if isinstance(key_map, Mapping) else key_map(key)
        if new is None:
            dropped.append(key)
            continue
        if new in out:
            raise CheckpointError(f"key_map sends both {origin[new]!r} and {key!r} to {new!r}")
        out[new], origin[new] = tensor, key
        if new != key:
            renamed[key] = new
    return out, renamed, dropped, ()


def _patterns(value: bool | str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("*",) if value else ()
    return (value,) if isinstance(value, str) else tuple(value)


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _inflatable(have: torch.Tensor, want: torch.Tensor) -> bool:
    return (
        have.dim() == 4
        and want.dim() == 5
        and have.shape[:2] == want.shape[:2]
        and have.shape[2:] == want.shape[3:]
    )


def _inflate(have: torch.Tensor, frames: int) -> torch.Tensor:
    """I3D inflation: repeat a 2D kernel over ``frames`` and divide by it, so a clip of
    identical frames gives the 2D network's response."""
    return have.unsqueeze(2).expand(-1, -1, frames, -1, -1) / frames


def _differing(
    state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor], limit: int = 8
) -> str:
    """The keys whose tensors differ in shape or presence, for a refusal's message."""
    keys = [
        f"{key} {tuple(state[key].shape) if key in state else 'absent'} -> {tuple(tensor.shape)}"
        for key, tensor in model_state.items()
        if key not in state or state[key].shape != tensor.shape
    ]
    keys += [
        f"{key} {tuple(state[key].shape)} -> absent" for key in state if key not in model_state
    ]
    if not keys:
        return ""
    more = f"\n  ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return "Tensors that differ:\n  " + "\n  ".join(keys[:limit]) + more + "\n"


def _owner(model: nn.Module, key: str) -> tuple[nn.Module, str]:
    module_path, _, name = key.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), name


def _init_module(module: nn.Module, scheme: str, key: str) -> None:
    """Initialise one module's own tensors as the builder would (the spec's init scheme)."""
    try:
        init = initializer_for(key.rpartition(".")[0], module, get_init(scheme))
    except BuildError as exc:
        raise CheckpointError(
            f"cannot initialise {key!r} afresh: {exc}; load that tensor from the checkpoint"
        ) from exc
    if init is not None:
        init()


def _fill(
    model: nn.Module,
    model_state: Mapping[str, torch.Tensor],
    to_load: Mapping[str, torch.Tensor],
    fresh: Sequence[str],
    keep_source_dtype: bool,
) -> None:
    """Load ``to_load`` and initialise the modules owning ``fresh`` keys (and any tensor still on
    the meta device), without disturbing loaded tensors that share a module with them."""
    assign = any(t.is_meta for t in model_state.values())
    spec = _spec_of(model)
    scheme = spec.init if spec is not None else "torch"
    device = torch.device("cpu")
    with torch.no_grad():
        if assign:
            tensors = dict(to_load)
            if not keep_source_dtype:
                for key, tensor in tensors.items():
                    if tensor.dtype != model_state[key].dtype:
                        tensors[key] = tensor.to(model_state[key].dtype)
            model.load_state_dict(tensors, strict=False, assign=True)
            if tensors:
                device = next(iter(tensors.values())).device
            if len(tensors) < len(model_state):  # what the source did not fill is still meta
                unfilled = [k for k in model_state if k not in tensors]
                fresh = list(dict.fromkeys([*fresh, *unfilled]))
            # Non-persistent buffers (fixed position tables) are never in a state dict: their
            # modules compute them once storage exists.
            computed = [k for k, b in model.named_buffers() if b.is_meta and k not in model_state]
            fresh = list(dict.fromkeys([*fresh, *computed]))
        else:
            model.load_state_dict(dict(to_load), strict=False)
        owners: dict[int, tuple[nn.Module, str]] = {}
        for key in fresh:
            module, _ = _owner(model, key)
            owners.setdefault(id(module), (module, key))
        for module, key in owners.values():
            if assign:
                module.to_empty(device=device, recurse=False)
            _init_module(module, scheme, key)
            prefix = key.rpartition(".")[0]
            own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
            for name, tensor in own:
                full = f"{prefix}.{name}" if prefix else name
                if full in to_load and full not in fresh:
                    tensor.copy_(to_load[full])


def load_weights(
    model: nn.Module,
    source: WeightsSource,
    *,
    strict: bool = True,
    key_map: KeyMap | None = None,
    reinit: Sequence[str] = (),
    inflate: bool | Sequence[str] = False,
    allow_spec_change: bool = False,
    adapt: bool | Adapt = False,
    verify: str | None = None,
    trust_pickle: bool = False,
) -> LoadReport:
    """Load ``source`` (a checkpoint path, a ``Checkpoint`` or a state dict) into ``model``.

    Strict by default: any missing, unexpected or mis-shaped key raises ``LoadError`` (its
    ``.report`` lists them) before the model is touched. ``reinit`` glob patterns declare model
    keys to initialise afresh instead of loading (e.g. ``["heads.action.*"]`` for a new class
    count); ``key_map`` renames source keys (a mapping, or a function returning the new key or
    None to drop it), or is a ``video_interpreter.zoo.KeyMap`` with tensor transforms (its
    applications listed in ``report.transformed``); ``inflate`` (True, or glob patterns)
    inflates 2D conv weights to 3D.
    Dtypes are checked like shapes: a floating-point tensor is cast to the model's floating
    dtype and the report lists the cast; any other difference (an integer tensor for a float
    weight, a float step counter) is a mismatch. A source whose architecture fingerprint
    differs from the model's is refused with a diff of the two specs unless
    ``allow_spec_change=True``, whatever ``reinit`` or ``inflate`` say.

    ``adapt=True`` (or ``Adapt(inflation="average")``) brings the checkpoint into a changed
    architecture: each tensor that differs is adapted by the rule its layer declares (a head
    re-initialised, a position table resampled to the new grid, a relative position table to
    the new window, a stem's input channels changed, a 2D kernel inflated), and every one is a
    line of ``report.adapted``; a tensor without a rule is refused as without ``adapt``::

        report = load_weights(model_10_classes, "k400.safetensors", adapt=True)
        print(report)  # heads.action.fc.weight (400, 512) -> (10, 512): head 'action' ...

    Examples:
        >>> from video_interpreter import build_model, load_weights, save_model
        >>> _ = save_model(build_model("tiny_r2plus1d"), "tiny.pth")
        >>> wider = build_model("tiny_r2plus1d", overrides=["heads.action.num_classes=7"])
        >>> report = load_weights(
        ...     wider, "tiny.pth", reinit=["heads.action.*"], allow_spec_change=True
        ... )
        >>> report.ok
        True
    """
    return apply_weights(
        model,
        source,
        strict=strict,
        key_map=key_map,
        reinit=reinit,
        inflate=inflate,
        allow_spec_change=allow_spec_change,
        adapt=adapt,
        verify=verify,
        trust_pickle=trust_pickle,
    )


def apply_weights(
    model: nn.Module,
    source: WeightsSource,
    *,
    strict: bool = True,
    key_map: KeyMap | None = None,
    reinit: Sequence[str] = (),
    inflate: bool | Sequence[str] = False,
    allow_spec_change: bool = False,
    adapt: bool | Adapt = False,
    verify: str | None = None,
    trust_pickle: bool = False,
    keep_source_dtype: bool = False,
) -> LoadReport:
    """``load_weights``; with ``keep_source_dtype`` a meta model takes the source's dtypes
    (``load_model``: no conversion copy) instead of converting to its own."""
    target = unwrap_model(model)
    patterns = _patterns(reinit)
    inflate_patterns = _patterns(inflate)
    state, source_spec, label = _resolve_source(source, target, verify, trust_pickle)
    target_spec = _spec_of(target)
    target_label = (
        f"{target_spec.name}/{target_spec.version}" if target_spec else type(target).__name__
    )
    diff = None
    if source_spec and target_spec and source_spec.fingerprint != target_spec.fingerprint:
        diff = spec_diff(source_spec, target_spec)
        # reinit and inflate say which tensors to treat differently, not that the architecture
        # may differ: only allow_spec_change (or adapt, which is about that change) says that.
        if not allow_spec_change and not adapt:
            raise CheckpointError(
                f"{label} holds architecture {source_spec.fingerprint[:12]} "
                f"({source_spec.name}/{source_spec.version}); the model is "
                f"{target_spec.fingerprint[:12]} ({target_label}): refusing to load weights of "
                f"a different architecture. Spec diff:\n{diff}\n"
                f"{_differing(state, target.state_dict())}If the change is intended (e.g. a "
                "new head), pass allow_spec_change=True with reinit=[...] for the tensors the "
                "change replaces, or adapt=True to adapt them by their layers' rules"
            )
    model_state = target.state_dict()
    state, notes = _strip_prefixes(state, list(model_state))
    state, remapped, dropped, transformed = _apply_key_map(state, key_map)
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(k, pattern) for k in model_state):
            sample = ", ".join(list(model_state)[-3:])
            raise CheckpointError(
                f"reinit pattern {pattern!r} matches no key of the model (keys look like {sample})"
            )

    # A model rebuilt from the checkpoint (load_model) takes the source's floating dtype when
    # the source has one; a source mixing several is cast to the model's, so one model never
    # mixes float64 and float32 weights (a forward would fail).
    floating = {t.dtype for t in state.values() if t.is_floating_point()}
    adopt_dtype = keep_source_dtype and len(floating) <= 1
    options = Adapt() if adapt is True else adapt or None
    plan = AdaptPlan()
    if options is not None:
        scheme = target_spec.init if target_spec is not None else "torch"
        plan = plan_adaptation(target, model_state, state, source_spec, options, scheme)
        state = {**state, **plan.tensors}
    adapt_fresh, adapt_dropped = set(plan.fresh), set(plan.dropped)
    loaded: list[str] = []
    missing: list[str] = []
    mismatched: list[ShapeMismatch] = []
    dtype_mismatched: list[DtypeMismatch] = []
    cast: list[str] = []
    dtypes: dict[str, tuple[str, str]] = {}
    fresh: list[str] = []
    inflated: list[str] = []
    shapes: dict[str, tuple[tuple[int, ...] | None, tuple[int, ...] | None]] = {}
    to_load: dict[str, torch.Tensor] = {}
    for key, want in model_state.items():
        have = state.get(key)
        shapes[key] = (tuple(have.shape) if have is not None else None, tuple(want.shape))
        if key in adapt_fresh or _matches(key, patterns):
            fresh.append(key)
        elif have is None:
            missing.append(key)
        elif have.dtype != want.dtype and not (
            have.is_floating_point() and want.is_floating_point()
        ):
            dtype_mismatched.append(DtypeMismatch(key, str(have.dtype), str(want.dtype)))
        elif have.shape == want.shape or (
            _matches(key, inflate_patterns) and _inflatable(have, want)
        ):
            if have.shape != want.shape:
                have = _inflate(have, want.shape[2])
                inflated.append(key)
            if have.dtype != want.dtype and not adopt_dtype:
                cast.append(key)
                dtypes[key] = (str(have.dtype), str(want.dtype))
                have = have.to(want.dtype)
            to_load[key] = have
            loaded.append(key)
        else:
            mismatched.append(ShapeMismatch(key, tuple(have.shape), tuple(want.shape)))
    unexpected: list[str] = []
    for key, tensor in state.items():
        if key in model_state:
            continue
        if key in adapt_dropped or _matches(key, patterns):
            dropped.append(key)  # declared: the model replaced this tensor
        else:
            unexpected.append(key)
        shapes[key] = (tuple(tensor.shape), None)

    report = LoadReport(
        source=label,
        target=target_label,
        loaded=tuple(loaded),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        mismatched=tuple(mismatched),
        dtype_mismatched=tuple(dtype_mismatched),
        cast=tuple(cast),
        dtypes=dtypes,
        reinitialized=tuple(fresh),
        remapped=remapped,
        transformed=transformed,
        dropped=tuple(dropped),
        inflated=tuple(inflated),
        adapted=tuple(plan.adapted),
        notes=tuple(notes),
        shapes=shapes,
        spec_diff=diff,
    )
    if strict and not report.ok:
        raise LoadError(report, _HINT, headline=_foreign_hint(state, model_state, source_spec))
    unfilled = len(missing) + len(mismatched) + len(dtype_mismatched)
    if unfilled and any(t.is_meta for t in model_state.values()):
        spec = _spec_of(target)
        scheme = spec.init if spec is not None else "torch"
        note = (
            f"{unfilled} tensor{'s' if unfilled > 1 else ''} the source could not fill "
            f"initialised afresh ({scheme} scheme)"
        )
        report = dataclasses.replace(report, notes=(*report.notes, note))
    # A live model keeps its own values for keys the source cannot fill; on a meta model
    # those are initialised like the declared ones.
    _fill(target, model_state, to_load, fresh, keep_source_dtype)
    logger.debug("%s", report.summary())
    return report
