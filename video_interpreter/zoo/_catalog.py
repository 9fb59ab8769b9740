"""The model zoo as data: one ``ZooModel`` entry per shipped spec that reproduces another
library's model. Tests, benchmarks, the README tables and ``architectures/README.md`` read these
entries; adding a zoo model means its spec, its key map and one entry here.

Figures are for one clip at the spec's own input: parameters and multiply-accumulates are this
package's counts (held equal to the reference implementation's by the parity tests);
accuracies are the reference library's published Kinetics-400 figures for its trained weights,
which import unchanged through the key maps (``None`` where none is published, and for the
transformers models, whose model cards give figures per checkpoint rather than per
architecture).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from ..errors import RegistryError
from ..layers import closest_names
from ..spec import ClipShape, known_spec_names

__all__ = ["ZOO", "Accuracy", "Library", "ZooModel", "list_models", "model_info"]

Library = Literal["torchvision", "pytorchvideo", "transformers"]


@dataclass(frozen=True)
class Accuracy:
    """A published top-1 / top-5 accuracy (percent) on ``dataset``."""

    top1: float
    top5: float
    dataset: str = "Kinetics-400"


@dataclass(frozen=True)
class ZooModel:
    """What is known about one zoo spec: its size, its clip, and where it comes from.

    ``macs`` counts multiply-accumulates for one clip of shape ``clip``; ``reference`` is the
    reference library's builder (``torchvision.models.video.r3d_18``); ``accuracy`` is that
    library's published figure for its trained weights; ``key_map`` names the library's key
    map when it is not the spec's name (transformers' key maps are per model type).
    """

    name: str
    library: Library
    reference: str
    parameters: int
    macs: int
    clip: ClipShape
    accuracy: Accuracy | None = None
    key_map: str | None = None

    @property
    def key_map_name(self) -> str:
        """The name of this model's key map under ``key_maps/<library>/``."""
        return self.key_map or self.name

    @property
    def gmacs(self) -> float:
        """``macs`` in billions, as torchvision publishes its "GFLOPS"."""
        return self.macs / 1e9


def _tv(name: str, parameters: int, macs: int, clip: ClipShape, acc: Accuracy) -> ZooModel:
    return ZooModel(
        name, "torchvision", f"torchvision.models.video.{name}", parameters, macs, clip, acc
    )


def _pv(name: str, parameters: int, macs: int, clip: ClipShape, acc: Accuracy | None) -> ZooModel:
    return ZooModel(
        name, "pytorchvideo", f"pytorchvideo.models.hub.{name}", parameters, macs, clip, acc
    )


def _hf(
    name: str, model_type: str, cls: str, parameters: int, macs: int, clip: ClipShape
) -> ZooModel:
    return ZooModel(
        name, "transformers", f"transformers.{cls}", parameters, macs, clip, None, model_type
    )


