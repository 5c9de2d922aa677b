"""Penalties, label smoothing and weight noise: the project's objectives, with plans compiled
from .trick text.

- 6. L2: one SGD step on L + ½λ‖θ‖² is θ ← (1 − ηλ)θ − η∇L; the gradient of λ‖θ‖₁ is
  λ·sign(θ); biases and normalization parameters (whatever their shape) are left out
  unless `include=all`.
- 7. Label smoothing: the targets sum to 1, the true class keeps 1 − ε, every other class
  gets ε/(k − 1); the smoothed cross-entropy is smallest, and equal to the targets'
  entropy, where the softmax equals the targets, and its gradient is softmax − targets.
- 9. Weight noise ε_w ~ N(0, ηI), η = std²: E[(ŷ_ε(x) − y)²] = J + η·E‖∇_w ŷ‖² + O(η²) —
  the lecture's first-order derivation — for networks whose output is affine in each
  weight (no nonlinearity between layers); for others the same expansion has one more
  term of order η, η·E[(ŷ − y)·tr ∇²_w ŷ], which the lecture's first-order Taylor
  expansion of ŷ leaves out (it vanishes where E[y | x] = ŷ(x)).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, example, given
from hypothesis import strategies as st
from torch import nn

from trick.runtime.objectives import Penalty, WeightNoise, loss_function, smoothed_targets
from trick.runtime.optim import optimizer

from .support import Draws, examples, generator, normal, num, seeds

EXACT = dict(atol=1e-10, rtol=1e-10)

# Small networks with weights, biases and normalization parameters: (input shape, lines).
# A layernorm on [C, L] or [C, H, W] has γ and β of that shape (2 or 3 dimensions, like a
# kernel): they are normalization parameters all the same. Recurrent layers have several
# weight matrices (and, layer-normalized, the γ of the norms inside their cells).
NETWORKS = [
    ((3,), ["dense 4 -> batchnorm -> tanh", "dense 1"]),
    ((5,), ["dense 3 -> layernorm -> relu", "dense 2 bias=false -> tanh", "dense 1"]),
    ((2, 6), ["conv 3 k=3 -> groupnorm 3 -> relu", "flatten", "dense 1"]),
    ((2, 4, 4), ["conv 2 k=2 -> batchnorm -> relu", "avgpool global", "dense 1"]),
    ((2, 6), ["conv 3 k=3 -> layernorm -> relu", "flatten", "dense 1"]),
    ((2, 3, 3), ["layernorm", "residual { conv 2 k=3 pad=1 -> layernorm -> relu }", "flatten", "dense 1"]),
    ((2, 4), ["gru 3 norm=layer -> last", "dense 1"]),
    ((2, 4), ["lstm 2 bidirectional=true -> layernorm -> last", "dense 1"]),
    ((3,), ["dense 4 -> tanh", "head label { dense 2 -> layernorm -> dense 1 } loss=mse"]),
]


def _is_weight(model: nn.Module, name: str) -> bool:
    """A dense or conv kernel, or a recurrent weight matrix: what the lecture calls the weights
    (not a bias, not γ or β). Decided from the modules' types, independently of the graph's
    layer roles that the implementation reads."""
    from trick import layers

    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner)
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        return leaf == "weight"
    if isinstance(module, (nn.GRU, nn.LSTM)):
        return leaf.startswith(("weight_ih_l", "weight_hh_l"))
    if isinstance(module, layers.LayerNormGRUCell | layers.LayerNormLSTMCell):
        return leaf in ("weight_ih", "weight_hh")
    return False


def _output(model, x):
    out = model(x)
    return out["label"] if isinstance(out, dict) else out


def _data(gen, shape, batch=6):
    return normal(gen, batch, *shape), normal(gen, batch)


# ---- 6. L2 and L1 ------------------------------------------------------------------------------------------


@given(net=st.sampled_from(NETWORKS), lam=st.floats(1e-4, 0.9), lr=st.floats(1e-3, 0.9), include=st.sampled_from(["weights", "all"]), seed=seeds)
@example(net=NETWORKS[4], lam=0.5, lr=0.1, include="weights", seed=0)  # a layernorm's γ of shape [C, L] is not decayed
@example(net=NETWORKS[6], lam=0.5, lr=0.1, include="weights", seed=0)  # nor the γ inside a layer-normalized cell
def test_l2_sgd_step_is_weight_decay(compile_spec, net, lam, lr, include, seed):
    shape, lines = net
    program = compile_spec(shape, *lines, train=f"loss mse; optimizer sgd lr={num(lr)}; regularize l2 {num(lam)} include={include}")
    (step,) = program.plan.regularizers
    assert step.kind == "l2" and step.args["strength"] == lam and program.plan.optimizer.args["lr"] == lr
    model = program.model(seed=seed).double().train()
    penalty = Penalty(model, program.graph, program.plan.regularizers)
    loss = loss_function(program.plan.loss.kind)
    x, y = _data(generator(seed), shape)
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    grads = dict(zip(params, torch.autograd.grad(loss(_output(model, x), y), list(params.values()))))

    opt = optimizer(program.plan.optimizer, [{"params": list(params.values())}])
    opt.zero_grad()
    (loss(_output(model, x), y) + penalty()).backward()
    opt.step()
    for name, p in params.items():
        decayed = include == "all" or _is_weight(model, name)
        theta = (1 - lr * lam) * before[name] if decayed else before[name]
        torch.testing.assert_close(p.detach(), theta - lr * grads[name], **EXACT, msg=lambda m: f"{name}: {m}")


@given(net=st.sampled_from(NETWORKS), lam=st.floats(1e-4, 0.9), include=st.sampled_from(["weights", "all"]), seed=seeds)
@example(net=NETWORKS[5], lam=0.5, include="weights", seed=0)  # γ, β of [C, H, W] are not penalized
def test_l1_gradient_is_lambda_sign(compile_spec, net, lam, include, seed):
    shape, lines = net
    program = compile_spec(shape, *lines, train=f"loss mse; regularize l1 {num(lam)} include={include}")
    model = program.model(seed=seed).double()
    with torch.no_grad():  # some exact zeros, whose sign (and subgradient) is 0
        for p in model.parameters():
            p[(torch.arange(p.numel()) % 5 == 0).view_as(p)] = 0.0
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(Penalty(model, program.graph, program.plan.regularizers)(), list(params.values()), allow_unused=True)
    for (name, p), g in zip(params.items(), grads):
        penalized = include == "all" or _is_weight(model, name)
        expected = lam * p.detach().sign() if penalized else torch.zeros_like(p)
        torch.testing.assert_close(torch.zeros_like(p) if g is None else g, expected, **EXACT, msg=lambda m: f"{name}: {m}")


# ---- 7. label smoothing -------------------------------------------------------------------------------------


@given(classes=st.integers(2, 30), eps=st.one_of(st.just(0.0), st.floats(1e-6, 0.99)), labels=st.data(), seed=seeds)
def test_label_smoothing_targets(compile_spec, classes, eps, labels, seed):
    program = compile_spec((3,), f"dense {classes}", train=f"loss cross_entropy smoothing={num(eps)}")
    smoothing = program.plan.loss.args.get("smoothing", 0.0)
    assert smoothing == eps
    y = torch.tensor(labels.draw(st.lists(st.integers(0, classes - 1), min_size=1, max_size=8)))
    t = smoothed_targets(y, classes, smoothing).double()
    rows = torch.arange(len(y))
    torch.testing.assert_close(t.sum(1), torch.ones(len(y), dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(t[rows, y], torch.full((len(y),), 1 - eps, dtype=torch.float64), atol=1e-7, rtol=1e-6)
    others = t.masked_select(F.one_hot(y, classes) == 0)
    torch.testing.assert_close(others, torch.full_like(others, eps / (classes - 1)), atol=1e-9, rtol=1e-6)

    # The loss of the plan with these targets: gradient softmax − t, minimum H(t) at softmax = t.
    loss = loss_function(program.plan.loss.kind, smoothing)
    logits = normal(generator(seed), len(y), classes, scale=3.0).requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(logits, y), logits)
    torch.testing.assert_close(grad, (logits.softmax(1) - t) / len(y), atol=1e-7, rtol=1e-5)
    if eps > 0:
        entropy = -(t * t.log()).sum(1).mean()
        at_targets = loss(t.log(), y)
        torch.testing.assert_close(at_targets, entropy, atol=1e-6, rtol=1e-6)
        assert float(loss(logits.detach(), y)) >= float(entropy) - 1e-6


# ---- 9. weight noise ----------------------------------------------------------------------------------------

# Probabilists' Gauss–Hermite rules for E over N(0, 1): 2 points are exact for polynomials of
# degree ≤ 3 in each coordinate, 3 points for degree ≤ 5.
GAUSS_HERMITE = {
    2: ([-1.0, 1.0], [0.5, 0.5]),
    3: ([-math.sqrt(3.0), 0.0, math.sqrt(3.0)], [1 / 6, 2 / 3, 1 / 6]),
}


def _noisy_weights(model):
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def _expected_noisy_loss(model, noise: WeightNoise, x, y, loss, points: int):
    """E over the weight noise of `loss`, by tensor-product Gauss–Hermite quadrature over the
    standard normal values that WeightNoise's `randn_like` draws (which it scales by std)."""
    weights = _noisy_weights(model)
    sizes = [w.numel() for w in weights]
    nodes, node_weights = GAUSS_HERMITE[points]
    total = 0.0
    state = [w.detach().clone() for w in weights]
    for index in itertools.product(range(points), repeat=sum(sizes)):
        xi = torch.tensor([nodes[i] for i in index], dtype=torch.float64)
        draws = [chunk.view_as(w) for chunk, w in zip(xi.split(sizes), weights)]
        with torch.no_grad(), Draws(normals=draws) as seen:
            with noise:
                value = loss(model(x), y)
        assert seen.normal == [tuple(w.shape) for w in weights] and not seen.normals
        for w, s in zip(weights, state):  # the exact weights come back after the step
            assert torch.equal(w.detach(), s)
        total = total + math.prod(node_weights[i] for i in index) * value
    return float(total)


