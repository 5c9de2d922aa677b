"""The layers PyTorch lacks, each checked in tests against the lecture's formula.

- DropConnect (Wan et al. 2013) for dense and conv: each weight is dropped with probability
  p in training and the kept ones scaled by 1/(1-p), so the expected weight is W.
- Dropout with the weight scaling inference rule: no scaling in training, the output
  multiplied by the keep probability 1-p at test.
- Gaussian noise on hidden units, in training only.
- `last`: the final time step of a sequence.
- GRU and LSTM over sequences laid out (B, C, L) like conv inputs, plain or with
  layer-normalized cells (Ba et al. 2016).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _drop_weights(weight: torch.Tensor, p: float) -> torch.Tensor:
    """W ⊙ M / (1-p), M ~ Bernoulli(1-p) per weight: E[result] = W."""
    mask = torch.empty_like(weight).bernoulli_(1.0 - p)
    return weight * mask / (1.0 - p)


class DropConnectLinear(nn.Linear):
    """nn.Linear whose weights (not inputs) are dropped in training; same state_dict."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.5):
        super().__init__(in_features, out_features, bias)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = _drop_weights(self.weight, self.p) if self.training and self.p > 0 else self.weight
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"


class _DropConnectConv:
    """DropConnect on a convolution's kernel weights (mixed into nn.Conv1d / nn.Conv2d)."""

    def __init__(self, *args, p: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = _drop_weights(self.weight, self.p) if self.training and self.p > 0 else self.weight
        return self._conv_forward(x, weight, self.bias)


class DropConnectConv1d(_DropConnectConv, nn.Conv1d):
    """nn.Conv1d with DropConnect on the kernel weights; same state_dict."""


class DropConnectConv2d(_DropConnectConv, nn.Conv2d):
    """nn.Conv2d with DropConnect on the kernel weights; same state_dict."""


class ScaledDropout(nn.Module):
    """Dropout with the weight scaling inference rule: train x ⊙ m, test (1-p)·x."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return x * torch.empty_like(x).bernoulli_(1.0 - self.p)
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GaussianNoise(nn.Module):
    """x + ε, ε ~ N(0, std²), in training only."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x) if self.training else x

    def extra_repr(self) -> str:
        return f"std={self.std}"


class Last(nn.Module):
    """(B, C, L) -> (B, C): the last time step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., -1]


class SequenceGRU(nn.GRU):
    """nn.GRU on (B, C, L) sequences, returning (B, H·directions, L)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        out, _ = super().forward(x.transpose(1, 2))  # (B, L, H·d)
        return out.transpose(1, 2)


class SequenceLSTM(nn.LSTM):
    """nn.LSTM on (B, C, L) sequences, returning (B, H·directions, L)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = super().forward(x.transpose(1, 2))
        return out.transpose(1, 2)


class _LayerNormCell(nn.Module):
    """The weights of a layer-normalized recurrent cell: W_i, W_h and a layer norm on each
    projection, initialized uniformly in ±1/√hidden as torch's own cells are."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(self.gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(self.gates * hidden_size, hidden_size))
        self.norm_ih = nn.LayerNorm(self.gates * hidden_size)
        self.norm_hh = nn.LayerNorm(self.gates * hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)


class LayerNormGRUCell(_LayerNormCell):
    """GRU cell with layer norm on the input and hidden projections (Ba et al. 2016):
    r, z = σ(LN(W_i x)_{r,z} + LN(W_h h)_{r,z}); n = tanh(LN(W_i x)_n + r ⊙ LN(W_h h)_n);
    h' = (1 - z) ⊙ n + z ⊙ h. The layer norms' β are the biases."""

    gates = 3

    def forward(self, x_proj: torch.Tensor, h: torch.Tensor, state=None):
        gi = self.norm_ih(x_proj)
        gh = self.norm_hh(F.linear(h, self.weight_hh))
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, None


class LayerNormLSTMCell(_LayerNormCell):
    """LSTM cell with layer norm on the projections and on the cell state (Ba et al. 2016):
    i, f, g, o from LN(W_i x) + LN(W_h h); c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g); h' = σ(o) ⊙ tanh(LN(c'))."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.norm_c = nn.LayerNorm(hidden_size)

    def forward(self, x_proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        gates = self.norm_ih(x_proj) + self.norm_hh(F.linear(h, self.weight_hh))
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.norm_c(c))
        return h, c


class _LayerNormRNN(nn.Module):
    cell_type: type = LayerNormGRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.directions = 2 if bidirectional else 1
        cells = []
        for layer in range(num_layers):
            size = input_size if layer == 0 else hidden_size * self.directions
            cells += [self.cell_type(size, hidden_size) for _ in range(self.directions)]
        self.cells = nn.ModuleList(cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L) -> (B, H·d, L)
        seq = x.transpose(1, 2)  # (B, L, C)
        batch, length = seq.shape[0], seq.shape[1]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.directions):
                cell = self.cells[layer * self.directions + direction]
                x_proj = F.linear(seq, cell.weight_ih)  # all time steps at once: (B, L, G·H)
                h = seq.new_zeros(batch, self.hidden_size)
                c = seq.new_zeros(batch, self.hidden_size)
                steps = range(length - 1, -1, -1) if direction else range(length)
                out = [None] * length
                for t in steps:
                    h, c = cell(x_proj[:, t], h, c)
                    out[t] = h
                outputs.append(torch.stack(out, dim=1))
            seq = torch.cat(outputs, dim=-1)
        return seq.transpose(1, 2)


class LayerNormGRU(_LayerNormRNN):
    """A (stacked, optionally bidirectional) GRU of layer-normalized cells on (B, C, L)."""

    cell_type = LayerNormGRUCell


class LayerNormLSTM(_LayerNormRNN):
    """A (stacked, optionally bidirectional) LSTM of layer-normalized cells on (B, C, L)."""

    cell_type = LayerNormLSTMCell
