"""What the lecture (and the reference libraries) say the tricks compute, on specs compiled by trick.

The lecture's other statements have their tests beside the layers they are about:
test_dropout.py (the weight scaling rule as the geometric mean of the 2^n sub-networks of
softmax regression; dropout as the penalty R(β) for logistic regression; DropConnect's
expectation by enumerating the masks) and test_objectives.py (L2 as weight decay, the L1
gradient λ·sign θ, weight noise as η·E‖∇_w ŷ‖²). Here:

- Penalties and weight noise choose the weights by role: the kernels and matrices of dense,
  conv and recurrent layers; never a norm's γ or β, whatever its shape. An `l2 1e-3` on a
  spec with a `layernorm` on [4, 8, 8] used to add ½·1e-3·256 = 0.128 from γ = 1 alone.
- DropConnect (Wan et al. 2013) draws a mask per example on dense layers: y_b =
  ((M_b ⊙ W) x_b)/(1 − p) + b; the expectation over masks is the dense layer (a Monte Carlo
  mean over independent examples, within a bound from the exact variance), and the
  examples of one batch get different masks (`dropconnect_mask=batch`: one for all).
- L1 drives the weights of an irrelevant input towards 0 (within ηλ), and its proximal
  step θ ← sign(θ)·max(|θ| − ηλ, 0) (`regularize l1 λ proximal=true`) to exactly 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

import trick
from trick.runtime.data import load_splits
from trick.runtime.objectives import Penalty, WeightNoise, loss_function, weights_by_layer
from trick.runtime.optim import optimizer
from trick.runtime.report import layer_weights
from trick.runtime.trainer import Trainer

from .support import KEEP_RESOLUTION, Draws, examples, generator, normal, num, seeds

EXACT = dict(atol=1e-12, rtol=1e-12)

# ---- penalties and weight noise: the weights by role ---------------------------------------------------------

NORMS = ["layernorm", "groupnorm 1", "batchnorm", "instancenorm"]


def _kernels(model: nn.Module) -> list[torch.Tensor]:
    """The dense and conv kernels, found by module type (independently of the graph's roles)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


@st.composite
def normed_networks(draw):
    """A spec whose norm sits on [C, L] or [C, H, W] (γ, β of 2 or 3 dimensions for layernorm)."""
    channels = draw(st.integers(1, 4))
    space = draw(st.sampled_from([(5,), (3, 3), (8, 8)]))
    norm = draw(st.sampled_from(NORMS))
    conv = f"conv {draw(st.integers(1, 3))} k=3 pad=1"
    lines = [norm, f"{conv} -> {norm} -> relu", "flatten", "dense 2 -> tanh", "dense 1"]
    return (channels, *space), lines


def _program(compile_spec, shape, lines, train):
    return compile_spec(shape, *lines, train=f"loss mse; {train}")


@given(net=normed_networks(), lam=st.floats(1e-5, 1.0), kind=st.sampled_from(["l2", "l1"]), seed=seeds)
@example(net=((4, 8, 8), ["layernorm", "conv 2 k=3 pad=1 -> relu", "flatten", "dense 1"]), lam=1e-3, kind="l2", seed=0)
def test_penalties_apply_to_the_kernels_only(compile_spec, net, lam, kind, seed):
    """½λ‖W‖² (or λ‖W‖₁) over the conv and dense kernels exactly, norm parameters left out."""
    shape, lines = net
    program = _program(compile_spec, shape, lines, f"regularize {kind} {num(lam)}")
    model = program.model(seed=seed).double()
    kernels = _kernels(model)
    with torch.no_grad():  # γ, β and the biases away from 1 and 0, so that leaving them out shows
        for p in model.parameters():
            if all(p is not w for w in kernels):
                p.add_(1.5)
    if kind == "l2":
        expected = 0.5 * lam * sum(float((w.detach().double() ** 2).sum()) for w in kernels)
    else:
        expected = lam * sum(float(w.detach().double().abs().sum()) for w in kernels)
    got = float(Penalty(model, program.graph, program.plan.regularizers)().detach())
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)
    # one definition of "the weights": the penalties', weight noise's and the reports'
    ids = {id(w) for w in kernels}
    assert [id(p) for _, ps in weights_by_layer(program.graph, model) for p in ps] == [id(w) for w in kernels]
    assert {id(p) for p in WeightNoise(model, program.graph, 0.1).params} == ids
    flat = torch.cat([w for _, w in layer_weights(program.graph, model)])
    torch.testing.assert_close(flat, torch.cat([w.detach().float().reshape(-1) for w in kernels]), atol=0, rtol=0)


