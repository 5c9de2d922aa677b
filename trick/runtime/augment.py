"""Data augmentation: random transformations drawn independently for every sample of a batch,
with no Python loop over samples. Random numbers come from the run's data generator, so a
seed fixes them and a resumed run continues the same stream.
"""

from __future__ import annotations

import torch

from ..compiler import ir


def _uniform_ints(n: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high + 1, (n,), generator=generator)


def shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each sequence by its own s ∈ [-max, max] positions, filling with zeros."""
    if max_shift == 0:
        return x
    length = x.shape[-1]
    s = _uniform_ints(x.shape[0], -max_shift, max_shift, generator).to(x.device)
    source = torch.arange(length, device=x.device).unsqueeze(0) - s.unsqueeze(1)  # (B, L)
    inside = (source >= 0) & (source < length)
    index = source.clamp(0, length - 1).unsqueeze(1).expand_as(x)
    return torch.gather(x, -1, index) * inside.unsqueeze(1).to(x.dtype)


def noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """x + ε, ε ~ N(0, std²)."""
    return x + std * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def flip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Reverse each sequence in time with probability p."""
    chosen = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(chosen.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


class Augmenter:
    """The `augment` block as one callable: x (B, ...) -> augmented x, in training only."""

    def __init__(self, steps: tuple[ir.Step, ...]):
        self.steps = steps
        self.ops = []
        for step in steps:
            a = step.args
            if step.kind == "shift":
                self.ops.append(lambda x, g, m=a["max"]: shift(x, m, g))
            elif step.kind == "noise":
                self.ops.append(lambda x, g, s=a["std"]: noise(x, s, g))
            elif step.kind == "flip":
                self.ops.append(lambda x, g, p=a["p"]: flip(x, p, g))
            else:
                raise NotImplementedError(f"augmentation '{step.kind}' is not available yet")

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            x = op(x, generator)
        return x
