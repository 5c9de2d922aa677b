"""Losses and weight penalties, as the lecture writes them.

- Cross-entropy with label smoothing: the true class gets 1 − ε and every other class
  ε/(k − 1) (not torch's ε/k for every class).
- L2: ½λ‖θ‖², whose gradient step is θ ← (1 − ηλ)θ − η∇L.
- L1: λ‖θ‖₁, whose gradient is λ·sign(θ).
Penalties and weight noise apply to the weights (tensors of 2 or more dimensions: dense and
conv kernels, recurrent matrices); biases and normalization parameters are left out unless
`include=all`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..compiler import ir


def smoothed_targets(labels: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets smoothed as the lecture says: 1 − ε for the label, ε/(k − 1) elsewhere."""
    targets = torch.full((labels.shape[0], classes), smoothing / (classes - 1), dtype=torch.float32, device=labels.device)
    return targets.scatter_(1, labels.unsqueeze(1), 1.0 - smoothing)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    if smoothing == 0.0:
        return F.cross_entropy(logits, labels)
    targets = smoothed_targets(labels, logits.shape[1], smoothing)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def mse(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared error against the number itself (one output) or the one-hot vector (several)."""
    if outputs.shape[1] == 1:
        return F.mse_loss(outputs.squeeze(1), labels.to(outputs.dtype))
    return F.mse_loss(outputs, F.one_hot(labels, outputs.shape[1]).to(outputs.dtype))


def loss_function(kind: str, smoothing: float = 0.0):
    if kind == "mse":
        return mse
    return lambda logits, labels: cross_entropy(logits, labels, smoothing)


def penalized(model: torch.nn.Module, include: str = "weights") -> list[torch.nn.Parameter]:
    """The parameters a penalty applies to: weights only (dim >= 2), or all of them."""
    return [p for p in model.parameters() if p.requires_grad and (include == "all" or p.dim() >= 2)]


class Penalty:
    """The regularizers of a plan: `regularize l2 λ` and `regularize l1 λ`."""

    def __init__(self, model: torch.nn.Module, steps: tuple[ir.Step, ...]):
        self.terms = [(s.kind, float(s.args["strength"]), penalized(model, s.args["include"])) for s in steps if s.args["strength"] > 0]

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __call__(self) -> torch.Tensor:
        total = torch.zeros(())
        for kind, strength, params in self.terms:
            if kind == "l2":
                total = total + 0.5 * strength * sum((p * p).sum() for p in params)
            else:
                total = total + strength * sum(p.abs().sum() for p in params)
        return total


class WeightNoise:
    """`weight_noise std=σ`: W + ε, ε ~ N(0, σ²) for one step's forward and backward,
    removed again before the optimizer updates W."""

    def __init__(self, model: torch.nn.Module, std: float):
        self.std = std
        self.params = penalized(model, "weights")
        self.noise: list[torch.Tensor] = []

    def __enter__(self):
        with torch.no_grad():
            self.noise = [torch.randn_like(p) * self.std for p in self.params]
            for p, n in zip(self.params, self.noise):
                p.add_(n)
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for p, n in zip(self.params, self.noise):
                p.sub_(n)
        self.noise = []
        return False
