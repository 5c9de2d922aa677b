"""Optimizers and learning-rate schedules from the plan (PyTorch's own)."""

from __future__ import annotations

import math

import torch

from ..compiler import ir


def optimizer(plan: ir.Step, groups) -> torch.optim.Optimizer:
    """sgd (momentum, nesterov), adam, adamw; `groups` are torch parameter groups."""
    a = plan.args
    if plan.kind == "sgd":
        return torch.optim.SGD(groups, lr=a["lr"], momentum=a["momentum"], nesterov=a["nesterov"], weight_decay=a["weight_decay"])
    cls = torch.optim.AdamW if plan.kind == "adamw" else torch.optim.Adam
    return cls(groups, lr=a["lr"], betas=(a["beta1"], a["beta2"]), weight_decay=a["weight_decay"])


def lr_factor(plan: ir.Step, base_lr: float, epochs: int, progress: float) -> float:
    """The learning rate's multiplier after `progress` epochs (fractional).

    Linear warm-up over `warmup` epochs, then constant, step (γ every `every` epochs) or
    cosine annealing to `min_lr` by the last epoch.
    """
    warmup = plan.args.get("warmup", 0)
    if warmup and progress < warmup:
        return progress / warmup
    t = progress - warmup
    if plan.kind == "step":
        return plan.args["gamma"] ** int(t // plan.args["every"])
    if plan.kind == "cosine":
        span = max(epochs - warmup, 1e-9)
        floor = plan.args["min_lr"] / base_lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t / span, 1.0)))
    return 1.0


def scheduler(plan: ir.Step, opt: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, base_lr: float):
    """A per-step LambdaLR (its state, the step count, goes into checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(plan, base_lr, epochs, (step + 1) / steps_per_epoch))