def test_a_layernorm_on_an_image_adds_nothing_to_l2():
    """The issue's number: γ = 1 of a layernorm on [4, 8, 8] is 256 ones, ½·1e-3·256 = 0.128."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "d.npz"
        np.savez(data, x=np.zeros((4, 256), np.float32), y=np.zeros(4, np.int64))
        text = (
            f'spec ln\ndata {{ source file "{data}" }}\n'
            "model {\n    input [4, 8, 8]\n    layernorm\n    conv 2 k=3 -> relu\n    flatten\n    dense 1\n}\n"
            "train { loss mse; regularize l2 1e-3 }\n"
        )
        program = trick.compile(text)
    model = program.model(seed=0)
    penalty = float(Penalty(model, program.graph, program.plan.regularizers)().detach())
    kernels = 0.5e-3 * sum(float((w.detach().double() ** 2).sum()) for w in _kernels(model))
    assert penalty == pytest.approx(kernels, rel=1e-6)
    gamma = model.layernorm1.weight.detach()
    assert tuple(gamma.shape) == (4, 8, 8) and 0.5e-3 * float((gamma**2).sum()) == pytest.approx(0.128)


@given(net=normed_networks(), seed=seeds)
def test_weight_noise_perturbs_the_kernels_only(compile_spec, net, seed):
    """Weight noise draws one N(0, σ²) tensor per kernel and leaves every other parameter as it is."""
    shape, lines = net
    program = _program(compile_spec, shape, lines, "weight_noise std=0.5")
    model = program.model(seed=seed).double()
    kernels = _kernels(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    draws = [normal(generator(seed + i), *w.shape) for i, w in enumerate(kernels)]
    noise = WeightNoise(model, program.graph, program.plan.weight_noise)
    with Draws(normals=[d.clone() for d in draws]) as seen, noise:
        during = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert seen.normal == [tuple(w.shape) for w in kernels]
    by_id = {id(w): d for w, d in zip(kernels, draws)}
    for name, p in model.named_parameters():
        shift = by_id[id(p)] * 0.5 if id(p) in by_id else torch.zeros_like(p)
        torch.testing.assert_close(during[name], before[name] + shift, **EXACT, msg=lambda m, name=name: f"{name}: {m}")
        assert torch.equal(p.detach(), before[name])  # restored after the step


# ---- DropConnect: one mask per example -------------------------------------------------------------------------


@given(inputs=st.integers(1, 4), units=st.integers(1, 4), batch=st.integers(2, 4), p=st.floats(0.05, 0.9), bias=st.booleans(), seed=seeds)
def test_dropconnect_gives_each_example_its_own_mask(compile_spec, inputs, units, batch, p, bias, seed):
    """y_b = ((M_b ⊙ W) x_b)/(1 − p) + b with M_b the b-th of a (batch, units, inputs) draw."""
    line = f"dense {units} dropconnect={num(p)}" + ("" if bias else " bias=false")
    model = compile_spec((inputs,), line).model(seed=seed).double().train()
    dense = model.dense1
    gen = generator(seed)
    x = normal(gen, batch, inputs)
    mask = (torch.rand(batch, units, inputs, generator=gen) < 0.5).double()
    with torch.no_grad(), Draws(masks=[mask]) as seen:
        out = model(x)
    assert seen.bernoulli == [((batch, units, inputs), pytest.approx(1 - p, abs=KEEP_RESOLUTION))]
    for b in range(batch):
        expected = F.linear(x[b], dense.weight * mask[b] / (1 - p), dense.bias)
        torch.testing.assert_close(out[b], expected, **EXACT)


@examples(0.5)
@given(inputs=st.integers(2, 6), units=st.integers(1, 5), p=st.floats(0.1, 0.7), seed=seeds)
def test_dropconnect_expectation_is_the_dense_layer_by_monte_carlo(compile_spec, inputs, units, p, seed):
    """Real draws: n copies of one input in one batch are n independent examples (one mask
    each), so their mean output estimates E_M[y] = Wx + b. Each output y_o is a sum of
    independent terms W_oi x_i M_oi/(1 − p) with variance W_oi² x_i² p/(1 − p), so the mean of
    n copies has standard deviation σ_o = √(Σ_i W_oi² x_i² p/(1 − p) / n); a deviation beyond
    6σ_o has probability below 2·10⁻⁹ per output (Chebyshev would still give 1/36; the sum of
    bounded terms is close to normal here), so the test fails only when the mean is wrong.
    The copies' outputs differ (the masks differ between examples); with
    `dropconnect_mask=batch` every copy gets the same output."""
    n = 20000
    torch.manual_seed(seed)
    program = compile_spec((inputs,), f"dense {units} dropconnect={num(p)}")
    model = program.model(seed=seed).double()
    dense = model.dense1
    x = normal(generator(seed), 1, inputs, scale=2.0)
    copies = x.expand(n, inputs)
    with torch.no_grad():
        expected = model.eval()(x)[0]
        outputs = model.train()(copies)
    sigma = ((dense.weight**2 * x**2).sum(1) * p / (1 - p) / n).sqrt()
    assert ((outputs.mean(0) - expected).abs() <= 6 * sigma + 1e-12).all(), (outputs.mean(0), expected, sigma)
    assert len(torch.unique(outputs, dim=0)) > 1  # the examples' masks differ
    # the same layer with one mask for the batch: identical copies give identical outputs
    batch = compile_spec((inputs,), f"dense {units} dropconnect={num(p)} dropconnect_mask=batch").model(seed=seed).double().train()
    with torch.no_grad():
        shared = batch(copies[:64])
    assert torch.equal(shared, shared[:1].expand_as(shared))


# ---- L1: towards 0, and with the proximal step to exactly 0 -------------------------------------------------------


@given(lam=st.floats(1e-3, 0.5), lr=st.floats(1e-3, 0.5), slow=st.floats(0.1, 1.0), seed=seeds)
def test_the_proximal_step_is_soft_thresholding(compile_spec, lam, lr, slow, seed):
    """One SGD step, then θ ← sign(θ)·max(|θ| − ηλ, 0) on the weights, η the learning rate of
    each parameter's group; biases and norm parameters get the plain step. With proximal=true
    the loss has no L1 term."""
    program = compile_spec((4,), "dense 3 -> layernorm -> tanh", "dense 1", train=f"loss mse; optimizer sgd lr={num(lr)}; regularize l1 {num(lam)} proximal=true")
    (step,) = program.plan.regularizers
    assert step.args["proximal"] is True
    model = program.model(seed=seed).double()
    with torch.no_grad():  # some weights near 0, so that some are cut to 0 and some only shrink
        for w in _kernels(model):
            w.mul_(normal(generator(seed), *w.shape).abs() < 0.7)
    penalty = Penalty(model, program.graph, program.plan.regularizers)
    assert not penalty  # nothing is added to the loss
    params = dict(model.named_parameters())
    groups = [{"params": [params["dense1.weight"], params["dense1.bias"], params["layernorm1.weight"]]}, {"params": [params["layernorm1.bias"], params["dense2.weight"], params["dense2.bias"]], "lr": lr * slow}]
    rate = {name: lr if i < 3 else lr * slow for i, name in enumerate(["dense1.weight", "dense1.bias", "layernorm1.weight", "layernorm1.bias", "dense2.weight", "dense2.bias"])}
    x, y = normal(generator(seed + 1), 6, 4), normal(generator(seed + 2), 6)
    loss = loss_function("mse")
    grads = dict(zip(params, torch.autograd.grad(loss(model(x), y), list(params.values()))))
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = optimizer(program.plan.optimizer, groups)
    opt.zero_grad()
    loss(model(x), y).backward()
    opt.step()
    penalty.prox(opt)
    weights = {id(w) for w in _kernels(model)}
    for name, p in params.items():
        plain = before[name] - rate[name] * grads[name]
        expected = plain.sign() * (plain.abs() - rate[name] * lam).clamp(min=0) if id(p) in weights else plain
        torch.testing.assert_close(p.detach(), expected, **EXACT, msg=lambda m, name=name: f"{name}: {m}")


@pytest.fixture(scope="module")
def irrelevant_data(tmp_path_factory):
    """240 samples of 4 inputs; the label depends on the first only."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 4)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.standard_normal(240) > 0).astype(np.int64)
    path = tmp_path_factory.mktemp("l1") / "irrelevant.npz"
    np.savez(path, x=x, y=y)
    return path


