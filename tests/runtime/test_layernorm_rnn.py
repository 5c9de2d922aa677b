"""The layer-normalized GRU and LSTM cells against their formulas (issue 15).

Layer norm acts on the summed inputs of a gate group (Ba et al. 2016, LN(W_x x_t + W_h h_{t-1})):
the GRU's reset and update gates together, its candidate on its own; the LSTM's four gates
together, and its cell state. The input's projection is never normalized alone, so a sequence
of one feature keeps its magnitude (LN(W_x x_t) alone would be sign(x_t)·LN(W_x)).
"""

from __future__ import annotations

import torch
from torch import nn

import trick
from trick import layers

TOL = {"rtol": 1e-5, "atol": 1e-6}


def layer_norm(a: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """(a − μ)/√(σ² + ε)·g + b over the last dimension, σ² the biased variance."""
    mu = a.mean(-1, keepdim=True)
    var = ((a - mu) ** 2).mean(-1, keepdim=True)
    return (a - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def randomize(module: nn.Module, seed: int) -> None:
    """Gains and biases away from 1 and 0, so that a formula that skips one is caught."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.dim() == 1 else 0.0))


def spec(shape: str, line: str) -> str:
    return f"spec rnn\ndata {{ source mnist1d }}\nmodel {{\n    input {shape}\n    {line}\n    last\n    dense 10\n}}\n"


def test_one_gru_step_by_hand():
    cell = layers.LayerNormGRUCell(3, 4)
    randomize(cell, 0)
    g = torch.Generator().manual_seed(1)
    x, h = torch.randn(2, 3, generator=g), torch.randn(2, 4, generator=g)
    W_x, W_h = cell.weight_ih, cell.weight_hh  # rows: r, z, n
    a_r = x @ W_x[:4].T + h @ W_h[:4].T
    a_z = x @ W_x[4:8].T + h @ W_h[4:8].T
    rz = torch.sigmoid(layer_norm(torch.cat([a_r, a_z], dim=1), cell.norm_rz))
    r, z = rz[:, :4], rz[:, 4:]
    n = torch.tanh(layer_norm(x @ W_x[8:].T + r * (h @ W_h[8:].T), cell.norm_n))
    expected = (1 - z) * n + z * h
    out, state = cell(x @ W_x.T, h, None)
    torch.testing.assert_close(out, expected, **TOL)
    assert state is None
    assert [name for name, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "norm_rz.weight", "norm_rz.bias", "norm_n.weight", "norm_n.bias"]
    assert cell.norm_rz.normalized_shape == (8,) and cell.norm_n.normalized_shape == (4,)


def test_one_lstm_step_by_hand():
    cell = layers.LayerNormLSTMCell(3, 4)
    randomize(cell, 2)
    g = torch.Generator().manual_seed(3)
    x, h, c = torch.randn(2, 3, generator=g), torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    gates = layer_norm(x @ cell.weight_ih.T + h @ cell.weight_hh.T, cell.norm_gates)
    i, f, gg, o = gates[:, :4], gates[:, 4:8], gates[:, 8:12], gates[:, 12:]
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    h_next = torch.sigmoid(o) * torch.tanh(layer_norm(c_next, cell.norm_c))
    out_h, out_c = cell(x @ cell.weight_ih.T, h, c)
    torch.testing.assert_close(out_h, h_next, **TOL)
    torch.testing.assert_close(out_c, c_next, **TOL)
    assert cell.norm_gates.normalized_shape == (16,) and cell.norm_c.normalized_shape == (4,)


def test_the_layer_runs_its_cell_over_the_sequence_from_a_zero_state():
    rnn = layers.LayerNormGRU(2, 3)
    randomize(rnn, 4)
    cell = rnn.cells[0]
    x = torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(5))
    h, outs = torch.zeros(2, 3), []
    for t in range(5):
        h, _ = cell(x[:, :, t] @ cell.weight_ih.T, h)
        outs.append(h)
    torch.testing.assert_close(rnn(x), torch.stack(outs, dim=2), **TOL)


def test_one_input_feature_keeps_its_magnitude():
    """With LN(W_x x_t) on its own, scaling a one-feature series by 2 would change nothing."""
    for kind in ("gru", "lstm"):
        model = trick.compile(spec("[1, 40]", f"{kind} 16 norm=layer")).model(seed=0).eval()
        x = torch.randn(4, 1, 40, generator=torch.Generator().manual_seed(6))
        with torch.no_grad():
            assert float((model(x) - model(2 * x)).abs().max()) > 1e-3, kind


def test_the_parameter_count_is_the_built_modules():
    for line in ("gru 7 norm=layer", "gru 7 norm=layer layers=2 bidirectional=true", "lstm 7 norm=layer", "lstm 7 norm=layer layers=2 bidirectional=true"):
        program = trick.compile(spec("[4, 10]", line))
        rnn = program.graph.layers[0]
        built = program.model()
        assert sum(p.numel() for p in next(iter(built.children())).parameters()) == rnn.params, line
    # a layer-normalized GRU has as many parameters as torch's (the norms' 6·hidden replace the two biases)
    assert trick.compile(spec("[4, 10]", "gru 7 norm=layer")).graph.layers[0].params == sum(p.numel() for p in nn.GRU(4, 7).parameters())