_ENTRIES = (
    _tv("r3d_18", 33_371_472, 40_696_553_472, ClipShape(3, 16, 112, 112), Accuracy(63.20, 83.48)),
    _tv("mc3_18", 11_695_440, 43_342_635_008, ClipShape(3, 16, 112, 112), Accuracy(63.96, 84.13)),
    _tv(
        "r2plus1d_18",
        31_505_325,
        40_519_080_960,
        ClipShape(3, 16, 112, 112),
        Accuracy(67.46, 86.17),
    ),
    _tv("s3d", 8_320_048, 17_978_771_456, ClipShape(3, 16, 224, 224), Accuracy(68.37, 88.05)),
    _tv(
        "mvit_v2_s", 34_537_744, 64_223_815_872, ClipShape(3, 16, 224, 224), Accuracy(80.76, 94.67)
    ),
    _tv("swin3d_t", 28_158_070, 43_882_229_760, ClipShape(3, 16, 224, 224), Accuracy(77.72, 93.52)),
    _pv("x3d_xs", 3_794_274, 605_256_512, ClipShape(3, 4, 160, 160), Accuracy(69.12, 88.63)),
    _pv("x3d_s", 3_794_274, 1_962_892_112, ClipShape(3, 13, 160, 160), Accuracy(73.33, 91.27)),
    _pv("x3d_m", 3_794_274, 4_732_468_736, ClipShape(3, 16, 224, 224), Accuracy(75.94, 92.72)),
    _pv("x3d_l", 6_153_384, 18_367_710_176, ClipShape(3, 16, 312, 312), None),
    _pv("slow_r50", 32_454_096, 41_740_828_672, ClipShape(3, 8, 224, 224), Accuracy(74.58, 91.63)),
    _pv("c2d_r50", 24_327_632, 19_493_191_680, ClipShape(3, 8, 224, 224), Accuracy(71.46, 89.68)),
    _pv("i3d_r50", 28_043_472, 28_407_660_544, ClipShape(3, 8, 224, 224), Accuracy(73.27, 90.70)),
    _pv(
        "slowfast_r50",
        34_566_488,
        50_308_583_424,
        ClipShape(3, 32, 224, 224),
        Accuracy(76.94, 92.69),
    ),
    _pv(
        "slowfast_r101",
        62_826_968,
        96_396_644_352,
        ClipShape(3, 32, 224, 224),
        Accuracy(77.90, 93.27),
    ),
    _pv("csn_r101", 22_213_776, 56_468_187_136, ClipShape(3, 32, 224, 224), Accuracy(77.00, 92.90)),
    _pv(
        "r2plus1d_r50",
        28_107_600,
        57_533_825_024,
        ClipShape(3, 16, 224, 224),
        Accuracy(76.01, 92.23),
    ),
    _pv(
        "mvit_base_16x4",
        36_610_672,
        70_599_407_808,
        ClipShape(3, 16, 224, 224),
        Accuracy(78.85, 93.85),
    ),
    _hf(
        "videomae_base",
        "videomae",
        "VideoMAEForVideoClassification",
        86_534_800,
        180_344_893_440,
        ClipShape(3, 16, 224, 224),
    ),
    _hf(
        "timesformer_base",
        "timesformer",
        "TimesformerForVideoClassification",
        121_566_352,
        195_830_280_192,
        ClipShape(3, 8, 224, 224),
    ),
    _hf(
        "vivit_b",
        "vivit",
        "VivitForVideoClassification",
        88_954_000,
        451_524_753_408,
        ClipShape(3, 32, 224, 224),
    ),
    _hf(
        "vjepa2_vitl",
        "vjepa2",
        "VJEPA2ForVideoClassification",
        353_631_632,
        6_524_081_946_624,
        ClipShape(3, 64, 256, 256),
    ),
)
"""Every zoo model by spec name, in the order torchvision's, pytorchvideo's, transformers'."""
ZOO: Mapping[str, ZooModel] = MappingProxyType({entry.name: entry for entry in _ENTRIES})
"""Every zoo model by spec name, in the order torchvision's, then pytorchvideo's."""


def list_models(pattern: str = "*", *, library: Library | None = None) -> list[str]:
    """Names of the shipped specs that ``build_model(name)`` accepts, sorted, matching the
    shell-style ``pattern``; with ``library``, only zoo models reproducing that library's.

    Examples:
        >>> from video_interpreter import list_models
        >>> list_models("r*")
        ['r2plus1d_18', 'r2plus1d_r50', 'r3d_18']
        >>> list_models(library="torchvision")
        ['mc3_18', 'mvit_v2_s', 'r2plus1d_18', 'r3d_18', 's3d', 'swin3d_t']
    """
    names = (
        known_spec_names()
        if library is None
        else [entry.name for entry in _ENTRIES if entry.library == library]
    )
    return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern))


def model_info(name: str) -> ZooModel:
    """The zoo entry of the spec ``name``: parameters, MACs, clip, reference, accuracy.

    Examples:
        >>> from video_interpreter import model_info
        >>> info = model_info("r3d_18")
        >>> info.parameters, round(info.gmacs, 3), info.accuracy.top1
        (33371472, 40.697, 63.2)
    """
    entry = ZOO.get(name)
    if entry is None:
        raise RegistryError(
            f"{name!r} is not a zoo model; zoo models: {', '.join(ZOO)}"
            + "".join(f"; did you mean {close!r}?" for close in closest_names(name, list(ZOO))[:1])
        )
    return entry
