"""FGSM adversarial training (issue 15): the attack's gradient comes from the clean forward pass
that the loss uses, so each step runs the model once on the clean batch and once on the
adversarial one (BatchNorm's running statistics see each batch once, dropout draws one mask
per pass), and the loss is (1 − w)·J(x) + w·J(x') with x' = x + ε·sign(∇ₓJ(x)), ‖x' − x‖∞ ≤ ε."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import trick
from trick.runtime import recipe
from trick.runtime import trainer as trainer_module
from trick.runtime.trainer import supervised

SPEC = """spec bn_fgsm
data {{ source digits }}
model {{
    input [64]
    dense 16 -> batchnorm -> relu{dropout}
    dense 10
}}
train {{
    epochs 1
    batch 128
    adversarial fgsm eps=0.05 weight={weight}
}}
"""


class Stub:
    """What an objective reads of the trainer: the training forward and the loss."""

    def __init__(self, model):
        self.model = model

    def outputs(self, x):
        return {"label": self.model(x)}

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs["label"], targets["label"])


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]


def test_each_training_step_feeds_batchnorm_the_clean_and_the_adversarial_batch_once(tmp_path, monkeypatch):
    deltas = []
    original = trainer_module.Trainer._step

    def step(self, x, targets, i):
        (bn,) = batchnorms(self.model)
        before = int(bn.num_batches_tracked)
        out = original(self, x, targets, i)
        deltas.append(int(bn.num_batches_tracked) - before)
        return out

    monkeypatch.setattr(trainer_module.Trainer, "_step", step)
    result = trick.run(trick.compile(SPEC.format(dropout=" -> dropout 0.5", weight="0.5")), tmp_path / "run")
    assert len(deltas) == -(-1437 // 128) and set(deltas) == {2}
    assert 0 <= result.summary["test"]["accuracy"] <= 1


def by_hand(model, x, y, eps, weight, bounds):
    """(1 − w)·J(x) + w·J(x'), the attack's gradient from the same forward pass as J(x)."""
    x = x.clone().requires_grad_(True)
    clean = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(clean, x, retain_graph=True)
    x_adv = x.detach() + eps * grad.sign()
    if bounds is not None:
        x_adv = x_adv.clamp(*bounds)
    return (1 - weight) * clean + weight * F.cross_entropy(model(x_adv), y), x_adv


@pytest.mark.parametrize("dropout", ["", " -> dropout 0.5"])
@pytest.mark.parametrize("bounds", [None, (0.0, 1.0)])
def test_the_loss_is_the_mix_of_the_clean_and_the_adversarial_loss(dropout, bounds):
    weight, eps = 0.3, 0.05
    program = trick.compile(SPEC.format(dropout=dropout, weight=weight))
    model = program.model(seed=0).train()
    reference = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(32, 64, generator=g), torch.randint(0, 10, (32,), generator=g)

    seen = []

    def objective(trainer, v, targets):  # the plain objective, recording its inputs
        seen.append(v.detach().clone())
        return supervised(trainer, v, targets)

    batch_loss = recipe.adversarial(objective, eps, weight, bounds)
    torch.manual_seed(7)  # the same dropout masks, drawn in the same order, as by hand
    loss, outputs = batch_loss(Stub(model), x, {"label": y})
    torch.manual_seed(7)
    expected, x_adv = by_hand(reference, x, y, eps, weight, bounds)

    assert len(seen) == 2  # one clean forward, one adversarial forward
    assert torch.equal(seen[0], x) and torch.equal(seen[1], x_adv)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    assert outputs["label"].shape == (32, 10)
    for bn, ref in zip(batchnorms(model), batchnorms(reference), strict=True):
        assert int(bn.num_batches_tracked) == 2
        torch.testing.assert_close(bn.running_mean, ref.running_mean)
        torch.testing.assert_close(bn.running_var, ref.running_var)
    # the update's gradient is the hand-made loss's: the retained graph of the clean pass is whole
    loss.backward()
    expected.backward()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_the_attack_wraps_any_objective_and_keeps_its_outputs():
    calls = []

    def objective(trainer, v, targets):  # e.g. the distillation objective: a loss of the logits
        calls.append(v.requires_grad)
        logits = v.sum(1, keepdim=True) * torch.tensor([[1.0, -1.0]])
        return F.cross_entropy(logits, targets["label"]), {"label": logits}

    x, y = torch.tensor([[0.5, 0.2], [0.1, 0.9]]), torch.tensor([0, 1])
    loss, outputs = recipe.adversarial(objective, 0.1, 0.5, None)(None, x, {"label": y})
    assert calls == [True, False]  # the clean pass differentiable in x, the adversarial one a constant input
    torch.testing.assert_close(outputs["label"], (x.sum(1, keepdim=True) * torch.tensor([[1.0, -1.0]])))
    assert loss.grad_fn is not None


@settings(max_examples=50, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    eps=st.floats(1e-3, 2.0),
    seed=st.integers(0, 2**31 - 1),
    bounded=st.booleans(),
)
def test_the_perturbation_stays_within_eps(shape, eps, seed, bounded):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) if bounded else torch.randn(shape, generator=g) * 3
    grad = torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) > 0.2)
    bounds = (0.0, 1.0) if bounded else None
    x_adv = recipe.fgsm_step(x, grad, eps, bounds)
    rounding = 2 * torch.finfo(torch.float32).eps * (float(x.abs().max()) + eps)
    assert float((x_adv - x).abs().max()) <= eps + rounding
    assert not x_adv.requires_grad
    if bounded:
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    else:
        moved = grad != 0
        torch.testing.assert_close((x_adv - x)[moved], (eps * grad.sign())[moved], rtol=0, atol=rounding)
        assert torch.equal(x_adv[~moved], x[~moved])
