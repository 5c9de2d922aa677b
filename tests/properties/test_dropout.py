"""Dropout and DropConnect, by exact enumeration of every mask the compiled module can draw.

`Draws` (support.py) hands the module each 0/1 mask in turn in place of its random bits
and records the keep probability it asked for; the expectation over masks is then the
sum of the module's own outputs weighted by P(mask) = q^k (1 − q)^(n − k), q = 1 − p.

- 4. The expected output in training equals the output in evaluation, in both modes:
  inverted (scale 1/(1 − p) in training, identity at test) and `mode=scale_at_test` (the
  weight scaling rule: no scaling in training, × (1 − p) at test).
- 5. The weight scaling rule is exact for softmax regression: the renormalized geometric
  mean of the 2^n sub-networks' predictions (weighted by P(mask); for p = 0.5 the plain
  2^n-th root of the product, as the lecture writes it) is the prediction with the weights
  scaled by the keep probability (n ≤ 10 inputs, all 2^n masks). DropConnect's expectation
  over weight masks (one per example for dense, one per batch for conv) is the evaluation
  output of the layer.
- 10. Dropout as a regularizer for logistic regression: E_ξ[ℓ(x ⊙ ξ)] − ℓ(x) is
  R(β) = ½·δ/(1 − δ)·Σᵢⱼ x²ᵢⱼ β²ⱼ pᵢ(1 − pᵢ) to second order (see the tests for what
  "approaches" means exactly).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

from trick.runtime.objectives import cross_entropy

from .support import KEEP_RESOLUTION, Draws, examples, generator, mask_probability, masks, normal, num, seeds

EXACT = dict(atol=1e-10, rtol=1e-10)
probabilities = st.one_of(st.just(0.5), st.floats(0.02, 0.95))
modes = st.sampled_from(["inverted", "scale_at_test"])


def _dropout(p: float, mode: str) -> str:
    return f"dropout {num(p)}" + (" mode=scale_at_test" if mode == "scale_at_test" else "")


def _expectation(model, x, shape, keep):
    """Σ over every mask of `shape` of P(mask)·model(x) with that mask, checking each draw."""
    size = math.prod(shape)
    total = 0.0
    for mask, ones in masks(shape):
        with torch.no_grad(), Draws(masks=[mask]) as draws:
            out = model(x)
        assert draws.bernoulli == [(shape, pytest.approx(keep, abs=KEEP_RESOLUTION))]
        total = total + mask_probability(ones, size, keep) * out
    return total


# ---- 4. E[training output] = evaluation output ----------------------------------------------------------------


@st.composite
def dropout_networks(draw):
    """Lines around a dropout layer (affine after it, anything before), batch, input width,
    and the width of the dropped layer; the mask has at most 8 entries."""
    width = draw(st.integers(1, 4))
    before = draw(st.sampled_from(["", "dense {h} -> relu", "dense {h} -> tanh"]))
    hidden = draw(st.integers(1, 4)) if before else width
    batch = draw(st.integers(1, max(1, 8 // hidden)))
    after = draw(st.sampled_from(["", "dense 3", "dense 1 bias=false"]))
    return width, before.format(h=hidden), hidden, after, batch


@given(net=dropout_networks(), p=probabilities, mode=modes, seed=seeds)
def test_expected_training_output_equals_evaluation_output(compile_spec, net, p, mode, seed):
    width, before, hidden, after, batch = net
    line = " -> ".join(part for part in (before, _dropout(p, mode), after) if part)
    model = compile_spec((width,), line, train="loss mse").model(seed=seed).double()
    x = normal(generator(seed), batch, width, scale=2.0)
    expected = model.eval()(x)
    mean = _expectation(model.train(), x, (batch, hidden), 1.0 - p)
    torch.testing.assert_close(mean, expected, **EXACT)


@given(width=st.integers(1, 6), batch=st.integers(1, 3), p=probabilities, mode=modes, seed=seeds)
def test_dropout_modes_scale_where_the_spec_says(compile_spec, width, batch, p, mode, seed):
    """Inverted: kept units × 1/(1 − p) in training, identity at test; scale_at_test: kept
    units unchanged in training, × (1 − p) at test."""
    model = compile_spec((width,), _dropout(p, mode)).model().double()
    x = normal(generator(seed), batch, width)
    mask = (torch.arange(batch * width).reshape(batch, width) % 2).double()
    with Draws(masks=[mask]):
        out = model.train()(x)
    train_scale, test_scale = (1 / (1 - p), 1.0) if mode == "inverted" else (1.0, 1 - p)
    torch.testing.assert_close(out, x * mask * train_scale, **EXACT)
    torch.testing.assert_close(model.eval()(x), x * test_scale, **EXACT)


# ---- 5. softmax regression: the geometric mean of the sub-networks --------------------------------------------


@given(inputs=st.integers(1, 10), classes=st.integers(2, 5), p=probabilities, mode=modes, seed=seeds)
@example(inputs=4, classes=3, p=0.5, mode="scale_at_test", seed=0)  # the lecture's case, p = 1/2
@example(inputs=10, classes=4, p=0.5, mode="scale_at_test", seed=1)  # 2^10 sub-networks
def test_weight_scaling_is_exact_for_softmax_regression(compile_spec, inputs, classes, p, mode, seed):
    gen = generator(seed)
    model = compile_spec((inputs,), f"{_dropout(p, mode)} -> dense {classes}").model(seed=seed).double()
    dense = model.dense1
    with torch.no_grad():
        dense.weight.copy_(normal(gen, classes, inputs, scale=2.0))
        dense.bias.copy_(normal(gen, classes))
    v = normal(gen, 1, inputs, scale=2.0)
    keep = 1.0 - p
    # log of the geometric mean Π_μ P(y | v; μ)^P(μ); for p = 1/2 every P(μ) is 2^-n
    model.train()
    log_mean = 0.0
    for mask, ones in masks((1, inputs)):
        with torch.no_grad(), Draws(masks=[mask]) as draws:
            log_probs = F.log_softmax(model(v), dim=1)
        assert draws.bernoulli == [((1, inputs), pytest.approx(keep, abs=KEEP_RESOLUTION))]
        log_mean = log_mean + mask_probability(ones, inputs, keep) * log_probs
    ensemble = torch.softmax(log_mean, dim=1)  # renormalized over the classes
    torch.testing.assert_close(ensemble, torch.softmax(model.eval()(v), dim=1), **EXACT)
    # ... which is the network with its weights multiplied by the keep probability (for the
    # inverted mode the training network's weights are W/(1 − p), so scaled they are W).
    weights = dense.weight * keep if mode == "scale_at_test" else dense.weight
    torch.testing.assert_close(ensemble, torch.softmax(F.linear(v, weights, dense.bias), dim=1), **EXACT)


@st.composite
def dropconnect_layers(draw):
    """A dense or conv layer with DropConnect, a batch, and the shape of the mask one forward
    draws: (batch, units, inputs) for dense's default mask per example, the weights' shape for
    `dropconnect_mask=batch` and for conv (one mask per batch); at most 8 mask entries."""
    kind = draw(st.sampled_from(["example", "batch", "conv"]))
    if kind == "example":
        batch = draw(st.integers(1, 3))
        inputs = draw(st.integers(1, max(1, 8 // (2 * batch)) if batch > 1 else 4))
        units = draw(st.integers(1, max(1, 8 // (batch * inputs))))
        return (inputs,), f"dense {units}", (units, inputs), batch, (batch, units, inputs)
    batch = draw(st.integers(1, 3))
    if kind == "batch":
        inputs = draw(st.integers(1, 4))
        units = draw(st.integers(1, 8 // inputs))
        return (inputs,), f"dense {units} dropconnect_mask=batch", (units, inputs), batch, (units, inputs)
    channels = draw(st.integers(1, 2))
    out = draw(st.integers(1, 2))
    k = draw(st.integers(1, 8 // (channels * out)))
    length = draw(st.integers(k, k + 3))
    return (channels, length), f"conv {out} k={k}", (out, channels, k), batch, (out, channels, k)


@given(layer=dropconnect_layers(), p=probabilities, seed=seeds)
def test_dropconnect_expectation_is_the_evaluation_layer(compile_spec, layer, p, seed):
    shape, line, weight_shape, batch, mask_shape = layer
    model = compile_spec(shape, f"{line} dropconnect={num(p)}").model(seed=seed).double()
    (module,) = model.children()
    assert tuple(module.weight.shape) == weight_shape
    x = normal(generator(seed), batch, *shape, scale=2.0)
    expected = model.eval()(x)
    # the masks are drawn on the weights (one draw per forward), not on the inputs: one
    # (units, inputs) mask per example for dense, one for the batch with dropconnect_mask=batch
    # and for conv; the bias is never masked
    mean = _expectation(model.train(), x, mask_shape, 1.0 - p)
    torch.testing.assert_close(mean, expected, **EXACT)
    # which is the layer with its own weights W (DropConnect keeps E[W ⊙ M/(1 − p)] = W)
    plain = F.linear(x, module.weight, module.bias) if len(shape) == 1 else F.conv1d(x, module.weight, module.bias)
    torch.testing.assert_close(mean, plain, **EXACT)


# ---- 10. dropout as a regularizer for logistic regression -----------------------------------------------------


def _logistic_terms(compile_spec, inputs, delta, seed, samples, size=None):
    """A compiled `dropout δ -> dense 2 bias=false`: softmax over two classes is logistic
    regression with β = w₁ − w₀. Returns (E_ξ[L(X ⊙ ξ)] − L(X), R(β), X, β) for L the summed
    cross-entropy (the project's), the expectation by enumeration. With `size`, β is scaled
    so that the largest |xᵢⱼβⱼ| (the largest change one dropped input makes) is `size`."""
    gen = generator(seed)
    model = compile_spec((inputs,), f"dropout {num(delta)} -> dense 2 bias=false").model(seed=seed).double()
    x = normal(gen, samples, inputs, scale=1.5)
    w0, beta = normal(gen, inputs), normal(gen, inputs)
    if size is not None:
        beta = beta * size / (x * beta).abs().max()
    with torch.no_grad():
        model.dense1.weight.copy_(torch.stack([w0, w0 + beta]))
    y = torch.randint(0, 2, (samples,), generator=gen)
    loss = lambda out: cross_entropy(out, y) * samples  # noqa: E731 - Σᵢ ℓᵢ
    with torch.no_grad():
        clean = loss(model.eval()(x))
    # Rows' masks are independent, so E[Σᵢ ℓᵢ] needs only each row's 2^d masks: give every
    # row the same mask (linearity of expectation), 2^d forwards in all.
    model.train()
    noisy = 0.0
    for pattern, ones in masks((inputs,)):
        with torch.no_grad(), Draws(masks=[pattern.expand(samples, inputs)]) as draws:
            value = loss(model(x))
        assert draws.bernoulli == [((samples, inputs), pytest.approx(1 - delta, abs=KEEP_RESOLUTION))]
        noisy = noisy + mask_probability(ones, inputs, 1 - delta) * value
    p = torch.sigmoid(x @ beta)
    R = 0.5 * delta / (1 - delta) * (x**2 * beta**2 * (p * (1 - p))[:, None]).sum()
    return float(noisy - clean), float(R), x, beta


@examples(0.5)
@given(inputs=st.integers(1, 6), samples=st.integers(1, 4), delta=st.sampled_from([0.5, 0.2, 0.05, 1e-3, 1e-5]), seed=seeds)
def test_dropout_regularizer_is_R_to_second_order(compile_spec, inputs, samples, delta, seed):
    """The lecture's R(β) is a second-order Taylor expansion in the perturbation x ⊙ (ξ − 1)·β,
    so E_ξ[ℓ(x ⊙ ξ)] − ℓ(x) = R(β)·(1 + O(t)) when β is scaled by t: the ratio goes to 1
    as t → 0, linearly (or faster), at every drop probability δ (small δ included). Here t is
    set by the largest |xᵢⱼβⱼ|: 0.1, then 0.01."""
    errors = []
    for size in (0.1, 0.01):
        penalty, R, _, _ = _logistic_terms(compile_spec, inputs, delta, seed, samples, size)
        assert R > 0
        errors.append(abs(penalty / R - 1))
    assert errors[-1] < 5e-3, errors
    assert errors[-1] <= 0.2 * errors[0] + 1e-5, errors  # O(t): ~10x smaller for a 10x smaller t


@examples(0.5)
@given(inputs=st.integers(1, 6), samples=st.integers(1, 4), seed=seeds)
def test_dropout_regularizer_as_delta_goes_to_zero(compile_spec, inputs, samples, seed):
    """As δ → 0 with β fixed, dropout is a rare but whole perturbation (one feature dropped
    with probability ≈ δ), so E_ξ[ℓ(x ⊙ ξ)] − ℓ(x) → δ·Σᵢⱼ [A(zᵢ − aᵢⱼ) − A(zᵢ) + aᵢⱼA'(zᵢ)],
    aᵢⱼ = xᵢⱼβⱼ, A = softplus; R(β) → δ·½Σᵢⱼ A''(zᵢ)aᵢⱼ², its second-order expansion. (So the
    ratio to R tends to 1 + O(max |aᵢⱼ|), not to 1: "approaches R as δ → 0" holds only for
    small perturbations, which the test above checks.)"""
    A = F.softplus
    errors = []
    for delta in (1e-3, 1e-5):
        penalty, R, x, beta = _logistic_terms(compile_spec, inputs, delta, seed, samples)
        a = x * beta
        z = a.sum(1, keepdim=True)
        limit = float((A(z - a) - A(z) + a * torch.sigmoid(z)).sum())
        second_order = float(0.5 * (torch.sigmoid(z) * (1 - torch.sigmoid(z)) * a**2).sum())
        errors.append(abs(penalty / delta / limit - 1))
        assert R / delta == pytest.approx(second_order, rel=2 * delta)
    assert errors[-1] < 1e-3, errors
    assert errors[-1] <= 0.05 * errors[0] + 1e-7, errors  # O(δ): 100x smaller for a 100x smaller δ
