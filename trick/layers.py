"""The layers PyTorch lacks, each checked in tests against the lecture's formula.

- DropConnect (Wan et al. 2013) for dense and conv: each weight is dropped with probability
  p in training and the kept ones scaled by 1/(1-p), so the expected weight is W; dense
  draws one mask per example (as the paper and Chainer's simplified_dropconnect), conv one
  per batch.
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


def keep_mask(shape: tuple[int, ...], keep: float, like: torch.Tensor) -> torch.Tensor:
    """M ~ Bernoulli(keep) per entry, as 0/1 in `like`'s dtype and device.

    Uniform 31-bit integers U (torch's `random` on int32 draws from [0, 2^31)) are kept where
    U < t = min(round(keep·2^31), 2^31 - 1), so P(M = 1) = t/2^31: within 2^-32 of keep (2^-31
    for a keep that rounds to 1, p below 2^-32). One 32-bit draw per entry: on the CPU 4x
    faster than `bernoulli_` (in which DropConnect's per-example masks, B·out·in entries a
    step, spent most of a step) and 2x faster than `rand() < keep`. The test U < t is written
    as clamp(t - U, 0, 1), with no bool tensor (Inductor's CPU kernels write bool tensors
    slowly: 4 ms for this mask), and under `train { compile }` the draw is out of place
    (TorchDynamo stops at an in-place `random_`; eagerly, `random_` saves a copy)."""
    bits = torch.empty(shape, dtype=torch.int32, device=like.device)
    bits = torch.ops.aten.random.default(bits) if torch.compiler.is_compiling() else bits.random_()
    return (min(round(keep * 2**31), 2**31 - 1) - bits).clamp_(0, 1).to(like.dtype)


def _drop_weights(weight: torch.Tensor, p: float) -> torch.Tensor:
    """W ⊙ M / (1-p), M ~ Bernoulli(1-p) per weight: E[result] = W."""
    return weight * keep_mask(weight.shape, 1.0 - p, weight) / (1.0 - p)


class _ExampleDropConnect(torch.autograd.Function):
    """y_b = ((M_b ⊙ W) x_b)·scale for x (B, in) and masks M (B, out, in), without a bias.

    Only the 0/1 masks are kept for the backward pass (autograd would keep the masked
    weights too, a second B·out·in tensor), and ∂L/∂W = scale·Σ_b M_b ⊙ (g_b x_bᵀ) is one
    product, masking and sum over the batch. The backward is made of differentiable ops on
    the saved inputs, so higher derivatives are right as well."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, masks: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x, weight, masks)
        ctx.scale = scale
        return torch.bmm(weight * masks, x.unsqueeze(2)).squeeze(2).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, masks = ctx.saved_tensors
        g = grad.to(weight.dtype) * ctx.scale  # (B, out); under autocast the output (and grad) may be bf16
        dx = torch.bmm(g.unsqueeze(1), weight * masks).squeeze(1).to(x.dtype) if ctx.needs_input_grad[0] else None
        dw = (g.unsqueeze(2) * x.unsqueeze(1) * masks).sum(0) if ctx.needs_input_grad[1] else None
        return dx, dw, None, None


class DropConnectLinear(nn.Linear):
    """nn.Linear whose weights (not inputs) are dropped in training; same state_dict.

    `mask="example"` (the default): each example b of the batch gets its own mask M_b, so
    y_b = ((M_b ⊙ W) x_b)/(1-p) + b, with M_b ~ Bernoulli(1-p) per weight — Wan et al.'s
    r = a((M ⋆ W) v) with one M per example, computed as one batched product over the
    (B, out, in) masked weights (memory B·out·in). `mask="batch"`: one mask for the whole
    batch, a single matrix product (cheaper; the examples' noise is then correlated). The
    bias is not masked (as in Chainer's simplified_dropconnect), and the kept weights are
    scaled by 1/(1-p), so the expected output is the layer's own Wx + b in both modes."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.5, mask: str = "example"):
        super().__init__(in_features, out_features, bias)
        if mask not in ("example", "batch"):
            raise ValueError(f"DropConnect mask must be 'example' or 'batch', not {mask!r}")
        self.p = p
        self.mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return F.linear(x, self.weight, self.bias)
        if self.mask == "batch":
            return F.linear(x, _drop_weights(self.weight, self.p), self.bias)
        # one (out, in) mask per example: x (B, ..., in) against (B, out, in) weights
        masks = keep_mask((x.shape[0], *self.weight.shape), 1.0 - self.p, self.weight)
        if x.dim() == 2:
            out = _ExampleDropConnect.apply(x, self.weight, masks, 1.0 / (1.0 - self.p))
        else:
            out = torch.einsum("boi,b...i->b...o", self.weight * masks.div_(1.0 - self.p), x)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}" + (", mask=batch" if self.mask == "batch" else "")


class _DropConnectConv:
    """DropConnect on a convolution's kernel weights (mixed into nn.Conv1d / nn.Conv2d), one
    mask per batch: a mask per example would be B convolutions with different kernels (a
    grouped convolution over B·out channels, B times the kernel's memory and no shared
    im2col), far more costly than the one convolution of a batch mask."""

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
    """The weights of a layer-normalized recurrent cell: W_x (input) and W_h (hidden), without
    biases (the layer norms' β are the biases), initialized uniformly in ±1/√hidden as torch's
    own cells are. The subclasses add the layer norms, each over the summed inputs of a group
    of gates (Ba et al. 2016, section 3.1: LN(W_x x_t + W_h h_{t-1})): the input's projection is
    never normalized on its own, which with one input feature would leave only its sign
    (LN(W_x x_t) = sign(x_t)·LN(W_x))."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(self.gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(self.gates * hidden_size, hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)


class LayerNormGRUCell(_LayerNormCell):
    """GRU cell with layer norm on the summed inputs of each gate group (Ba et al. 2016), the
    reset and update gates together and the candidate on its own:
    r, z = σ(LN_rz(W_x,rz x + W_h,rz h)); n = tanh(LN_n(W_x,n x + r ⊙ W_h,n h));
    h' = (1 - z) ⊙ n + z ⊙ h. W_x and W_h stack the rows of r, z, n in that order (as nn.GRU);
    LN_rz (over 2·hidden values) and LN_n (over hidden) have a gain and a bias each."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.norm_rz = nn.LayerNorm(2 * hidden_size)
        self.norm_n = nn.LayerNorm(hidden_size)

    def forward(self, x_proj: torch.Tensor, h: torch.Tensor, state=None):
        """One step: `x_proj` = W_x x_t (all steps are projected at once), `h` = h_{t-1}."""
        split = 2 * self.hidden_size
        gh = F.linear(h, self.weight_hh)
        r, z = torch.sigmoid(self.norm_rz(x_proj[..., :split] + gh[..., :split])).chunk(2, dim=-1)
        n = torch.tanh(self.norm_n(x_proj[..., split:] + r * gh[..., split:]))
        h = (1 - z) * n + z * h
        return h, None


class LayerNormLSTMCell(_LayerNormCell):
    """LSTM cell with layer norm on the summed inputs of its four gates (one group, as Ba et al.
    2016 normalize them) and on the cell state: i, f, g, o = LN_g(W_x x + W_h h);
    c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g); h' = σ(o) ⊙ tanh(LN_c(c')). W_x and W_h stack the rows
    of i, f, g, o in that order (as nn.LSTM); LN_g (over 4·hidden values) and LN_c (over
    hidden) have a gain and a bias each."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.norm_gates = nn.LayerNorm(4 * hidden_size)
        self.norm_c = nn.LayerNorm(hidden_size)

    def forward(self, x_proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """One step: `x_proj` = W_x x_t, `h`, `c` = h_{t-1}, c_{t-1}."""
        gates = self.norm_gates(x_proj + F.linear(h, self.weight_hh))
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
    """A (stacked, optionally bidirectional) GRU of layer-normalized cells on (B, C, L):
    `LayerNormGRUCell`, layer norm on the summed inputs of (r, z) and of the candidate n, never
    on the input's projection alone (which would see only the sign of a single feature)."""

    cell_type = LayerNormGRUCell


class LayerNormLSTM(_LayerNormRNN):
    """A (stacked, optionally bidirectional) LSTM of layer-normalized cells on (B, C, L):
    `LayerNormLSTMCell`, layer norm on the summed inputs of the four gates and on the cell."""

    cell_type = LayerNormLSTMCell
