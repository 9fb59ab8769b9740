"""Random fills for init rules: uniform draws by numpy's PCG64 where it can, the rest by torch.

Torch's CPU uniform fill (a Mersenne Twister, one number at a time) is the largest cost of
building a convolutional model with PyTorch's default initialisation: S3D's 8.3 M weights take
about 24 ms on one core. numpy's PCG64 fills a float32 array in about 15 ms, so a contiguous
float32 or float64 CPU tensor gets its uniform (and truncated-normal) draws in place through a
numpy view of it. Any other tensor (CUDA, half precision, strided) is filled by torch with the
rule's generator, and so are normal draws, where torch is the faster. numpy releases the GIL
while it fills, so rules still run in parallel.
"""

from __future__ import annotations

import hashlib
import math
import threading
from typing import Any

import numpy as np
import torch

__all__ = ["RandomFills"]

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_SEED_BOUND = 2**62
_MASK_128 = (1 << 128) - 1


class _ThreadGenerator(threading.local):
    """One PCG64 per thread, lent to one ``RandomFills`` at a time: setting a state takes a
    microsecond where seeding a new PCG64 (numpy's SeedSequence) takes ten, once per rule."""

    def __init__(self) -> None:
        self.bits = np.random.PCG64(0)
        self.numpy = np.random.Generator(self.bits)
        self.owner: RandomFills | None = None  # a strong reference: ids are never confused


_THREAD = _ThreadGenerator()


def _pcg64_state(seed: int) -> dict[str, Any]:
    """A PCG64 state (128-bit state, odd increment) spread from ``seed`` by blake2b."""
    digest = hashlib.blake2b(seed.to_bytes(8, "little"), digest_size=32).digest()
    state = int.from_bytes(digest[:16], "little")
    increment = (int.from_bytes(digest[16:], "little") << 1 | 1) & _MASK_128
    return {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": increment},
        "has_uint32": 0,
        "uinteger": 0,
    }


class RandomFills:
    """In-place random fills for one rule call, every number drawn from ``generator`` (None: the
    global generator of the tensor's device).

    Its numpy stream (PCG64) is seeded on first use from one draw of ``generator``, so two rule
    calls with the same generator draw different numbers, and one ``torch.manual_seed`` gives one
    set of weights. Streams of several ``RandomFills`` used in turn on one thread stay apart.
    The distributions are torch's; the numbers are not the ones ``torch.nn.init`` would draw.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self._generator = generator
        self._state: Any = None  # its PCG64 state, while the thread's generator serves another

    def _view(self, tensor: torch.Tensor) -> np.ndarray | None:
        """A flat numpy view of ``tensor``'s storage, when numpy can fill it in place."""
        if (
            tensor.device.type != "cpu"
            or tensor.dtype not in _NUMPY_DTYPES
            or not tensor.is_contiguous()
            or (self._generator is not None and self._generator.device.type != "cpu")
        ):
            return None
        array: np.ndarray = tensor.detach().numpy().reshape(-1)
        return array

    def _rng(self) -> np.random.Generator:
        """The thread's numpy generator, at this object's place in its own stream."""
        local = _THREAD
        if local.owner is not self:
            if local.owner is not None:  # park the previous holder's stream with it
                local.owner._state = local.bits.state
            if self._state is None:
                seed = torch.randint(0, _SEED_BOUND, (), generator=self._generator)
                self._state = _pcg64_state(int(seed))
            local.bits.state = self._state
            local.owner = self
        return local.numpy

    def uniform_(self, tensor: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """Fill ``tensor`` from U(low, high)."""
        array = self._view(tensor)
        if array is None:
            with torch.no_grad():
                return tensor.uniform_(low, high, generator=self._generator)
        self._rng().random(out=array, dtype=array.dtype.type)
        np.multiply(array, high - low, out=array)
        if low:
            np.add(array, low, out=array)
        return tensor

    def normal_(self, tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        """Fill ``tensor`` from N(mean, std^2), by torch: its vectorised Box-Muller outruns
        numpy's float32 ziggurat more than twofold."""
        with torch.no_grad():
            return tensor.normal_(mean, std, generator=self._generator)

    def trunc_normal_(
        self,
        tensor: torch.Tensor,
        mean: float = 0.0,
        std: float = 1.0,
        a: float = -2.0,
        b: float = 2.0,
    ) -> torch.Tensor:
        """Fill ``tensor`` from N(mean, std^2) truncated to [a, b] by inverting the normal CDF
        on uniform draws: every draw lands in [a, b], with no loop redrawing the ones outside."""

        def cdf(x: float) -> float:
            return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

        low, high = cdf((a - mean) / std), cdf((b - mean) / std)
        with torch.no_grad():
            # In half precision the uniform draws round onto +-1, where erfinv is infinite.
            work = tensor if tensor.dtype in _NUMPY_DTYPES else tensor.float()
            self.uniform_(work, 2 * low - 1, 2 * high - 1)
            work.erfinv_()
            work.mul_(std * math.sqrt(2.0))
            work.add_(mean)
            work.clamp_(min=a, max=b)
            return tensor if work is tensor else tensor.copy_(work)

    def kaiming_uniform_(
        self, tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in"
    ) -> torch.Tensor:
        """``torch.nn.init.kaiming_uniform_`` for a leaky-ReLU gain of slope ``a``."""
        bound = math.sqrt(3.0) * _leaky_relu_gain(a) / math.sqrt(_fan(tensor, mode))
        return self.uniform_(tensor, -bound, bound)

    def kaiming_normal_(
        self, tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in"
    ) -> torch.Tensor:
        """``torch.nn.init.kaiming_normal_`` for a leaky-ReLU gain of slope ``a`` (0: ReLU)."""
        return self.normal_(tensor, 0.0, _leaky_relu_gain(a) / math.sqrt(_fan(tensor, mode)))


def _leaky_relu_gain(slope: float) -> float:
    return math.sqrt(2.0 / (1 + slope**2))


def _fan(tensor: torch.Tensor, mode: str) -> int:
    """Fan-in or fan-out of a weight of shape (out, in, *kernel), as ``torch.nn.init`` counts."""
    if tensor.dim() < 2:
        raise ValueError(
            f"fan in and fan out need a weight of at least 2 dimensions, got {tuple(tensor.shape)}"
        )
    receptive = math.prod(tensor.shape[2:])
    fans = {"fan_in": tensor.shape[1] * receptive, "fan_out": tensor.shape[0] * receptive}
    if mode not in fans:
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return max(fans[mode], 1)
