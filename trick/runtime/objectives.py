"""Losses and weight penalties, as the lecture writes them.

- Cross-entropy with label smoothing: the true class gets 1 − ε and every other class
  ε/(k − 1) (not torch's ε/k for every class).
- L2: ½λ‖θ‖², whose gradient step is θ ← (1 − ηλ)θ − η∇L.
- L1: λ‖θ‖₁, whose gradient is λ·sign(θ) (the lecture writes ½λ‖θ‖₁ for the penalty but
  λ·sign(θ) for its gradient; the gradient is that of λ‖θ‖₁). With `proximal=true` the term
  leaves the loss and a soft-thresholding step follows each optimizer step instead:
  θ ← sign(θ)·max(|θ| − ηλ, 0), which sets weights to exactly 0.
Penalties and weight noise apply to the weights, chosen by role, not by shape: the weight
matrices and kernels of the layers whose registry role is `weights` (dense, conv, gru, lstm),
found through the model graph (`weights_by_layer`). Biases and normalization parameters (a
`layernorm`'s γ and β, of the layer's full shape, the norms inside a layer-normalized cell)
are left out unless `include=all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

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


def _one_hot_or_value(fn):
    """A pointwise loss against the number itself (one output) or the one-hot vector (several)."""

    def loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if outputs.shape[1] == 1:
            return fn(outputs.squeeze(1), labels.to(outputs.dtype))
        return fn(outputs, F.one_hot(labels, outputs.shape[1]).to(outputs.dtype))

    return loss


def _cross_entropy_loss(smoothing: float, args: dict | None = None):
    if smoothing == 0.0:
        return F.cross_entropy  # what cross_entropy() calls then, without the two calls around it
    return lambda logits, labels: cross_entropy(logits, labels, smoothing)


def _mse_loss(smoothing: float, args: dict | None = None):
    return mse


def _l1_loss(smoothing: float, args: dict | None = None):
    return _one_hot_or_value(F.l1_loss)


def _huber_loss(smoothing: float, args: dict | None = None):
    delta = float((args or {}).get("delta", 1.0))
    return _one_hot_or_value(lambda a, b: F.huber_loss(a, b, delta=delta))


@dataclass(frozen=True)
class Loss:
    """A loss kind: `make(smoothing)` gives (outputs, labels) -> loss; `classifies`: its outputs
    are class scores at any width (otherwise only when there are several outputs)."""

    make: Callable[..., Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]  # (smoothing, args) -> loss
    classifies: bool


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(_cross_entropy_loss, classifies=True),
    "mse": Loss(_mse_loss, classifies=False),
    "l1": Loss(_l1_loss, classifies=False),
    "huber": Loss(_huber_loss, classifies=False),
}


def loss_kind(kind: str, span: Span | None = None) -> Loss:
    return implementation(LOSSES, kind, "loss", span)


def loss_function(kind: str, smoothing: float = 0.0, span: Span | None = None, args: dict | None = None):
    return loss_kind(kind, span).make(smoothing, args)


def layer_modules(graph: ir.ModelGraph, model: nn.Module) -> list[tuple[ir.Layer, nn.Module]]:
    """Every layer of the graph with its submodule (residual bodies and heads included): a trunk
    layer is `model.<name>`, a layer in a residual block `<block>.<name>`, a head's layer
    `heads.<target>.<name>`."""
    found: list[tuple[ir.Layer, nn.Module]] = []

    def walk(layers, owner: nn.Module) -> None:
        for layer in layers:
            module = owner.get_submodule(layer.name)
            found.append((layer, module))
            walk(layer.body, module)

    walk(graph.layers, model)
    for head in graph.heads:
        walk(head.layers, model.get_submodule(f"heads.{head.target}"))
    return found


# The normalization modules a weights layer may hold (the layer norms of a layer-normalized
# recurrent cell): their γ and β are normalization parameters, not weights.
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def weights_by_layer(graph: ir.ModelGraph, model: nn.Module) -> list[tuple[ir.Layer, list[nn.Parameter]]]:
    """Each layer whose role is `weights` (dense, conv, gru, lstm) with its weights: the
    parameters named `weight…` (a dense or conv kernel, a recurrent `weight_ih…`/`weight_hh…`),
    neither biases nor the γ of a normalization inside the layer. The one definition of "the
    weights" for penalties, weight noise and the reports."""
    found = []
    for layer, module in layer_modules(graph, model):
        if layer.role != "weights":
            continue
        mine = [p for owner in module.modules() if not isinstance(owner, _NORMS) for name, p in owner.named_parameters(recurse=False) if name.startswith("weight")]
        found.append((layer, mine))
    return found


