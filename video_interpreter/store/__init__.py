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
    store.save(model, metrics=..., compressed="bf16")    # + compressed/ copy of the best

File names: see ``_naming`` (``{name}_{version}_{metric}_{value}.pth``, 4 decimal places,
trailing zeros stripped; a taken name gets ``-2``, ``-3``...). The files are the source of truth:
the registry is rebuilt from their embedded metadata by ``sync``; ``verify`` reports what
disagrees.

A URL root (``ModelStore("s3://bucket/models")``, any fsspec URL) gives a ``RemoteModelStore``:
the same interface on an object store, with JSON manifests beside the files instead of SQLite
and a commit protocol without rename or locks (see ``_remote``).

Names, the registry and its table import no torch; ``ModelStore`` and its result types, which
save and load models, are imported on first use.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._naming import ParsedName, best_name, checkpoint_name, model_name, parse_name
from ._naming import format_value as format_value
from ._naming import sanitize_metric as sanitize_metric
from ._naming import sanitize_name as sanitize_name
from ._naming import sanitize_version as sanitize_version
from ._readme import END_MARKER as END_MARKER
from ._readme import START_MARKER as START_MARKER
from ._readme import render_table
from ._readme import replace_table as replace_table
from ._registry import CARDS_DIR, COMPRESSED_DIR, DEFAULT_ROOT, CompressedCopy, Entry
from ._registry import REGISTRY_FILE as REGISTRY_FILE

if TYPE_CHECKING:
    from ._remote import MANIFEST_DIR, RemoteModelStore
    from ._store import COMPRESSIONS, EntryRef, ModelStore, PruneResult, StoreProblem, SyncReport

_ORIGINS = {
    **dict.fromkeys(
        ("COMPRESSIONS", "EntryRef", "ModelStore", "PruneResult", "StoreProblem", "SyncReport"),
        "._store",
    ),
    **dict.fromkeys(("MANIFEST_DIR", "RemoteModelStore"), "._remote"),
}
__getattr__, __dir__ = lazy_attributes(__name__, _ORIGINS, globals())

__all__ = [
    "CARDS_DIR",
    "COMPRESSED_DIR",
    "COMPRESSIONS",
    "DEFAULT_ROOT",
    "MANIFEST_DIR",
    "CompressedCopy",
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
    "model_name",
    "parse_name",
    "render_table",
]
