"""``card`` and ``pretrained``: write a model card, or a Hub-style model directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..sharing import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_pretrained, write_model_card
from ._arguments import check_output_file

__all__ = ["register"]


def register(commands: Any) -> None:
    card = commands.add_parser(
        "card",
        help="write a model card (Markdown, YAML front matter) and its diagram",
        description=(
            "Write the model card of a spec or checkpoint: YAML front matter (library_name, "
            "tags, pipeline_tag, metrics, license, fingerprint), the summary table, parameters "
            "and MACs, the diagram (SVG beside the card), input and preprocessing, and the "
            "training state, metrics and notes a checkpoint carries."
        ),
    )
    card.add_argument("source", metavar="SPEC_OR_CKPT", help="spec file or name, or checkpoint")
    card.add_argument("output", type=Path, metavar="OUT.md", help="the card to write")
    card.add_argument("--license", help="a license id for the front matter, e.g. apache-2.0")
    card.add_argument("--notes", help="notes added to the card")
    card.set_defaults(handler=_card)

    pretrained = commands.add_parser(
        "pretrained",
        help="write a checkpoint as a Hub-style model directory",
        description=(
            f"Write a checkpoint as a directory holding {CONFIG_NAME} (the resolved spec), "
            f"{WEIGHTS_NAME}, {CARD_NAME} (the model card) and the diagram; from_pretrained(DIR) "
            "loads it, and huggingface_hub's upload_folder publishes it."
        ),
    )
    pretrained.add_argument("source", metavar="CKPT", help="a checkpoint (.pth or .safetensors)")
    pretrained.add_argument("directory", type=Path, metavar="DIR", help="the directory to write")
    pretrained.add_argument("--license", help="a license id for the card, e.g. apache-2.0")
    pretrained.add_argument("--notes", help="notes added to the weights and the card")
    pretrained.set_defaults(handler=_pretrained)


def _card(args: argparse.Namespace) -> int:
    out = write_model_card(
        args.source, check_output_file(args.output), license=args.license, notes=args.notes
    )
    drawing = out.with_suffix(".svg")
    print(f"wrote {out} and {drawing}" if drawing.is_file() else f"wrote {out} (Mermaid inside)")
    return 0


def _pretrained(args: argparse.Namespace) -> int:
    directory = save_pretrained(args.source, args.directory, license=args.license, notes=args.notes)
    held = ", ".join(sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")))
    print(f"wrote {directory}: {held}")
    return 0