def penalized(model: nn.Module, graph: ir.ModelGraph, include: str = "weights") -> list[nn.Parameter]:
    """The trainable parameters a penalty applies to: the weights (`weights_by_layer`), or all."""
    if include == "all":
        return [p for p in model.parameters() if p.requires_grad]
    return [p for _, params in weights_by_layer(graph, model) for p in params if p.requires_grad]


def _l2(strength: float, params: list[nn.Parameter]) -> torch.Tensor:
    return 0.5 * strength * _sum((p * p).sum() for p in params)


def _l1(strength: float, params: list[nn.Parameter]) -> torch.Tensor:
    return strength * _sum(p.abs().sum() for p in params)


REGULARIZERS: dict[str, Callable[[float, list[nn.Parameter]], torch.Tensor]] = {"l2": _l2, "l1": _l1}


class Penalty:
    """The regularizers of a plan: `regularize l2 λ` and `regularize l1 λ` add their terms to
    the loss; `regularize l1 λ proximal=true` adds none and shrinks the weights after each
    optimizer step instead (`prox`)."""

    def __init__(self, model: nn.Module, graph: ir.ModelGraph, steps: tuple[ir.Step, ...]):
        terms = [(implementation(REGULARIZERS, s.kind, "regularizer", s.span), s) for s in steps]  # every kind known, even at strength 0
        active = [(term, s) for term, s in terms if s.args["strength"] > 0]
        self.terms = [(term, float(s.args["strength"]), penalized(model, graph, s.args["include"])) for term, s in active if not s.args.get("proximal", False)]
        self.proximal = [(float(s.args["strength"]), {id(p) for p in penalized(model, graph, s.args["include"])}) for _, s in active if s.args.get("proximal", False)]

    def __bool__(self) -> bool:
        """Whether there is a term to add to the loss."""
        return bool(self.terms)

    def __call__(self) -> torch.Tensor:
        # Sums start from their first term, not from a zero tensor: the same value with fewer
        # operations (and autograd nodes) per step.
        total = None
        for penalty, strength, params in self.terms:
            term = penalty(strength, params)
            total = term if total is None else total + term
        return torch.zeros(()) if total is None else total

    @torch.no_grad()
    def prox(self, optimizer: torch.optim.Optimizer) -> None:
        """The proximal step of λ‖θ‖₁ after an optimizer step: θ ← sign(θ)·max(|θ| − ηλ, 0),
        η the learning rate of the parameter's group at that step (call it before the
        scheduler moves it on). For plain SGD this is the proximal gradient method (ISTA)."""
        for strength, ids in self.proximal:
            for group in optimizer.param_groups:
                threshold = group["lr"] * strength
                for p in group["params"]:
                    if id(p) in ids:
                        p.copy_(p.sign() * (p.abs() - threshold).clamp_(min=0.0))


def _sum(values):
    """sum() without the leading 0 + (one tensor addition fewer)."""
    total = None
    for v in values:
        total = v if total is None else total + v
    return torch.zeros(()) if total is None else total


class WeightNoise:
    """`weight_noise std=σ`: W + ε, ε ~ N(0, σ²) on the weights (`weights_by_layer`) for one
    step's forward and backward; the exact W comes back before the optimizer updates it."""

    def __init__(self, model: nn.Module, graph: ir.ModelGraph, std: float):
        self.std = std
        self.params = penalized(model, graph, "weights")
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
