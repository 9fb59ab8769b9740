"""``models list|best|show|prune|pin|unpin|sync|verify|readme``: the saved-models store."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import DEFAULT_ROOT, Entry, format_value
from ..store._registry import REGISTRY_FILE, Registry, existing_root, find_entries

if TYPE_CHECKING:
    from ..store import ModelStore
    from ..tracking import Tracker
from ._arguments import check_output_file, non_negative_int
from ._progress import Progress

__all__ = ["register", "tracker_option"]


def register(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        default=str(DEFAULT_ROOT),
        help=f"the store's directory or URL, e.g. s3://bucket/models (default {DEFAULT_ROOT})",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--name", help="only this model name")
    which.add_argument("--version", dest="model_version", help="only this model version")

    models = commands.add_parser("models", help="the saved-models store and its registry")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common, which], help="list recorded files")
    listing.add_argument("--kind", choices=("model", "checkpoint"), help="only this kind")
    listing.set_defaults(handler=_list)

    best = actions.add_parser("best", parents=[common, which], help="the best model of each")
    best.set_defaults(handler=_best)

    show = actions.add_parser("show", parents=[common], help="every field of one file")
    show.add_argument("file", metavar="FILE", help="a file name in the store (or its path)")
    show.set_defaults(handler=_show)

    prune = actions.add_parser(
        "prune", parents=[common, which], help="remove all but the last N (never best/pinned)"
    )
    prune.add_argument("--keep-last", type=non_negative_int, required=True, metavar="N")
    prune.add_argument("--kind", choices=("model", "checkpoint"), help="only prune this kind")
    prune.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    prune.set_defaults(handler=_prune)

    for verb, text in (("pin", "keep a file through every prune"), ("unpin", "undo pin")):
        pin = actions.add_parser(verb, parents=[common], help=text)
        pin.add_argument("file", metavar="FILE")
        pin.set_defaults(handler=_pin, pinned=verb == "pin")

    sync = actions.add_parser(
        "sync", parents=[common], help="rebuild the registry from the files' metadata"
    )
    sync.add_argument(
        "--accept-changed",
        action="store_true",
        help="re-record files whose bytes changed (otherwise they stay refused)",
    )
    sync.add_argument(
        "--trackers",
        nargs="+",
        type=tracker_option,
        default=[],
        metavar="TRACKER",
        help="then replay to these trackers the saved models they lack and move their best "
        "aliases: mlflow:TRACKING_URI, wandb:[ENTITY/]PROJECT, wandb-offline:[ENTITY/]PROJECT",
    )
    sync.set_defaults(handler=_sync)

    verify = actions.add_parser(
        "verify", parents=[common], help="report files missing, changed or unrecorded (exit 1)"
    )
    verify.add_argument(
        "--no-hash", action="store_true", help="compare sizes only (fast; misses same-size edits)"
    )
    verify.set_defaults(handler=_verify)

    readme = actions.add_parser(
        "readme", parents=[common], help="regenerate the registry table in a README"
    )
    readme.add_argument(
        "-o", "--output", type=Path, default=Path("models/README.md"), help="the README to update"
    )
    readme.set_defaults(handler=_readme)


def tracker_option(text: str) -> Tracker:
    """``--trackers`` words as trackers (argparse reports a bad one with the valid forms)."""
    from ..tracking import TrackerError, parse_tracker  # trackers save models: torch

    try:
        return parse_tracker(text)
    except TrackerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _open(args: argparse.Namespace) -> ModelStore:
    # Every command here works on a store that exists: none creates one. Imported here: the
    # store saves and loads models, so it imports torch, which listing does not need.
    from ..store import ModelStore

    return ModelStore(args.root, create=False, trackers=getattr(args, "trackers", ()))


def _print_json(value: object) -> None:
    # Strict JSON: a non-finite number (only in registries written by older versions) is null.
    print(json.dumps(_finite(value), indent=2, allow_nan=False))


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _table(entries: Sequence[Entry]) -> str:
    header = ("FILE", "KIND", "EPOCH", "METRIC", "DATE", "SIZE", "SHA256", "FLAGS")
    rows = [header]
    for e in entries:
        metric = f"{e.metric}={format_value(e.value)}" if e.metric and e.value is not None else ""
        flags = ",".join(flag for flag, on in (("best", e.is_best), ("pinned", e.pinned)) if on)
        epoch = "" if e.epoch is None else str(e.epoch)
        rows.append(
            (e.file, e.kind, epoch, metric, e.date, _size(e.size_bytes), e.sha256[:12], flags)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _list(args: argparse.Namespace) -> int:
    root: object
    if "://" in str(args.root):  # a remote root's registry is its manifests, read by the store
        store = _open(args)
        root = store.location
        entries = store.find(args.name, args.model_version, kind=args.kind)
    else:
        # What ModelStore(root, create=False).find(...) does, through the registry alone (no
        # torch).
        root = existing_root(args.root)
        registry = Registry(root / REGISTRY_FILE, root)
        entries = find_entries(registry, args.name, args.model_version, kind=args.kind)
    if args.json:
        _print_json([e.to_dict() for e in entries])
    elif entries:
        print(_table(entries))
    else:
        print(f"no files recorded in {root}")
    return 0


def _best(args: argparse.Namespace) -> int:
    store = _open(args)
    entries = [
        e
        for e in store.bests()
        if (args.name is None or e.name == args.name)
        and (args.model_version is None or e.version == args.model_version)
    ]
    if args.json:
        _print_json(
            [e.to_dict() | {"best_path": store.best_location(e.name, e.version)} for e in entries]
        )
        return 0
    if not entries:
        print(f"no best model recorded in {store.root}", file=sys.stderr)
        return 1
    for e in entries:
        value = "" if e.value is None else format_value(e.value)
        print(f"{e.name} {e.version}: {e.file} ({e.metric} {value})")
        print(f"  {store.best_location(e.name, e.version)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    entry = _open(args).get(args.file)
    data = entry.to_dict()
    if args.json:
        _print_json(data)
        return 0
    width = max(len(key) for key in data)
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        print(f"{key:<{width}}  {'-' if value is None or value == '' else value}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    store = _open(args)
    result = store.prune(
        args.keep_last,
        name=args.name,
        version=args.model_version,
        kind=args.kind,
        dry_run=args.dry_run,
    )
    if args.json:
        _print_json(
            {
                "dry_run": result.dry_run,
                "removed": [e.file for e in result.removed],
                "kept": [e.file for e in result.kept],
            }
        )
        return 0
    verb = "would remove" if result.dry_run else "removed"
    for entry in result.removed:
        print(f"{verb}  {entry.file}")
    print(f"{verb} {len(result.removed)} file(s), kept {len(result.kept)}")
    return 0


def _pin(args: argparse.Namespace) -> int:
    store = _open(args)
    entry = store.pin(args.file) if args.pinned else store.unpin(args.file)
    if args.json:
        _print_json(entry.to_dict())
    else:
        print(f"{'pinned' if entry.pinned else 'unpinned'} {entry.file}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    store = _open(args)  # a mistyped --root is an error, not a new empty store
    report = store.sync(accept_changed=args.accept_changed, trackers=bool(args.trackers))
    if args.json:
        _print_json(report.to_dict())
    else:
        changes = report.to_dict()
        problems = changes.pop("problems")
        rebuilt = changes.pop("rebuilt")
        if rebuilt:
            print(f"registry  {rebuilt}")
        for what, files in changes.items():
            for file in files:
                print(f"{what.replace('_', ' ')}  {file}")
        for problem in problems:
            print(f"problem  {problem['file']}: {problem['message']}", file=sys.stderr)
        if not any(changes.values()) and not problems:
            print(f"{store.root}: registry already matches the files")
    return 1 if report.problems else 0


def _verify(args: argparse.Namespace) -> int:
    store = _open(args)
    shown = Progress(0, "hashing" if not args.no_hash else "checking")
    try:
        problems = store.verify(hashes=not args.no_hash, progress=shown.advance)
    finally:
        shown.close()
    if args.json:
        _print_json([p.to_dict() for p in problems])
    elif problems:
        for problem in problems:
            print(f"{problem.kind:<9}  {problem}")
    else:
        print(f"{store.root}: {len(store.list())} files, all as recorded")
    return 1 if problems else 0


def _readme(args: argparse.Namespace) -> int:
    output = check_output_file(args.output)
    path = _open(args).write_readme(output)
    print(f"wrote the registry table to {path}")
    return 0
