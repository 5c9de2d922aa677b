"""Optimizers and learning-rate schedules from the plan (PyTorch's own)."""

from __future__ import annotations

import math

import torch

from ..compiler import ir
from .dispatch import implementation


def _sgd(groups, a: dict, **fused) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=a["lr"], momentum=a["momentum"], nesterov=a["nesterov"], weight_decay=a["weight_decay"], **fused)


def _adam(cls):
    def make(groups, a: dict, **fused) -> torch.optim.Optimizer:
        return cls(groups, lr=a["lr"], betas=(a["beta1"], a["beta2"]), weight_decay=a["weight_decay"], **fused)

    return make


# optimizer kind -> (parameter groups, arguments) -> torch optimizer
OPTIMIZERS = {"sgd": _sgd, "adam": _adam(torch.optim.Adam), "adamw": _adam(torch.optim.AdamW)}


def optimizer(plan: ir.Step, groups, fused: bool = False) -> torch.optim.Optimizer:
    """sgd (momentum, nesterov), adam, adamw; `groups` are torch parameter groups. `fused`:
    torch's fused implementation (one kernel for all parameters: what `train { compile true }`
    uses for the optimizer's step)."""
    return implementation(OPTIMIZERS, plan.kind, "optimizer", plan.span)(groups, plan.args, **({"fused": True} if fused else {}))


def _constant(a: dict, t: float, base_lr: float, epochs: int, warmup: int) -> float:
    return 1.0


def _step(a: dict, t: float, base_lr: float, epochs: int, warmup: int) -> float:
    return a["gamma"] ** int(t // a["every"])


def _cosine(a: dict, t: float, base_lr: float, epochs: int, warmup: int) -> float:
    span = max(epochs - warmup, 1e-9)
    floor = a["min_lr"] / base_lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t / span, 1.0)))


# schedule kind -> (arguments, epochs t after the warm-up, base lr, epochs, warm-up epochs) -> factor
SCHEDULES = {"constant": _constant, "step": _step, "cosine": _cosine}


def lr_factor(plan: ir.Step, base_lr: float, epochs: int, progress: float) -> float:
    """The learning rate's multiplier after `progress` epochs (fractional).

    Linear warm-up over `warmup` epochs, then constant, step (γ every `every` epochs) or
    cosine annealing to `min_lr` by the last epoch.
    """
    factor = implementation(SCHEDULES, plan.kind, "schedule", plan.span)
    warmup = plan.args.get("warmup", 0)
    if warmup and progress < warmup:
        return progress / warmup
    return factor(plan.args, progress - warmup, base_lr, epochs, warmup)


class StepLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """torch's LambdaLR with a lean `step()` for the call made after every optimizer step.

    LambdaLR.step goes through warning checks, a context manager and helper calls that cost
    about as much as a whole training step of a small network; after its first call this one
    does only what they amount to (the same counters, the same learning rates, the same
    state_dict). The first call and `step(epoch)` still go through torch's own."""

    constant = False  # every factor is 1 (no schedule, no warm-up): the learning rates never change

    def step(self, epoch=None) -> None:
        if epoch is not None or self._step_count <= 1:
            return super().step(epoch)
        self._step_count += 1
        self.last_epoch += 1
        if self.constant:  # base · 1 is what every group already has
            return
        groups = self.optimizer.param_groups
        for group, fn, base in zip(groups, self.lr_lambdas, self.base_lrs, strict=True):
            lr = base * fn(self.last_epoch)
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"] for group in groups]


def scheduler(plan: ir.Step, opt: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, base_lr: float):
    """A per-step LambdaLR (its state, the step count, goes into checkpoints)."""
    constant = implementation(SCHEDULES, plan.kind, "schedule", plan.span) is _constant and not plan.args.get("warmup", 0)
    return (_ConstantLR if constant else StepLambdaLR)(opt, lambda step: lr_factor(plan, base_lr, epochs, (step + 1) / steps_per_epoch))


class _ConstantLR(StepLambdaLR):
    """A StepLambdaLR whose factor is always 1 (a class attribute, so the state_dict stays torch's)."""

    constant = True
