"""Hand-written PyTorch for the benchmark specs: the models, and one training epoch plus the
validation pass, written the way one would without trick (nn.Sequential, a loop over index
batches of in-memory tensors, `loss.item()` for the metrics).

Each does the same work per epoch as the trainer does for its spec: the same augmentation
(per-sample shift as one gather, Gaussian input noise), the same layers (DropConnect,
weight-scaling dropout, hidden-unit noise), penalties, weight noise, label smoothing and
learning-rate schedule, and a validation pass in batches of 1024 after each epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ---- layers trick has and torch lacks, written inline --------------------------------------------------


class DropConnect(nn.Linear):
    def __init__(self, i, o, p):
        super().__init__(i, o)
        self.p = p

    def forward(self, x):  # one mask per example (Wan et al. 2013), as trick's default
        if self.training:
            masks = torch.empty((x.shape[0], *self.weight.shape)).bernoulli_(1 - self.p) / (1 - self.p)
            return torch.bmm(self.weight * masks, x.unsqueeze(2)).squeeze(2) + self.bias
        return F.linear(x, self.weight, self.bias)


class ScaledDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x * torch.empty_like(x).bernoulli_(1 - self.p) if self.training else x * (1 - self.p)


class Noise(nn.Module):
    def __init__(self, std):
        super().__init__()
        self.std = std

    def forward(self, x):
        return x + self.std * torch.randn_like(x) if self.training else x


def model(name: str) -> nn.Module:
    if name == "mnist1d_cnn":
        return nn.Sequential(
            nn.Conv1d(1, 32, 5, padding=2), nn.GroupNorm(8, 32), nn.ReLU(),
            nn.Conv1d(32, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.MaxPool1d(2), nn.Flatten(),
            nn.Linear(1280, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10),
        )
    if name == "digits_mlp":
        return nn.Sequential(
            DropConnect(64, 256, 0.3), nn.BatchNorm1d(256, momentum=0.1), nn.ReLU(),
            nn.Linear(256, 256), nn.LayerNorm(256), nn.ReLU(), ScaledDropout(0.5),
            Noise(0.1),
            nn.Linear(256, 10),
        )
    if name == "spiral_l1":
        return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    raise KeyError(name)


def copy_weights(hand: nn.Module, compiled: nn.Module) -> None:
    """The compiled model's initial weights into the hand-written one (same order of tensors)."""
    src, dst = list(compiled.state_dict().values()), hand.state_dict()
    assert len(src) == len(dst), (len(src), len(dst))
    hand.load_state_dict({k: v.clone() for k, v in zip(dst, src)})


# ---- the recipes ----------------------------------------------------------------------------------------


def smoothed_ce(logits, labels, eps):
    k = logits.shape[1]
    t = torch.full_like(logits, eps / (k - 1)).scatter_(1, labels[:, None], 1 - eps)
    return -(t * F.log_softmax(logits, 1)).sum(1).mean()


class Recipe:
    """One spec's training, hand-written. `epoch()` trains one epoch and evaluates val."""

    def __init__(self, name: str, net: nn.Module, x, y, xv, yv, seed: int, epochs: int, normalize=None):
        # With `normalize`, x holds the raw training inputs: each batch is augmented on the
        # data's own scale and then normalized, as trick's trainer does when a spec augments.
        self.name, self.net, self.x, self.y, self.xv, self.yv = name, net, x, y, xv, yv
        self.normalize = normalize if normalize is not None else (lambda v: v)
        self.g = torch.Generator().manual_seed(seed)
        self.weights = [p for p in net.parameters() if p.dim() >= 2]
        if name == "mnist1d_cnn":
            self.batch = 64
            self.opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
            steps = len(x) // 64 + (len(x) % 64 >= 2)
            warm = 2

            def factor(step):
                e = (step + 1) / steps
                if e < warm:
                    return e / warm
                return 0.5 * (1 + math.cos(math.pi * min((e - warm) / (epochs - warm), 1.0)))

            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)
            self.loss = lambda out, t: smoothed_ce(out, t, 0.1)
        elif name == "digits_mlp":
            self.batch = 32
            self.opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
            self.sched = None
            self.loss = F.cross_entropy
        else:
            self.batch = 32
            self.opt = torch.optim.SGD(net.parameters(), lr=0.03)
            self.sched = None
            self.loss = F.cross_entropy

    def augment(self, x):
        if self.name != "mnist1d_cnn":
            return x
        n, length = x.shape[0], x.shape[-1]
        s = torch.randint(-4, 5, (n,), generator=self.g)
        src = torch.arange(length) - s[:, None]
        inside = (src >= 0) & (src < length)
        x = torch.gather(x, -1, src.clamp(0, length - 1)[:, None].expand_as(x)) * inside[:, None]
        seed = int(torch.randint(0, 2**62, (1,), generator=self.g))
        return x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))

    def penalty(self):
        if self.name == "digits_mlp":
            return 0.5 * 1e-4 * sum((w * w).sum() for w in self.weights) + 1e-6 * sum(w.abs().sum() for w in self.weights)
        if self.name == "spiral_l1":
            return 1e-3 * sum(w.abs().sum() for w in self.weights)
        return None

    def step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        noisy = self.name == "digits_mlp"
        if noisy:  # weight noise for this step's forward and backward
            with torch.no_grad():
                saved = [w.clone() for w in self.weights]
                for w in self.weights:
                    w.add_(torch.randn_like(w) * 0.01)
        out = self.net(xb)
        loss = self.loss(out, yb)
        pen = self.penalty()
        (loss + pen if pen is not None else loss).backward()
        if noisy:
            with torch.no_grad():
                for w, s in zip(self.weights, saved):
                    w.copy_(s)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        return loss.item(), int((out.argmax(1) == yb).sum())

    def epoch(self):
        self.net.train()
        order = torch.randperm(len(self.x), generator=self.g)
        total = correct = seen = 0
        for idx in order.split(self.batch):
            if len(idx) < 2:
                continue
            xb = self.normalize(self.augment(self.x[idx]))
            loss, right = self.step(xb, self.y[idx])
            total += loss * len(idx)
            correct += right
            seen += len(idx)
        self.net.eval()
        vl = vc = 0.0
        with torch.no_grad():
            for i in range(0, len(self.xv), 1024):
                out = self.net(self.xv[i : i + 1024])
                t = self.yv[i : i + 1024]
                vl += self.loss(out, t).item() * len(t)
                vc += int((out.argmax(1) == t).sum())
        return total / seen, correct / seen, vl / len(self.xv), vc / len(self.xv)
