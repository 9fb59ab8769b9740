"""The saved-models store: ``models/saved_models/`` with a naming convention, a best model,
retention and a SQLite registry; the last stage of the flow (it uses ``checkpoint``).

::

    store = ModelStore("models/saved_models")
    entry = store.save(model, metrics={"acc": 0.95})    # video_interpreter_v1_acc_0.95.pth
    store.save_checkpoint(model, epoch=3, optimizer=opt) # video_interpreter_v1_epoch_0003.pth
    store.resume(model, opt)                             # from the latest checkpoint
    store.best()                                         # also video_interpreter_v1_best.pth
    model = store.load(entry)                            # sha256 checked against the registry
    store.prune(keep_last=3)                             # never the best, never a pinned file
    store.write_readme("models/README.md")               # the registry table

File names: see ``_naming`` (``{name}_{version}_{metric}_{value}.pth``, 4 decimal places,
trailing zeros stripped; a taken name gets ``-2``, ``-3``...). The files are the source of truth:
the registry is rebuilt from their embedded metadata by ``sync``; ``verify`` reports what
disagrees.

A URL root (``ModelStore("s3://bucket/models")``, any fsspec URL) gives a ``RemoteModelStore``:
the same interface on an object store, with JSON manifests beside the files instead of SQLite
and a commit protocol without rename or locks (see ``_remote``).
"""

from ._naming import (
    ParsedName,
    best_name,
    checkpoint_name,
    format_value,
    model_name,
    parse_name,
    sanitize_metric,
    sanitize_name,
    sanitize_version,
)
from ._readme import END_MARKER, START_MARKER, render_table, replace_table
from ._registry import Entry
from ._remote import MANIFEST_DIR, RemoteModelStore
from ._store import (
    CARDS_DIR,
    DEFAULT_ROOT,
    REGISTRY_FILE,
    EntryRef,
    ModelStore,
    PruneResult,
    StoreProblem,
    SyncReport,
)

__all__ = [
    "CARDS_DIR",
    "DEFAULT_ROOT",
    "END_MARKER",
    "MANIFEST_DIR",
    "REGISTRY_FILE",
    "START_MARKER",
    "Entry",
    "EntryRef",
    "ModelStore",
    "ParsedName",
    "PruneResult",
    "RemoteModelStore",
    "StoreProblem",
    "SyncReport",
    "best_name",
    "checkpoint_name",
    "format_value",
    "model_name",
    "parse_name",
    "render_table",
    "replace_table",
    "sanitize_metric",
    "sanitize_name",
    "sanitize_version",
]