def _gradient_terms(model, x, y):
    """J, E‖∇_w ŷ‖² and E[(ŷ − y)·tr ∇²_w ŷ] over the batch, by autograd, one sample at a time."""
    weights = _noisy_weights(model)
    out = model(x).squeeze(1)
    J = float(((out.detach() - y) ** 2).mean())
    grad_sq, hessian_term = 0.0, 0.0
    for i in range(len(x)):
        grads = torch.autograd.grad(out[i], weights, create_graph=True)
        grad_sq += float(sum((g.detach() ** 2).sum() for g in grads))
        trace = 0.0
        for w, g in zip(weights, grads):
            if not g.requires_grad:  # ŷ is affine in w: no second derivative
                continue
            for j in range(w.numel()):
                (second,) = torch.autograd.grad(g.reshape(-1)[j], w, retain_graph=True, allow_unused=True)
                trace += 0.0 if second is None else float(second.reshape(-1)[j])
        hessian_term += float(out[i].detach() - y[i]) * trace
    return J, grad_sq / len(x), hessian_term / len(x)


@st.composite
def noisy_networks(draw):
    """(input shape, lines, linear in each weight?): at most 6 noisy weights for the linear
    networks (2^6 quadrature nodes), 4 for the nonlinear ones (3^4 nodes)."""
    inputs = draw(st.integers(1, 2))
    hidden = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["linear", "dense", "nonlinear"]))
    if kind == "linear":
        return (inputs,), [f"dense {hidden}", "dense 1"], True  # affine in each weight matrix
    if kind == "dense":
        return (inputs,), ["dense 1"], True
    if inputs * hidden + hidden > 4:
        inputs = 1
    return (inputs,), [f"dense {hidden} -> {draw(st.sampled_from(['tanh', 'sigmoid']))}", "dense 1"], False


