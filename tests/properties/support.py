"""Helpers of the property tests: controlled random draws, mask enumeration, strategies."""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Every aten op that draws random numbers; a forward under `Draws` may use only those it serves.
_RANDOM = {
    "bernoulli", "bernoulli_", "normal", "normal_", "uniform_", "rand", "rand_like", "randn", "randn_like",
    "randint", "randint_like", "random", "random_", "randperm", "multinomial", "exponential_", "geometric_",
    "cauchy_", "log_normal_", "poisson", "native_dropout", "_fused_dropout", "binomial",
}  # fmt: skip


class Draws(TorchDispatchMode):
    """Serve a module's random draws from given values, and record what it asked for.

    Under `with Draws(masks=[m1, ...], normals=[n1, ...])`, the k-th Bernoulli draw gets the
    k-th mask instead of random bits, and the k-th `randn_like` (WeightNoise) gets the k-th
    tensor of standard normal values. A Bernoulli draw is `x.bernoulli_(q)` (nn.Dropout on
    CPU, ScaledDropout) or trick.layers.keep_mask's (DropConnect): uniform 31-bit integers
    U from int32 `random_` (`random` under torch.compile), then clamp(threshold - U, 0, 1);
    the integers served are 0 where the mask is 1 and 2^31 - 1 where it is 0, and the
    probability recorded is threshold / 2^31. `self.bernoulli` lists (shape, probability) of
    each mask drawn, `self.normal` the shapes of the normal draws. Any other random op, or a
    draw of the wrong shape, fails the test: the module under test must draw its randomness
    the way the lecture describes, one Bernoulli(keep probability) per unit or weight.

    The module's own arithmetic (scaling, multiplying, adding noise) runs unchanged, so
    enumerating all masks exercises the compiled forward itself.
    """

    def __init__(self, masks=(), normals=()):
        super().__init__()
        self.masks = list(masks)
        self.normals = list(normals)
        self.bernoulli: list[tuple[tuple[int, ...], float]] = []
        self.normal: list[tuple[int, ...]] = []
        self._bits: dict[int, tuple[int, ...]] = {}  # data_ptr -> shape of the integers served, until `threshold - U` reads them

    def _mask(self, target) -> torch.Tensor:
        if not self.masks:
            raise AssertionError(f"an unexpected Bernoulli draw of shape {tuple(target.shape)}")
        mask = self.masks.pop(0)
        if tuple(mask.shape) != tuple(target.shape):
            raise AssertionError(f"a Bernoulli draw of shape {tuple(target.shape)}, expected {tuple(mask.shape)}")
        return mask

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if func in (aten.random.default, aten.random_.default) and args[0].dtype == torch.int32:
            bits = torch.where(self._mask(args[0]).to(args[0].device) > 0, 0, 2**31 - 1).to(torch.int32)
            bits = args[0].copy_(bits) if func is aten.random_.default else bits
            self._bits[bits.data_ptr()] = tuple(bits.shape)
            return bits
        if func is aten.rsub.Scalar and args[0].data_ptr() in self._bits:
            self.bernoulli.append((self._bits.pop(args[0].data_ptr()), int(args[1]) / 2**31))
            return func(*args, **kwargs)
        if func in (aten.bernoulli_.float, aten.bernoulli.p):
            target = args[0]
            p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
            mask = self._mask(target)
            self.bernoulli.append((tuple(target.shape), float(p)))
            values = mask.to(dtype=target.dtype, device=target.device)
            return target.copy_(values) if func is aten.bernoulli_.float else values.clone()
        if func is aten.randn_like.default:
            like = args[0]
            if not self.normals:
                raise AssertionError(f"an unexpected normal draw of shape {tuple(like.shape)}")
            values = self.normals.pop(0)
            if tuple(values.shape) != tuple(like.shape):
                raise AssertionError(f"a normal draw of shape {tuple(like.shape)}, expected {tuple(values.shape)}")
            self.normal.append(tuple(like.shape))
            return values.to(dtype=kwargs.get("dtype") or like.dtype, device=like.device).clone()
        if name in _RANDOM:
            raise AssertionError(f"an unexpected random op {func}")
        return func(*args, **kwargs)


# How far a recorded keep probability may be from the spec's: keep_mask's threshold is
# min(round(keep·2^31), 2^31 - 1) over 2^31 (bernoulli_ takes the probability as it is).
KEEP_RESOLUTION = 2**-32


def masks(shape: tuple[int, ...]):
    """Every 0/1 mask of `shape`, with its number of ones: 2^numel of them."""
    n = math.prod(shape)
    for bits in itertools.product((0.0, 1.0), repeat=n):
        yield torch.tensor(bits, dtype=torch.float64).reshape(shape), int(sum(bits))


def mask_probability(ones: int, size: int, keep: float) -> float:
    """P(mask) when each entry is kept (1) independently with probability `keep`."""
    return keep**ones * (1.0 - keep) ** (size - ones)


def num(value: float) -> str:
    """A float as spec text that reads back as the same float."""
    return repr(float(value))


def examples(fraction: float, least: int = 2) -> settings:
    """Settings with `fraction` of the loaded profile's max_examples (for costly tests)."""
    return settings(max_examples=max(least, int(settings.default.max_examples * fraction)))


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(gen: torch.Generator, *shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + shift


seeds = st.integers(min_value=0, max_value=2**31 - 1)
