"""The export stage: spec-built models to ``torch.export`` (``.pt2``) and ONNX (``.onnx``),
with parity against eager checked. On top of the model and checkpoint stages; onnx, onnxscript
and onnxruntime (the ``export`` extra) are imported here only, and only when an ``.onnx`` file
is written or run.

```python
from video_interpreter import export_model, check_export
exported = export_model("s3d", "s3d.onnx", dynamic=("batch", "frames"))
print(check_export(exported.path, model).summary())
```
"""

from ._check import (
    CHECK_BATCH,
    TOLERANCES,
    WEAK_SPREAD,
    ParityReport,
    check_export,
    check_frames,
)
from ._export import (
    DYNAMIC_DIMS,
    EXPORT_FORMATS,
    ONNX_OPSET,
    ExportedModel,
    ExportError,
    ExportFormat,
    export_model,
    exported_metadata,
    format_for,
    resolve_model,
    spec_json,
    trace,
)

__all__ = [
    "CHECK_BATCH",
    "DYNAMIC_DIMS",
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "TOLERANCES",
    "WEAK_SPREAD",
    "ExportError",
    "ExportFormat",
    "ExportedModel",
    "ParityReport",
    "check_export",
    "check_frames",
    "export_model",
    "exported_metadata",
    "format_for",
    "resolve_model",
    "spec_json",
    "trace",
]
