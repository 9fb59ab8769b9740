"""Layer registry, the types that flow between layers, and the layers a spec can name;
importing this package registers them.

Upstream of the spec stage: the spec schema is assembled from what is registered here, and
validation propagates types with the declarations registered here.
"""

from . import adaptation as adaptation
from . import bottleneck as bottleneck
from . import combinators as combinators
from . import graph as graph
from . import heads as heads
from . import mvit as mvit
from . import mvit_v1 as mvit_v1
from . import resnet as resnet
from . import s3d as s3d
from . import swin as swin
from . import torch_nn as torch_nn
from . import transformer as transformer
from . import video_conv as video_conv
from . import vit as vit
from ._builder import NECK as NECK
from ._builder import Assembled as Assembled
from ._builder import BuildContext
from ._builder import assemble as assemble
from ._builder import build_node as build_node
from ._builder import build_sequence as build_sequence
from ._builder import input_type as input_type
from ._builder import is_graph as is_graph
from ._builder import node_type as node_type
from ._builder import propagate as propagate
from ._builder import spec_types as spec_types
from ._params import BOOL, NODE, NODE_LIST, NON_NEGATIVE_INT, NUMBER, POSITIVE_INT, PROBABILITY
from ._params import triple as triple
from ._registry import (
    ENTRY_POINT_GROUP,
    LAYERS,
    LayerEntry,
    LayerRegistry,
    OutputFn,
    register_layer,
)
from ._registry import closest_names as closest_names
from ._types import Layout, SampleType, ShapeError, channels, clip, features, grid, tokens, vector
from ._types import conv_sizes as conv_sizes
from ._types import pool_sizes as pool_sizes
from ._types import sample_dim as sample_dim
from .graph import INPUT as INPUT
from .graph import Graph as Graph
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
    "BuildContext",
    "InitScheme",
    "LayerEntry",
    "LayerRegistry",
    "Layout",
    "ModuleInit",
    "OutputFn",
    "SampleType",
    "ShapeError",
    "channels",
    "clip",
    "features",
    "get_init",
    "grid",
    "register_init",
    "register_layer",
    "tokens",
    "vector",
]
