"""Curriculum learning: easy samples first.

Every epoch draws from the easiest fraction of the training data, shuffled within it; the
fraction grows from `start` to 1 over `epochs` epochs (linear, root or step pacing) and
never shrinks. Difficulty is a per-sample loss: of an imported, trained model (computed
once), or of the model itself (rescored before every epoch: self-paced learning).
"""

from __future__ import annotations

import math

import torch

from ..compiler import ir
from .dispatch import implementation


def _linear(progress: float, args: dict) -> float:
    return progress


def _root(progress: float, args: dict) -> float:
    return math.sqrt(progress)


def _step(progress: float, args: dict) -> float:
    steps = args["steps"]
    return math.floor(progress * steps) / steps


# pacing kind -> (linear progress in [0, 1], arguments) -> paced progress
PACINGS = {"linear": _linear, "root": _root, "step": _step}


def pacing(pace: ir.Step):
    return implementation(PACINGS, pace.kind, "pacing", pace.span)


def fraction(pace: ir.Step, epoch: int) -> float:
    """The fraction of the data used in epoch `epoch` (counting from 0)."""
    paced = pacing(pace)
    start, span = pace.args["start"], pace.args["epochs"]
    progress = paced(min(epoch / span, 1.0), pace.args)
    return min(1.0, start + (1.0 - start) * progress)


def per_sample_loss(forward, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The cross-entropy of each sample (its difficulty), in eval mode."""
    losses = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = forward(x[start : start + batch])
            losses.append(torch.nn.functional.cross_entropy(logits, y[start : start + batch], reduction="none"))
    return torch.cat(losses).cpu()


class Curriculum:
    """The trainer's `order` hook: indices of the easiest samples, shuffled."""

    def __init__(self, plan: ir.Curriculum, scores: torch.Tensor | None, rescore=None):
        pacing(plan.pace)  # an unknown pacing fails here, before training starts
        self.plan, self.scores, self.rescore = plan, scores, rescore
        self.used: list[int] = []  # how many samples each epoch drew from (for the record)

    def __call__(self, epoch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.rescore is not None:
            self.scores = self.rescore()
        keep = max(1, math.ceil(fraction(self.plan.pace, epoch) * n))
        easiest = torch.argsort(self.scores, stable=True)[:keep]
        self.used.append(keep)
        return easiest[torch.randperm(keep, generator=generator)]
