"""``write_model_card``: a spec, model or checkpoint -> a Markdown model card with YAML front
matter (the Hugging Face convention) and its diagram beside it.

On top of the flow, beside the summaries and diagrams it reuses: the figures in the card are
``summarize``'s, the drawing is ``render_diagram``'s, the training state is what the checkpoint
carries (``read_metadata``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from ..checkpoint import CheckpointMetadata, read_metadata, sha256_file
from ..checkpoint._atomic import atomic_write
from ..diagram import GraphvizNotFoundError, build_diagram
from ..errors import Problem, SpecError
from ..spec import ArchitectureSpec, load_spec
from ..summary import CHECKPOINT_SUFFIXES, ModelSource, ModelSummary, summarize

__all__ = ["LIBRARY_NAME", "ModelCard", "model_card", "write_model_card"]

logger = logging.getLogger(__name__)

LIBRARY_NAME = "video_interpreter"


@dataclass(frozen=True)
class ModelCard:
    """A rendered card: its front matter (plain data), its Markdown text, and the drawing to
    put beside it (SVG bytes; None when Graphviz is missing and Mermaid is inlined instead)."""

    metadata: Mapping[str, Any]
    text: str
    svg: bytes | None


def _checkpoint_path(source: ModelSource) -> Path | None:
    if isinstance(source, str | Path) and Path(source).suffix.lower() in CHECKPOINT_SUFFIXES:
        return Path(source)
    return None


def _spec_of(source: ModelSource, metadata: CheckpointMetadata | None) -> ArchitectureSpec | None:
    if metadata is not None:
        return None if metadata.spec is None else ArchitectureSpec.from_resolved(metadata.spec)
    if isinstance(source, nn.Module):
        spec = getattr(source, "spec", None)
        return spec if isinstance(spec, ArchitectureSpec) else None
    return load_spec(source)


def _pipeline_tag(spec: ArchitectureSpec) -> str | None:
    heads = spec["heads"].values()
    if any(str(head.get("type", "")).startswith("Classification") for head in heads):
        return "video-classification"
    return None


def _front_matter(
    spec: ArchitectureSpec,
    summary: ModelSummary,
    metadata: CheckpointMetadata | None,
    sha256: str | None,
    license: str | None,
) -> dict[str, Any]:
    pipeline = _pipeline_tag(spec)
    tags = [LIBRARY_NAME, "pytorch", "video", spec.name]
    if pipeline is not None:
        tags.insert(1, pipeline)
    data: dict[str, Any] = {"library_name": LIBRARY_NAME, "tags": tags}
    if pipeline is not None:
        data["pipeline_tag"] = pipeline
    if license:
        data["license"] = license
    metrics = dict(metadata.metrics) if metadata is not None else {}
    if metrics:
        data["metrics"] = sorted(metrics)
    data["model_name"] = spec.name
    data["model_version"] = spec.version
    data["fingerprint"] = spec.fingerprint
    if spec.preprocess_fingerprint is not None:
        data["preprocess_fingerprint"] = spec.preprocess_fingerprint
    data["parameters"] = summary.total_params
    data["macs"] = summary.macs
    data["input"] = dict(zip(("channels", "frames", "height", "width"), spec.input, strict=True))
    if sha256 is not None:
        data["sha256"] = sha256
    return data


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return lines


def _preprocess_section(spec: ArchitectureSpec) -> list[str]:
    section = spec.preprocess
    if section is None:
        return [
            "The spec declares no preprocessing: feed clips exactly as the model was trained "
            "on them.",
        ]
    return [
        "Declared in the spec's `preprocess` section; `model.preprocess` applies it to raw "
        "`(B, C, T, H, W)` clips, uint8 (0-255) or float (in `value_range`):",
        "",
        *_table([(f"`{k}`", f"`{json.dumps(v)}`") for k, v in section.items()], ("key", "value")),
        "",
        "```python",
        "clip = model.preprocess(raw)  # (B, C, T, H, W) uint8 -> normalised float",
        "outputs = model(clip)         # {head name: output}",
        "```",
    ]


def _training_section(metadata: CheckpointMetadata | None) -> list[str]:
    if metadata is None:
        return ["Written from a model in memory: no training state recorded."]
    rows = [
        (label, str(value))
        for label, value in (
            ("epoch", metadata.epoch),
            ("step", metadata.step),
            ("loss", metadata.loss),
            ("monitored", metadata.monitor and f"{metadata.monitor[0]} ({metadata.monitor[1]})"),
            ("training state held", ", ".join(metadata.training_state) or None),
            ("stored precision", metadata.precision),
            ("saved", metadata.created),
            ("video_interpreter", metadata.package_version),
            ("torch", metadata.torch_version),
        )
        if value is not None
    ]
    lines = _table(rows, ("field", "value"))
    if metadata.metrics:
        lines += ["", *_table([(k, f"{v}") for k, v in metadata.metrics.items()], ("metric", ""))]
    return lines


def model_card(
    source: ModelSource,
    *,
    diagram_name: str = "diagram.svg",
    license: str | None = None,
    notes: str | None = None,
) -> ModelCard:
    """The card of a spec, model or checkpoint, rendered in memory (``write_model_card`` writes
    it). The figures are ``summarize(source)``'s; a checkpoint adds its training state, metrics,
    notes and sha256.

    Examples:
        >>> from video_interpreter.sharing import model_card
        >>> card = model_card("tiny_r2plus1d", license="apache-2.0")
        >>> card.text.startswith("---"), "library_name: video_interpreter" in card.text
        (True, True)
    """
    checkpoint = _checkpoint_path(source)
    metadata = read_metadata(checkpoint) if checkpoint is not None else None
    spec = _spec_of(source, metadata)
    if spec is None:
        raise SpecError(
            [
                Problem(
                    f"{type(source).__name__} carries no architecture spec: a card describes a "
                    "model built from a spec (a spec, a VideoInterpreter or its checkpoint)"
                )
            ]
        )
    target: ModelSource = source if metadata is None else spec
    summary = summarize(target, depth=2)
    sha256 = sha256_file(checkpoint) if checkpoint is not None else None
    data = _front_matter(spec, summary, metadata, sha256, license)
    diagram = build_diagram(target)
    try:
        svg: bytes | None = diagram.to_svg()
        drawing = [f"![{spec.name} {spec.version}]({diagram_name})"]
    except GraphvizNotFoundError:
        svg = None
        drawing = ["```mermaid", diagram.to_mermaid().rstrip("\n"), "```"]
    c, t, h, w = spec.input
    figures = [
        ("architecture fingerprint", f"`{spec.fingerprint}`"),
        ("preprocess fingerprint", f"`{spec.preprocess_fingerprint or '-'}`"),
        ("parameters", f"{summary.total_params:,}"),
        ("MACs per clip", f"{summary.macs:,}"),
        ("input clip (C x T x H x W)", f"{c} x {t} x {h} x {w}"),
    ]
    given_notes = [n for n in (metadata.notes if metadata else None, notes) if n]
    lines = [
        "---",
        yaml.safe_dump(data, sort_keys=False, width=100).rstrip("\n"),
        "---",
        "",
        f"# {spec.name} {spec.version}",
        "",
        spec.description or "A video model defined by a video_interpreter spec.",
        "",
        *_table(figures),
        "",
        "## Architecture",
        "",
        *drawing,
        "",
        summary.to_markdown().rstrip("\n"),
        "",
        "## Input and preprocessing",
        "",
        f"One clip is {c} x {t} x {h} x {w} (channels, frames, height, width).",
        "",
        *_preprocess_section(spec),
        "",
        "## Training",
        "",
        *_training_section(metadata),
        "",
        "## Notes",
        "",
        "\n\n".join(given_notes) if given_notes else "None recorded.",
        "",
        "## Use",
        "",
        "```python",
        "from video_interpreter import from_pretrained",
        "",
        'model = from_pretrained("DIRECTORY_OR_ORG/NAME").eval()',
        "```",
        "",
    ]
    return ModelCard(data, "\n".join(lines), svg)


def write_model_card(
    source: ModelSource,
    out: str | Path,
    *,
    license: str | None = None,
    notes: str | None = None,
    diagram_name: str | None = None,
) -> Path:
    """Write the model card of a spec, model or checkpoint to ``out`` (Markdown with YAML front
    matter: ``library_name``, ``tags``, ``pipeline_tag``, ``metrics``, ``license`` when given,
    ``fingerprint``, ``parameters``, ``macs``), and its diagram beside it as SVG
    (``diagram_name``, default ``<out's stem>.svg``; without Graphviz the card inlines a Mermaid
    drawing instead). Returns ``out``.

    Examples:
        >>> from video_interpreter import build_model, save_model
        >>> from video_interpreter.sharing import write_model_card
        >>> _ = save_model(build_model("tiny_r2plus1d"), "tiny.safetensors", epoch=3)
        >>> write_model_card("tiny.safetensors", "cards/tiny.md", license="mit")
        PosixPath('cards/tiny.md')
    """
    out = Path(out)
    name = diagram_name or f"{out.stem}.svg"
    card = model_card(source, diagram_name=name, license=license, notes=notes)
    if card.svg is not None:
        with atomic_write(out.parent / name) as sink:
            sink.write(card.svg)
    with atomic_write(out) as sink:
        sink.write(card.text.encode("utf-8"))
    logger.debug("wrote the model card %s", out)
    return out
