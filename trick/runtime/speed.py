"""`train { compile ... }`, `precision` and `channels_last`: the training step closer to the machine.

- compile: with the plain objective, the step's forward, each head's loss and the penalty
  terms are one compiled function (Trainer._forward_loss); with another objective (FGSM,
  FitNets, ...) the model's forward is compiled and the objective calls it. Through
  AOTAutograd the backward is compiled with it, and the optimizer is torch's fused one (a
  single kernel over every parameter). (A compiled `optimizer.step` with 0-d tensor learning rates, PyTorch's
  "compiled optimizer" recipe, turns Adam's weights with a zero gradient history into NaN once
  a schedule reaches lr 0 on this torch; the fused optimizer has no such problem and needs no
  recompilation when the rate changes.) TorchInductor's caches (FX graphs, AOTAutograd, kernels) live in
  TORCHINDUCTOR_CACHE_DIR, by default ~/.cache/trick/inductor: the warm-up is paid once per
  spec and machine. Evaluation stays eager.
- precision bf16 / fp16: the forward pass and the loss under `torch.autocast`; with fp16 a
  `GradScaler` scales the loss, unscales the gradients before clipping and skips steps with
  infinite gradients.
- channels_last: the model's 4-D weights and each 4-D input batch in NHWC memory order.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

from ..compiler import ir
from ..dsl.diagnostics import Diagnostic, TrickRuntimeError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cache_dir() -> Path:
    """Where TorchInductor keeps what it compiled (set before the first compilation)."""
    found = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not found:
        found = str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "trick" / "inductor")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = found
    return Path(found)


class Speed:
    """What a plan asks of the training step beyond eager fp32; None when it asks nothing."""

    def __init__(self, plan: ir.TrainingPlan, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device):
        self.plan, self.device, self.optimizer = plan, device, optimizer
        self.dtype = DTYPES.get(plan.precision)
        if self.dtype is torch.bfloat16 and device.type == "cpu" and not _cpu_bf16():
            raise TrickRuntimeError(Diagnostic(plan.speed_span, "precision bf16 needs a CPU with bf16 support (AVX-512 BF16 or AMX), which this one lacks; use fp32"))
        self.scaler = torch.amp.GradScaler(device.type) if plan.precision == "fp16" else None
        self.channels_last = plan.channels_last
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if plan.compile is not None:  # the optimizer is torch's fused one (optim.optimizer(fused=True))
            cache_dir()

    @staticmethod
    def needed(plan: ir.TrainingPlan) -> bool:
        return plan.compile is not None or plan.precision != "fp32" or plan.channels_last

    def compile(self, fn):
        """`fn` compiled as `compile mode=...` asks; on the CPU with Inductor's `fallback_random`:
        random draws (dropout masks, noise) run torch's own kernels, from the same generator
        as an eager run, rather than Inductor's Philox code, which on the CPU is a scalar
        loop (290 µs for E1's 8,192 dropout draws a step, against 95 µs). On CUDA, Inductor's
        own (Triton) draws are the fast ones."""
        options = torch._inductor.list_mode_options(self.plan.compile.replace("_", "-"))
        return torch.compile(fn, options={**options, "fallback_random": self.device.type == "cpu"})

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self) -> None:
        """Before clipping: the gradients in their own scale."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when a gradient is infinite
            self.scaler.update()
        else:
            self.optimizer.step()  # looked up now: the schedule wraps it after this object is made


def _cpu_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