@examples(0.5)
@given(net=noisy_networks(), samples=st.integers(1, 4), seed=seeds, scale=st.floats(0.3, 1.5))
def test_weight_noise_adds_eta_times_the_squared_output_gradient(compile_spec, net, samples, seed, scale):
    shape, lines, linear = net
    gen = generator(seed)
    base = compile_spec(shape, *lines, train="loss mse")
    model = base.model(seed=seed).double().train()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(normal(gen, *p.shape, scale=scale))
    x, y = normal(gen, samples, *shape), normal(gen, samples)
    loss = loss_function(base.plan.loss.kind)  # mse: the squared error, averaged over p(x, y)
    J, grad_sq, hessian_term = _gradient_terms(model, x, y)
    assume(grad_sq > 1e-2)
    expected = grad_sq if linear else grad_sq + hessian_term
    if linear:
        assert hessian_term == pytest.approx(0.0, abs=1e-12)  # why the lecture's expansion is exact here

    errors = []
    for eta in (1e-3, 1e-5):
        program = compile_spec(shape, *lines, train=f"loss mse; weight_noise std={num(math.sqrt(eta))}")
        std = program.plan.weight_noise
        noise = WeightNoise(model, program.graph, std)
        noisy = _expected_noisy_loss(model, noise, x, y, loss, points=2 if linear else 3)
        errors.append(abs((noisy - J) / std**2 - expected) / (grad_sq + abs(hessian_term)))
    # the lecture's J + η·E‖∇ŷ‖² (+ the curvature term for nonlinear networks), up to O(η)
    assert errors[-1] < 1e-2, errors
    assert errors[-1] <= 0.05 * errors[0] + 1e-8, errors  # O(η): 100x smaller for a 100x smaller η
