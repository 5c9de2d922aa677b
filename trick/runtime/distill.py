"""FitNets (Romero et al. 2015): hint training, then knowledge distillation.

Stage 1 trains the student up to its guided layer, together with a regressor r, so that
r(v_g(x; W_guided); W_r) matches the teacher's hint layer u_h(x; W_hint) under
L_HT = ½‖u_h − r(v_g)‖². Stage 2 trains the whole student on the true labels plus the
teacher's softened outputs (temperature T, weight w).
"""

from __future__ import annotations

import torch
from torch import nn

from ..compiler import ir
from ..compiler.ir import regressor_shape
from .objectives import distillation_loss, hint_loss
from .optim import optimizer as make_optimizer


def regressor(guided: tuple[int, ...], hint: tuple[int, ...], kind: str) -> nn.Module:
    """r: a convolution with the kernel that maps the guided layer's shape onto the hint's
    (a 1x1 convolution when the lengths agree), or a dense layer on the flattened input."""
    shape = regressor_shape(guided, hint, kind)
    if kind == "dense":
        return nn.Sequential(nn.Flatten(), nn.Linear(*shape), nn.Unflatten(1, hint))
    if kind == "conv":
        kernel, channels = shape
        conv = nn.Conv1d if len(guided) == 2 else nn.Conv2d
        return conv(guided[0], channels, kernel)
    raise ValueError(f"no regressor '{kind}' (the checker admits conv and dense)")


def train_hints(trainer, teacher, plan: ir.TrainingPlan, normalizer, progress=None) -> list[dict]:
    """Stage 1 for `plan.distill.hint_epochs` epochs; returns one record per epoch."""
    distill = plan.distill
    hint_label, guided_label = distill.hints[0]
    model = trainer.model
    guided_shape = trainer.graph.labels()[guided_label].output
    hint_shape = teacher.program.graph.labels()[hint_label].output
    r = regressor(guided_shape, hint_shape, distill.regressor).to(trainer.device)
    params = [p for m in model.layers_until(guided_label) for p in m.parameters()] + list(r.parameters())
    opt = make_optimizer(plan.optimizer, [{"params": params}])
    x_all = trainer.x["train"]
    records = []
    for epoch in range(distill.hint_epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=trainer.generator)
        total, n = 0.0, 0
        for index in trainer._batches(order):
            x = trainer.train_inputs(index.to(trainer.device))  # augmented on the raw scale, then normalized
            with torch.no_grad():
                hint = teacher.model.features(teacher.inputs(x, normalizer), hint_label)
            loss = hint_loss(hint, r(model.features(x, guided_label)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(index), n + len(index)
        records.append({"stage": "hint", "epoch": epoch + 1, "train.hint_loss": total / max(n, 1)})
        if progress is not None:
            progress(records[-1])
    return records


def distillation_objective(teacher, plan: ir.TrainingPlan, normalizer):
    """The stage-2 batch loss: (1 − w)·J(student, y) + w·T²·KL(teacher ‖ student) at temperature T."""
    distill = plan.distill

    def batch_loss(trainer, x, targets):
        logits = trainer.net(x)  # through DistributedDataParallel with several processes
        with torch.no_grad():
            soft = teacher.model(teacher.inputs(x, normalizer))
        head = trainer.heads[0]
        loss = distillation_loss(logits, soft, targets[head.target], distill.temperature, distill.weight, head.loss)
        return loss, {head.target: logits}

    return batch_loss