def _train_irrelevant(path, lam: float, lr: float, proximal: bool, seed: int):
    """Full-batch SGD on squared loss for a `dense 1` until every irrelevant weight can have
    reached 0; returns (weights before, after, steps, ηλ). The irrelevant inputs of the
    training split are made exactly orthogonal (in float64) to the constant, to the relevant
    input, to the labels and to each other, with mean square 1: the gradient of the loss in an
    irrelevant weight w_j is then 2·w_j, so an SGD step with the L1 gradient is
    w_j ← (1 − 2η)w_j − ηλ·sign(w_j), and with the proximal step soft-thresholding at ηλ of
    (1 − 2η)w_j."""
    text = (
        f'spec l1\ndata {{ source file "{path}" }}\n'
        "model {\n    input [4]\n    dense 1\n}\n"
        f"train {{ loss mse; batch 1000; optimizer sgd lr={num(lr)}; regularize l1 {num(lam)}{' proximal=true' if proximal else ''}; seed {seed} }}\n"
    )
    program = trick.compile(text)
    splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
    x, labels = splits.x_train.double(), splits.y_train.double()
    n = len(x)
    z = torch.randn(n, 3, generator=generator(seed), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.cat([torch.ones(n, 1, dtype=torch.float64), x[:, :1], labels[:, None], z], 1))
    splits.x_train[:, 1:] = (q[:, 3:] * math.sqrt(n)).float()
    model = program.model(seed=seed)
    before = model.dense1.weight.detach().clone()
    trainer = Trainer(model, program.graph, program.plan, splits, torch.device("cpu"))
    assert trainer.steps_per_epoch == 1
    steps = math.ceil(float(before.abs().max()) / (lr * lam)) + 3
    for _ in range(steps):
        trainer.train_epoch()
    return before[0], model.dense1.weight.detach()[0], steps, lr * lam


@examples(0.25)
@given(lam=st.floats(0.05, 0.5), lr=st.floats(0.05, 0.25), seed=seeds)
@example(lam=0.1, lr=0.1, seed=0)
def test_l1_sets_the_weights_of_irrelevant_inputs_to_exactly_zero(irrelevant_data, lam, lr, seed):
    _, plain, _, threshold = _train_irrelevant(irrelevant_data, lam, lr, proximal=False, seed=seed)
    # the L1 gradient drives them towards 0: each step takes ηλ off |w_j| until |w_j| ≤ ηλ,
    # then it stays within ηλ of 0 (and, with a step of ηλ either way, rarely at 0 itself)
    assert (plain[1:].abs() <= threshold * (1 + 1e-4) + 1e-6).all(), (plain, threshold)
    _, proximal, _, _ = _train_irrelevant(irrelevant_data, lam, lr, proximal=True, seed=seed)
    assert proximal[1:].tolist() == [0.0, 0.0, 0.0], proximal
    assert proximal[0] != 0.0 and plain[0] != 0.0  # the relevant input keeps its weight
