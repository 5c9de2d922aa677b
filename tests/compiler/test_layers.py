"""Each layer's lowering against a hand-written torch equivalent, numerically.

Every model here is compiled from .trick text (`input SHAPE` and one line of layers).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trick
from trick.layers import keep_mask

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture
def layer(tmp_path):
    """layer("[1, 40]", "conv 8 k=3") -> the compiled model and its graph."""
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2), np.float32), y=np.zeros(4, np.int64))

    def compile_line(shape: str, line: str):
        text = f'spec t\ndata {{ source file "d.npz" }}\nmodel {{\n    input {shape}\n    {line}\n}}\ntrain {{ loss mse }}\n'
        spec = tmp_path / "t.trick"
        spec.write_text(text)
        program = trick.compile(spec)
        torch.manual_seed(0)
        return program.model(), program.graph

    return compile_line


def only(model):
    (module,) = [m for name, m in model.named_children()]
    return module


def test_dense(layer):
    model, graph = layer("[6]", "dense 4")
    ref = nn.Linear(6, 4)
    ref.load_state_dict(only(model).state_dict())
    x = torch.randn(5, 6)
    torch.testing.assert_close(model(x), ref(x), **TOL)
    assert graph.layers[0].output == (4,)


def test_dense_without_bias(layer):
    model, _ = layer("[6]", "dense 4 bias=false")
    assert only(model).bias is None


@pytest.mark.parametrize(
    "shape, line, ref, out",
    [
        ("[3, 20]", "conv 8 k=5 pad=2", lambda: nn.Conv1d(3, 8, 5, padding=2), (8, 20)),
        ("[3, 20]", "conv 8 k=3 stride=2", lambda: nn.Conv1d(3, 8, 3, stride=2), (8, 9)),
        ("[3, 20]", "conv 8 k=4 pad=same", lambda: nn.Conv1d(3, 8, 4, padding="same"), (8, 20)),
        ("[3, 9, 7]", "conv 5 k=3 pad=1", lambda: nn.Conv2d(3, 5, 3, padding=1), (5, 9, 7)),
        ("[3, 9, 7]", "conv 5 k=3 stride=2", lambda: nn.Conv2d(3, 5, 3, stride=2), (5, 4, 3)),
    ],
)
def test_conv(layer, shape, line, ref, out):
    model, graph = layer(shape, line)
    reference = ref()
    reference.load_state_dict(only(model).state_dict())
    x = torch.randn(2, *graph.input)
    torch.testing.assert_close(model(x), reference(x), **TOL)
    assert graph.layers[0].output == out == model(x).shape[1:]


@pytest.mark.parametrize(
    "shape, line, ref",
    [
        ("[2, 10]", "maxpool 2", lambda x: F.max_pool1d(x, 2)),
        ("[2, 11]", "maxpool 3 stride=2", lambda x: F.max_pool1d(x, 3, 2)),
        ("[2, 10]", "avgpool 5", lambda x: F.avg_pool1d(x, 5)),
        ("[2, 6, 8]", "maxpool 2", lambda x: F.max_pool2d(x, 2)),
        ("[2, 6, 8]", "avgpool global", lambda x: x.mean(dim=(2, 3))),
        ("[2, 10]", "maxpool global", lambda x: x.amax(dim=2)),
        ("[2, 6, 8]", "flatten", lambda x: x.reshape(len(x), -1)),
        ("[5, 7]", "last", lambda x: x[:, :, -1]),
        ("[6]", "relu", torch.relu),
        ("[6]", "tanh", torch.tanh),
        ("[6]", "sigmoid", torch.sigmoid),
        ("[6]", "gelu", F.gelu),
        ("[6]", "silu", F.silu),
        ("[6]", "elu alpha=0.5", lambda x: F.elu(x, 0.5)),
        ("[6]", "leaky_relu slope=0.2", lambda x: F.leaky_relu(x, 0.2)),
    ],
)
def test_parameter_free_layers(layer, shape, line, ref):
    model, graph = layer(shape, line)
    x = torch.randn(3, *graph.input)
    torch.testing.assert_close(model(x), ref(x), **TOL)
    assert model(x).shape[1:] == graph.layers[0].output


@pytest.mark.parametrize(
    "shape, line, ref",
    [
        ("[6]", "batchnorm", lambda: nn.BatchNorm1d(6)),
        ("[4, 9]", "batchnorm momentum=0.3 eps=1e-3", lambda: nn.BatchNorm1d(4, eps=1e-3, momentum=0.3)),
        ("[4, 5, 5]", "batchnorm", lambda: nn.BatchNorm2d(4)),
    ],
)
def test_batchnorm_in_training_and_eval(layer, shape, line, ref):
    model, graph = layer(shape, line)
    reference = ref()
    reference.load_state_dict(only(model).state_dict())
    for _ in range(3):
        x = torch.randn(8, *graph.input) * 3 + 1
        torch.testing.assert_close(model.train()(x), reference.train()(x), **TOL)
    torch.testing.assert_close(model.eval()(x), reference.eval()(x), **TOL)


@pytest.mark.parametrize(
    "shape, line, ref",
    [
        ("[4, 9]", "layernorm", lambda x: F.layer_norm(x, (4, 9))),
        ("[6]", "layernorm", lambda x: F.layer_norm(x, (6,))),
        ("[4, 9]", "instancenorm", lambda x: F.instance_norm(x)),
        ("[4, 5, 5]", "instancenorm", lambda x: F.instance_norm(x)),
        ("[4, 9]", "groupnorm 2", lambda x: F.group_norm(x, 2)),
        ("[6, 5, 5]", "groupnorm 3 eps=1e-3", lambda x: F.group_norm(x, 3, eps=1e-3)),
    ],
)
def test_per_sample_norms_are_the_same_in_training_and_eval(layer, shape, line, ref):
    model, graph = layer(shape, line)
    x = torch.randn(3, *graph.input) * 2 + 1
    torch.testing.assert_close(model.train()(x), ref(x), **TOL)
    torch.testing.assert_close(model.eval()(x), ref(x), **TOL)


def test_dropout_inverted_matches_torch(layer):
    model, _ = layer("[100]", "dropout 0.3")
    x = torch.randn(4, 100)
    torch.manual_seed(5)
    out = model.train()(x)
    torch.manual_seed(5)
    torch.testing.assert_close(out, F.dropout(x, 0.3, training=True))
    torch.testing.assert_close(model.eval()(x), x)


def test_dropout_scale_at_test_is_the_weight_scaling_rule(layer):
    model, _ = layer("[1000]", "dropout 0.25 mode=scale_at_test")
    x = torch.rand(2, 1000) + 1
    out = model.train()(x)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept])  # no scaling in training
    torch.testing.assert_close(model.eval()(x), 0.75 * x)  # multiply by 1-p at test


def test_noise_only_in_training(layer):
    model, _ = layer("[2000]", "noise 0.5")
    x = torch.zeros(4, 2000)
    assert abs(model.train()(x).std().item() - 0.5) < 0.02
    torch.testing.assert_close(model.eval()(x), x)


def test_dropconnect_masks_weights_and_keeps_the_expectation(layer):
    model, _ = layer("[3]", "dense 2 dropconnect=0.5")
    module = only(model)
    x = torch.randn(1, 3)
    outs = torch.stack([model.train()(x) for _ in range(4000)])
    torch.testing.assert_close(outs.mean(0), model.eval()(x), atol=0.05, rtol=0.05)
    # One draw uses a masked weight: each output is a sum over a subset of the inputs, scaled by 2.
    torch.manual_seed(3)
    one = model.train()(x)
    torch.manual_seed(3)
    (mask,) = keep_mask((1, *module.weight.shape), 0.5, module.weight)  # the batch's one example's mask
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(one, F.linear(x, module.weight * mask / 0.5, module.bias))


def test_keep_mask_keeps_each_entry_with_the_keep_probability():
    """keep_mask(shape, q): 0/1 entries, P(1) = round(q·2^31)/2^31 (within 2^-32 of q); over
    10^6 draws the kept fraction is within 5 standard deviations of q, for several q."""
    torch.manual_seed(0)
    n = 10**6
    for q in (0.05, 0.3, 0.5, 0.7, 0.95):
        mask = keep_mask((n,), q, torch.empty(0, dtype=torch.float64))
        assert mask.dtype == torch.float64 and set(mask.unique().tolist()) <= {0.0, 1.0}
        assert abs(float(mask.mean()) - q) < 5 * (q * (1 - q) / n) ** 0.5
    # a keep probability that rounds to 1 (p below 2^-32) keeps everything, with no int32 overflow
    assert bool(keep_mask((1000,), 1 - 2**-40, torch.empty(0)).eq(1).all())


def test_per_example_dropconnect_gradients_are_those_of_the_formula():
    """The per-example product's own backward (it keeps only the masks) gives autograd's
    gradients of y_b = ((M_b ⊙ W) x_b)/(1-p), first and second derivatives (gradcheck and
    gradgradcheck in float64), and runs under bf16 autocast (the gradients in the inputs' dtypes)."""
    from trick.layers import _ExampleDropConnect

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    masks = (torch.rand(3, 5, 4, generator=g) < 0.7).double()
    out = _ExampleDropConnect.apply(x, w, masks, 1 / 0.7)
    upstream = torch.randn(3, 5, dtype=torch.float64, generator=g)
    dx, dw = torch.autograd.grad(out, (x, w), upstream)
    reference = torch.einsum("boi,bi->bo", w * masks / 0.7, x)
    torch.testing.assert_close(out, reference)
    rdx, rdw = torch.autograd.grad(reference, (x, w), upstream)
    torch.testing.assert_close(dx, rdx)
    torch.testing.assert_close(dw, rdw)

    def fn(x, w):
        return _ExampleDropConnect.apply(x, w, masks, 1 / 0.7)

    assert torch.autograd.gradcheck(fn, (x, w)) and torch.autograd.gradgradcheck(fn, (x, w))
    layer = trick.layers.DropConnectLinear(4, 5, p=0.3).train()
    xf = torch.randn(3, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(xf)
    y.float().sum().backward()
    assert xf.grad.dtype == torch.float32 and layer.weight.grad.dtype == torch.float32


def test_dropconnect_conv(layer):
    model, _ = layer("[2, 8]", "conv 3 k=3 dropconnect=0.2")
    module = only(model)
    x = torch.randn(2, 2, 8)
    torch.testing.assert_close(model.eval()(x), F.conv1d(x, module.weight, module.bias), **TOL)
    torch.manual_seed(3)
    one = model.train()(x)
    torch.manual_seed(3)
    mask = keep_mask(module.weight.shape, 0.8, module.weight)  # one mask for the batch
    torch.testing.assert_close(one, F.conv1d(x, module.weight * mask / 0.8, module.bias), **TOL)


@pytest.mark.parametrize("kind, cls", [("gru", nn.GRU), ("lstm", nn.LSTM)])
@pytest.mark.parametrize("options", ["", "layers=2", "bidirectional=true"])
def test_recurrent_layers_match_torch(layer, kind, cls, options):
    model, graph = layer("[3, 7]", f"{kind} 5 {options}")
    kwargs = {"num_layers": 2} if "layers" in options else {}
    reference = cls(3, 5, batch_first=True, bidirectional="bidirectional" in options, **kwargs)
    reference.load_state_dict(only(model).state_dict())
    x = torch.randn(4, 3, 7)
    expected, _ = reference(x.transpose(1, 2))
    torch.testing.assert_close(model(x), expected.transpose(1, 2), **TOL)
    assert model(x).shape[1:] == graph.layers[0].output


def test_layer_normalized_gru_follows_its_formula(layer):
    model, graph = layer("[3, 4]", "gru 5 norm=layer")
    cell = only(model).cells[0]
    x = torch.randn(2, 3, 4)
    h = torch.zeros(2, 5)
    ln = lambda v, norm: F.layer_norm(v, v.shape[-1:], norm.weight, norm.bias)  # noqa: E731
    for t in range(4):  # layer norm on the summed inputs: (r, z) together, the candidate n on its own
        gi, gh = x[:, :, t] @ cell.weight_ih.T, h @ cell.weight_hh.T
        rz = torch.sigmoid(ln(gi[:, :10] + gh[:, :10], cell.norm_rz))
        r, z = rz[:, :5], rz[:, 5:]
        n = torch.tanh(ln(gi[:, 10:] + r * gh[:, 10:], cell.norm_n))
        h = (1 - z) * n + z * h
    torch.testing.assert_close(model(x)[:, :, -1], h, **TOL)
    assert sum(p.numel() for p in model.parameters()) == graph.params


def test_layer_normalized_lstm_follows_its_formula(layer):
    model, graph = layer("[3, 4]", "lstm 5 norm=layer bidirectional=true")
    forward, backward = only(model).cells
    x = torch.randn(2, 3, 4)

    def run(cell, steps):
        h, c = torch.zeros(2, 5), torch.zeros(2, 5)
        out = {}
        for t in steps:
            g = F.layer_norm(x[:, :, t] @ cell.weight_ih.T + h @ cell.weight_hh.T, (20,), cell.norm_gates.weight, cell.norm_gates.bias)
            i, f, gg, o = g.split(5, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(F.layer_norm(c, (5,), cell.norm_c.weight, cell.norm_c.bias))
            out[t] = h
        return out

    fwd, bwd = run(forward, range(4)), run(backward, range(3, -1, -1))
    out = model(x)
    for t in range(4):
        torch.testing.assert_close(out[:, :, t], torch.cat([fwd[t], bwd[t]], dim=1), **TOL)
    assert sum(p.numel() for p in model.parameters()) == graph.params


def test_residual_adds_its_input(layer):
    model, graph = layer("[4, 6]", "residual { conv 4 k=3 pad=1 -> relu }")
    block = only(model)
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(model(x), x + torch.relu(block[0](x)), **TOL)
    assert list(model.state_dict()) == ["residual1.conv1.weight", "residual1.conv1.bias"]


def test_repeat_unrolls_with_separate_weights(layer):
    model, graph = layer("[6]", "repeat 3 { dense 6 -> relu }")
    assert [l.name for l in graph.layers] == ["dense1", "relu1", "dense2", "relu2", "dense3", "relu3"]
    assert not torch.equal(model.dense1.weight, model.dense2.weight)
