"""Layer registry and the layers a spec can name; importing this package registers them.

Upstream of the spec stage: the spec schema is assembled from what is registered here.
"""

from . import combinators, heads, mvit, resnet, s3d, swin, torch_nn, transformer, video_conv
from ._builder import Assembled, BuildContext, assemble, build_node, build_sequence, format_shape
from ._meta import MetaConstruction, MetaShortcuts
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
    Shape,
    channels,
    closest_names,
    features,
    register_layer,
)
from .init import INITS, InitScheme, RandomFills, get_init, register_init

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
    "MetaConstruction",
    "MetaShortcuts",
    "RandomFills",
    "Shape",
    "assemble",
    "build_node",
    "build_sequence",
    "channels",
    "closest_names",
    "combinators",
    "features",
    "format_shape",
    "get_init",
    "heads",
    "mvit",
    "register_init",
    "register_layer",
    "resnet",
    "s3d",
    "swin",
    "torch_nn",
    "transformer",
    "triple",
    "video_conv",
]
