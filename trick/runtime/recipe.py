"""The training objectives of a plan, assembled into the trainer's hooks.

transfer -> copied layers (frozen, or a smaller learning rate); distill -> hint training,
then the distillation loss; adversarial -> FGSM mixed into every batch; curriculum -> the
order of each epoch's samples.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..compiler import ir
from . import checkpoint as ckpt
from .curriculum import Curriculum, per_sample_loss
from .dispatch import implementation
from .distill import distillation_objective, train_hints
from .trainer import Hooks, supervised
from .transfer import copy_layers, hooks_for


def needed_imports(plan: ir.TrainingPlan) -> set[str]:
    """The aliases whose trained models this plan uses."""
    needed = set()
    if plan.transfer is not None:
        needed.add(plan.transfer.source)
    if plan.distill is not None:
        needed.add(plan.distill.teacher)
    if plan.curriculum is not None and plan.curriculum.score.kind == "loss":
        needed.add(plan.curriculum.score.args["model"])
    return needed


def adversarial(objective, eps: float, weight: float, bounds: tuple[float, float] | None):
    """(1 − w)·J(x) + w·J(x'), x' = x + ε·sign(∇ₓJ(θ, x, y)) for every batch.

    The attack's gradient comes from the clean forward pass that the loss uses (its
    BatchNorm batch statistics and dropout masks): each step runs the model twice, on the
    clean batch and on the adversarial one, so BatchNorm's running statistics see each once.
    """

    def batch_loss(trainer, x, targets):
        x = x.detach().requires_grad_(True)
        loss, outputs = objective(trainer, x, targets)
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)  # the graph stays for the update's backward
        x_adv = fgsm_step(x, grad, eps, bounds)
        adv_loss, _ = objective(trainer, x_adv, targets)
        return (1 - weight) * loss + weight * adv_loss, outputs

    return batch_loss


def fgsm_step(x: torch.Tensor, grad: torch.Tensor, eps: float, bounds: tuple[float, float] | None) -> torch.Tensor:
    """x' = x + ε·sign(g), clipped to `bounds`, detached (a constant for the update)."""
    adversarial = x.detach() + eps * grad.sign()
    return adversarial.clamp(*bounds) if bounds is not None else adversarial


def _fgsm(objective, args: dict, bounds: tuple[float, float] | None):
    return adversarial(objective, args["eps"], args["weight"], bounds)


# adversarial attack kind -> (objective, arguments, input bounds) -> the batch loss
ATTACKS = {"fgsm": _fgsm}


def hooks(plan: ir.TrainingPlan, graph: ir.ModelGraph, model: torch.nn.Module, imported: dict, splits) -> Hooks:
    result = Hooks()
    if plan.transfer is not None:
        names = copy_layers(model, graph, imported[plan.transfer.source], plan.transfer)
        result.param_groups, result.on_train = hooks_for(model, names, plan.transfer, plan.optimizer.args["lr"])
    objective = supervised
    if plan.distill is not None:
        objective = distillation_objective(imported[plan.distill.teacher], plan, splits.normalizer)
    if plan.adversarial is not None:
        # minmax maps the training data into [0, 1]: adversarial inputs stay in that range
        bounds = (0.0, 1.0) if plan.data.normalize is not None and plan.data.normalize.kind == "minmax" else None
        attack = implementation(ATTACKS, plan.adversarial.kind, "adversarial attack", plan.adversarial.span)
        objective = attack(objective, plan.adversarial.args, bounds)
    if objective is not supervised:
        result.batch_loss = objective
    return result


def _score_loss(trainer, curriculum: ir.Curriculum, args: dict, imported: dict, splits, x, y) -> Curriculum:
    """The loss of a trained, imported model, computed once."""
    scorer = imported[args["model"]]
    scores = per_sample_loss(lambda v: scorer.model(scorer.inputs(v, splits.normalizer)), x, y)
    return Curriculum(curriculum, scores)


def _score_self(trainer, curriculum: ir.Curriculum, args: dict, imported: dict, splits, x, y) -> Curriculum:
    """The model's own loss, rescored before every epoch (self-paced learning)."""

    def rescore():
        trainer.model.eval()
        out = per_sample_loss(lambda v: trainer.outputs(v)[trainer.heads[0].target], x, y)
        return out

    return Curriculum(curriculum, None, rescore)


def _score_column(trainer, curriculum: ir.Curriculum, args: dict, imported: dict, splits, x, y) -> Curriculum:
    """A data column: lower is easier."""
    return Curriculum(curriculum, splits.targets["train"][args["name"]].float())


# difficulty score kind -> (trainer, curriculum, arguments, imported, splits, x, y) -> the order hook
SCORERS = {"loss": _score_loss, "self": _score_self, "column": _score_column}


def attach(trainer, plan: ir.TrainingPlan, imported: dict, splits) -> None:
    """Hooks that need the trainer's tensors: the curriculum's order."""
    if plan.curriculum is None:
        return
    score = plan.curriculum.score
    scorer = implementation(SCORERS, score.kind, "difficulty score", score.span)
    x, y = trainer.x["train"], trainer.y["train"][trainer.heads[0].target]
    trainer.hooks.order = scorer(trainer, plan.curriculum, score.args, imported, splits, x, y)


def hint_stage(trainer, plan: ir.TrainingPlan, imported: dict, splits, folder: Path, resume: bool, stream) -> list[dict]:
    """FitNets stage 1, or its result when a resumed run had finished it."""
    path = folder / "hint.pt"
    if resume and path.is_file():
        state = ckpt.load(path)
        trainer.model.load_state_dict(state["model"])
        torch.set_rng_state(state["rng"]["torch"])
        trainer.generator.set_state(state["rng"]["data"])
        return list(state["history"])

    def show(record):
        if stream is not None:
            print(f"hint epoch {record['epoch']}/{plan.distill.hint_epochs}  train.hint_loss {record['train.hint_loss']:.4f}", file=stream, flush=True)

    records = train_hints(trainer, imported[plan.distill.teacher], plan, splits.normalizer, show)
    if trainer.world.main:  # every process trained the same hints; rank 0 writes them
        ckpt.save(path, {"format": ckpt.FORMAT, "model": trainer.model.state_dict(), "rng": {"torch": torch.get_rng_state(), "data": trainer.generator.get_state()}, "history": records})
    return records
