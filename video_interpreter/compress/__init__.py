"""The compress stage: smaller models, and what being smaller costs.

Downstream of the checkpoint stage. Two ways to shrink a model:

- **Storage precision** (no extra dependency): ``save_model(model, path, dtype=torch.bfloat16)``
  in the checkpoint stage; about half the bytes, any layer type.
- **Quantisation** through torchao (the optional ``compress`` extra, imported only here and only
  when used)::

      quantized = quantize(model, "int8_weight_only")        # or "int8_dynamic"
      save_quantized(quantized, "model_int8.safetensors")
      model = load_quantized("model_int8.safetensors")      # bit-identical outputs

  Both schemes cover ``nn.Linear`` weights (transformers, MViT, Swin, every head); 3D
  convolutions are not covered (torchao has no int8 convolution: see ``_schemes``).

``compress_checkpoint`` (``video-interpreter compress``) does either to a checkpoint file and
measures size, CPU latency and output agreement against the float model.
"""

from ._measure import Agreement, CompressionResult, agreement, compress_checkpoint
from ._measure import check_clips as check_clips
from ._measure import latency_ms as latency_ms
from ._measure import run_clips as run_clips
from ._quantize import coverage as coverage
from ._quantize import load_quantized, quantization_scheme, quantize, save_quantized
from ._schemes import SCHEMES, QuantizationScheme, get_scheme

__all__ = [
    "SCHEMES",
    "Agreement",
    "CompressionResult",
    "QuantizationScheme",
    "agreement",
    "compress_checkpoint",
    "get_scheme",
    "load_quantized",
    "quantization_scheme",
    "quantize",
    "save_quantized",
]
