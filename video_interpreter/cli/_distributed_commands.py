"""``consolidate``: a sharded checkpoint directory into one checkpoint file, from the command
line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._arguments import check_output_file

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "consolidate",
        help="turn a sharded checkpoint directory into one .pth or .safetensors file",
        description=(
            "Read a directory written by save_sharded (from any number of ranks) and write one "
            "checkpoint file that load_model opens. A .pth file also holds the optimizer, "
            "scheduler and rank 0's random generator states; a .safetensors file the weights."
        ),
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="sharded checkpoint")
    parser.add_argument(
        "output", type=Path, metavar="OUT", help="file to write (.pth/.safetensors)"
    )
    parser.add_argument(
        "--weights-only",
        action="store_true",
        help="leave the optimizer, scheduler and RNG states out of a .pth",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip checking the files' recorded sha256"
    )
    parser.add_argument("--notes", help="notes for the file (default: the directory's)")
    parser.set_defaults(handler=_consolidate)


def _consolidate(args: argparse.Namespace) -> int:
    # Imported here: torch.distributed's checkpoint machinery is not needed by other commands.
    from ..distributed import consolidate, read_sharded_metadata

    check_output_file(args.output)
    metadata = read_sharded_metadata(args.directory)
    saved = consolidate(
        args.directory,
        args.output,
        training_state=not args.weights_only,
        check_digests=not args.no_verify,
        notes=args.notes,
    )
    print(
        f"wrote {saved.path} ({saved.size_bytes:,} bytes, sha256 {saved.sha256}) from "
        f"{metadata.name} {metadata.version}, saved by {metadata.world_size} ranks"
        + (f" at step {metadata.step}" if metadata.step is not None else "")
    )
    return 0
