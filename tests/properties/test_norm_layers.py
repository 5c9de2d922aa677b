"""Layer normalizations, as the lecture states them, on modules compiled from .trick text.

- Group norm with 1 group is layer norm over (C, L) or (C, H, W); with C groups it is
  instance norm; in training and in evaluation alike.
- Batch norm in training gives each feature (each channel, for conv) mean 0 and variance 1
  over the mini-batch before γ and β, with σ_B = sqrt(σ²_B + ε) (σ²_B the biased variance
  1/m Σ(x − μ_B)², as in the lecture's algorithm); in evaluation it uses the moving
  averages; γ = σ_B, β = μ_B give back the input (the identity mapping).

Everything runs in float64, so that the identities hold to ~1e-9.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from .support import generator, normal, num, seeds

EXACT = dict(atol=1e-9, rtol=1e-9)


@st.composite
def feature_maps(draw, spatial_min: int = 2):
    """(C, L) or (C, H, W) with at least `spatial_min` positions (instance norm needs 2)."""
    channels = draw(st.integers(1, 6))
    if draw(st.booleans()):
        spatial = (draw(st.integers(spatial_min, 7)),)
    else:
        spatial = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        if spatial[0] * spatial[1] < spatial_min:
            spatial = (spatial[0], spatial_min)
    return (channels, *spatial)


def _affine(module, gen, channels):
    """Random per-channel γ (away from 0, either sign) and β; returns them."""
    gamma = normal(gen, channels).sign() * (0.5 + torch.rand(channels, generator=gen, dtype=torch.float64))
    beta = normal(gen, channels)
    with torch.no_grad():
        module.weight.copy_(gamma)
        module.bias.copy_(beta)
    return gamma, beta


def _only(model):
    (module,) = list(model.children())
    return module


def _inputs(gen, batch, shape, scale, shift):
    return normal(gen, batch, *shape, scale=scale, shift=shift)


# ---- 1. group norm with 1 group / C groups ------------------------------------------------------------------


@given(shape=feature_maps(), batch=st.integers(1, 4), seed=seeds, scale=st.floats(1e-3, 20), shift=st.floats(-10, 10), training=st.booleans())
def test_groupnorm_with_one_group_is_layernorm(compile_spec, shape, batch, seed, scale, shift, training):
    gen = generator(seed)
    group = _only(compile_spec(shape, "groupnorm 1").model().double())
    layer = _only(compile_spec(shape, "layernorm").model().double())
    channels = shape[0]
    gamma, beta = _affine(group, gen, channels)
    # layer norm's affine parameters are per position; group norm's per channel: broadcast them.
    view = (channels,) + (1,) * (len(shape) - 1)
    with torch.no_grad():
        layer.weight.copy_(gamma.view(view).expand(shape))
        layer.bias.copy_(beta.view(view).expand(shape))
    x = _inputs(gen, batch, shape, scale, shift)
    group.train(training), layer.train(training)
    torch.testing.assert_close(group(x), layer(x), **EXACT)


@given(shape=feature_maps(), batch=st.integers(1, 4), seed=seeds, scale=st.floats(1e-3, 20), shift=st.floats(-10, 10), training=st.booleans())
def test_groupnorm_with_c_groups_is_instancenorm(compile_spec, shape, batch, seed, scale, shift, training):
    gen = generator(seed)
    channels = shape[0]
    group = _only(compile_spec(shape, f"groupnorm {channels}").model().double())
    instance = _only(compile_spec(shape, "instancenorm").model().double())
    gamma, beta = _affine(group, gen, channels)
    with torch.no_grad():
        instance.weight.copy_(gamma)
        instance.bias.copy_(beta)
    x = _inputs(gen, batch, shape, scale, shift)
    group.train(training), instance.train(training)
    torch.testing.assert_close(group(x), instance(x), **EXACT)


# ---- 2. batch norm ------------------------------------------------------------------------------------------

features_or_maps = st.one_of(st.tuples(st.integers(1, 6)), feature_maps(spatial_min=1))
epsilons = st.sampled_from([None, 1e-3, 0.1, 1.0])  # None: the default 1e-5


def _batchnorm(compile_spec, shape, eps=None, momentum=None):
    line = "batchnorm" + (f" eps={num(eps)}" if eps is not None else "") + (f" momentum={num(momentum)}" if momentum is not None else "")
    module = _only(compile_spec(shape, line).model().double())
    return module, (1e-5 if eps is None else eps)


def _batch_stats(x):
    """Per feature (per channel): mean and biased variance over the batch (and positions)."""
    dims = (0, *range(2, x.dim()))
    return x.mean(dims), x.var(dims, correction=0), dims


def _per_feature(t, x):
    return t.view((1, -1) + (1,) * (x.dim() - 2))


@given(shape=features_or_maps, batch=st.integers(2, 6), seed=seeds, scale=st.floats(1e-2, 20), shift=st.floats(-10, 10), eps=epsilons)
def test_batchnorm_standardizes_each_feature_over_the_batch(compile_spec, shape, batch, seed, scale, shift, eps):
    gen = generator(seed)
    bn, eps = _batchnorm(compile_spec, shape, eps)
    gamma, beta = _affine(bn, gen, shape[0])
    x = _inputs(gen, batch, shape, scale, shift)
    y = bn.train()(x)
    normalized = (y - _per_feature(beta, x)) / _per_feature(gamma, x)  # before γ and β
    mean, var, dims = _batch_stats(x)
    out_mean, out_var = normalized.mean(dims), normalized.var(dims, correction=0)
    torch.testing.assert_close(out_mean, torch.zeros_like(out_mean), atol=1e-9, rtol=0)
    # variance 1, up to the ε the lecture adds under the square root: σ²/(σ² + ε)
    torch.testing.assert_close(out_var, var / (var + eps), **EXACT)
    # and the lecture's algorithm itself: x̂ = (x − μ_B)/sqrt(σ²_B + ε)
    torch.testing.assert_close(normalized, (x - _per_feature(mean, x)) / _per_feature((var + eps).sqrt(), x), **EXACT)


@given(
    shape=features_or_maps,
    batch=st.integers(2, 6),
    steps=st.integers(1, 3),
    seed=seeds,
    momentum=st.one_of(st.just(0.0), st.just(1.0), st.floats(0.01, 1.0)),
    eps=epsilons,
)
def test_batchnorm_evaluation_uses_the_moving_averages(compile_spec, shape, batch, steps, seed, momentum, eps):
    """The moving averages are those of `momentum` (the newest batch's weight) over the
    training batches seen: of the batch means, and of the batch variances (unbiased, as
    PyTorch and Keras keep them: estimates of the population variance). Evaluation
    normalizes with them, so a sample's output no longer depends on its batch."""
    gen = generator(seed)
    bn, eps = _batchnorm(compile_spec, shape, eps, momentum)
    assert bn.momentum == momentum  # as the spec says
    gamma, beta = _affine(bn, gen, shape[0])
    running_mean, running_var = torch.zeros(shape[0], dtype=torch.float64), torch.ones(shape[0], dtype=torch.float64)
    bn.train()
    for _ in range(steps):
        x = _inputs(gen, batch, shape, 3.0, 1.0)
        bn(x)
        mean, _, dims = _batch_stats(x)
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * x.var(dims, correction=1)
    torch.testing.assert_close(bn.running_mean, running_mean, **EXACT)
    torch.testing.assert_close(bn.running_var, running_var, **EXACT)
    x = _inputs(gen, batch, shape, 3.0, 1.0)
    out = bn.eval()(x)
    expected = (x - _per_feature(running_mean, x)) / _per_feature((running_var + eps).sqrt(), x)
    torch.testing.assert_close(out, expected * _per_feature(gamma, x) + _per_feature(beta, x), **EXACT)
    torch.testing.assert_close(bn(x[:1]), out[:1], **EXACT)  # no batch statistics at test time


@given(shape=features_or_maps, batch=st.integers(2, 6), seed=seeds, scale=st.floats(1e-2, 20), shift=st.floats(-10, 10), eps=epsilons)
def test_batchnorm_with_gamma_sigma_and_beta_mu_is_the_identity(compile_spec, shape, batch, seed, scale, shift, eps):
    gen = generator(seed)
    bn, eps = _batchnorm(compile_spec, shape, eps)
    x = _inputs(gen, batch, shape, scale, shift)
    mean, var, _ = _batch_stats(x)
    with torch.no_grad():
        bn.weight.copy_((var + eps).sqrt())  # γ = σ_B
        bn.bias.copy_(mean)  # β = μ_B
    torch.testing.assert_close(bn.train()(x), x, **EXACT)
