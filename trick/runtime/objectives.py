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

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..compiler import ir
from ..dsl.diagnostics import Span
from .dispatch import implementation


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


def _cross_entropy_loss(smoothing: float):
    if smoothing == 0.0:
        return F.cross_entropy  # what cross_entropy() calls then, without the two calls around it
    return lambda logits, labels: cross_entropy(logits, labels, smoothing)


def _mse_loss(smoothing: float):
    return mse


@dataclass(frozen=True)
class Loss:
    """A loss kind: `make(smoothing)` gives (outputs, labels) -> loss; `classifies`: its outputs
    are class scores at any width (otherwise only when there are several outputs)."""

    make: Callable[[float], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    classifies: bool


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(_cross_entropy_loss, classifies=True),
    "mse": Loss(_mse_loss, classifies=False),
}


def loss_kind(kind: str, span: Span | None = None) -> Loss:
    return implementation(LOSSES, kind, "loss", span)


def loss_function(kind: str, smoothing: float = 0.0, span: Span | None = None):
    return loss_kind(kind, span).make(smoothing)


def penalized(model: torch.nn.Module, include: str = "weights") -> list[torch.nn.Parameter]:
    """The parameters a penalty applies to: weights only (dim >= 2), or all of them."""
    return [p for p in model.parameters() if p.requires_grad and (include == "all" or p.dim() >= 2)]


def _l2(strength: float, params: list[torch.nn.Parameter]) -> torch.Tensor:
    return 0.5 * strength * _sum((p * p).sum() for p in params)


def _l1(strength: float, params: list[torch.nn.Parameter]) -> torch.Tensor:
    return strength * _sum(p.abs().sum() for p in params)


REGULARIZERS: dict[str, Callable[[float, list[torch.nn.Parameter]], torch.Tensor]] = {"l2": _l2, "l1": _l1}


class Penalty:
    """The regularizers of a plan: `regularize l2 λ` and `regularize l1 λ`."""

    def __init__(self, model: torch.nn.Module, steps: tuple[ir.Step, ...]):
        terms = [(implementation(REGULARIZERS, s.kind, "regularizer", s.span), s) for s in steps]  # every kind known, even at strength 0
        self.terms = [(term, float(s.args["strength"]), penalized(model, s.args["include"])) for term, s in terms if s.args["strength"] > 0]

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __call__(self) -> torch.Tensor:
        # Sums start from their first term, not from a zero tensor: the same value with fewer
        # operations (and autograd nodes) per step.
        total = None
        for penalty, strength, params in self.terms:
            term = penalty(strength, params)
            total = term if total is None else total + term
        return torch.zeros(()) if total is None else total


def _sum(values):
    """sum() without the leading 0 + (one tensor addition fewer)."""
    total = None
    for v in values:
        total = v if total is None else total + v
    return torch.zeros(()) if total is None else total


class WeightNoise:
    """`weight_noise std=σ`: W + ε, ε ~ N(0, σ²) for one step's forward and backward; the
    exact W comes back before the optimizer updates it."""

    def __init__(self, model: torch.nn.Module, std: float):
        self.std = std
        self.params = penalized(model, "weights")
        self.saved: list[torch.Tensor] = []

    def __enter__(self):
        with torch.no_grad():
            self.saved = [p.detach().clone() for p in self.params]
            for p in self.params:
                p.add_(torch.randn_like(p) * self.std)
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for p, w in zip(self.params, self.saved):
                p.copy_(w)
        self.saved = []
        return False


def fgsm(loss_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, bounds: tuple[float, float] | None = None) -> torch.Tensor:
    """The fast gradient sign method: x' = x + ε·sign(∇ₓJ(θ, x, y)), clipped to `bounds`.

    `loss_of(x)` is J at the current θ; the returned x' is detached (a constant for the update).
    """
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(x), x)
    adversarial = x.detach() + eps * grad.sign()
    if bounds is not None:
        adversarial = adversarial.clamp(*bounds)
    return adversarial


def hint_loss(hint: torch.Tensor, regressed: torch.Tensor) -> torch.Tensor:
    """FitNets' L_HT = ½‖u_h(x; W_hint) − r(v_g(x; W_guided); W_r)‖², averaged over the batch."""
    return 0.5 * (hint - regressed).pow(2).flatten(1).sum(1).mean()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, weight: float, hard_loss) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015): (1 − w)·J(student, y) +
    w·T²·KL(softmax(teacher/T) ‖ softmax(student/T)); T² keeps the soft gradients' scale."""
    soft = F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1), log_target=True, reduction="batchmean")
    return (1 - weight) * hard_loss(student, labels) + weight * temperature**2 * soft
