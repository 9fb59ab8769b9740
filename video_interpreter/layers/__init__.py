"""Layer registry, the types that flow between layers, and the layers a spec can name;
importing this package registers them.

Upstream of the spec stage: the spec schema is assembled from what is registered here, and
validation propagates types with the declarations registered here.
"""

from . import combinators, heads, mvit, resnet, s3d, swin, torch_nn, transformer, video_conv
from ._builder import (
    Assembled,
    BuildContext,
    assemble,
    build_node,
    build_sequence,
    input_type,
    propagate,
    spec_types,
)
from ._params import (
    BOOL,
    NODE,
    NODE_LIST,
    NON_NEGATIVE_INT,
    NUMBER,
    POSITIVE_INT,
    PROBABILITY,
    triple,
)
from ._registry import (
    ENTRY_POINT_GROUP,
    LAYERS,
    LayerEntry,
    LayerRegistry,
    OutputFn,
    closest_names,
    register_layer,
)
from ._types import (
    Layout,
    SampleType,
    ShapeError,
    channels,
    clip,
    conv_sizes,
    features,
    grid,
    pool_sizes,
    sample_dim,
    tokens,
    vector,
)
from .init import INITS, InitScheme, ModuleInit, get_init, register_init

__all__ = [
    "BOOL",
    "ENTRY_POINT_GROUP",
    "INITS",
    "LAYERS",
    "NODE",
    "NODE_LIST",
    "NON_NEGATIVE_INT",
    "NUMBER",
    "POSITIVE_INT",
    "PROBABILITY",
    "Assembled",
    "BuildContext",
    "InitScheme",
    "LayerEntry",
    "LayerRegistry",
    "Layout",
    "ModuleInit",
    "OutputFn",
    "SampleType",
    "ShapeError",
    "assemble",
    "build_node",
    "build_sequence",
    "channels",
    "clip",
    "closest_names",
    "combinators",
    "conv_sizes",
    "features",
    "get_init",
    "grid",
    "heads",
    "input_type",
    "mvit",
    "pool_sizes",
    "propagate",
    "register_init",
    "register_layer",
    "resnet",
    "s3d",
    "sample_dim",
    "spec_types",
    "swin",
    "tokens",
    "torch_nn",
    "transformer",
    "triple",
    "vector",
    "video_conv",
]
