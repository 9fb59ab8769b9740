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

from ._check import CHECK_BATCH as CHECK_BATCH
from ._check import TOLERANCES, ParityReport, check_export
from ._check import WEAK_SPREAD as WEAK_SPREAD
from ._check import check_frames as check_frames
from ._export import (
    DYNAMIC_DIMS,
    EXPORT_FORMATS,
    ONNX_OPSET,
    ExportedModel,
    ExportError,
    ExportFormat,
    export_model,
)
from ._export import exported_metadata as exported_metadata
from ._export import format_for as format_for
from ._export import resolve_model as resolve_model
from ._export import spec_json as spec_json
from ._export import trace as trace

__all__ = [
    "DYNAMIC_DIMS",
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "TOLERANCES",
    "ExportError",
    "ExportFormat",
    "ExportedModel",
    "ParityReport",
    "check_export",
    "export_model",
]
