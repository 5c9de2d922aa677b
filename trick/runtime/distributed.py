"""Data-parallel training on torch.distributed: the process group, each process's share of a
global batch, synchronized batch normalization, and the sums that make metrics global.

A `World` is this process's place in a run: rank 0 of 1 for a plain run, where every method
is the identity (a single-process run is exactly what it was without this module), or rank r
of N under `torchrun --nproc-per-node N -m trick run SPEC` or `trickc run SPEC --nproc N`
(see `launch`). With N processes:

- every process holds the whole (in-memory) training set and draws the same permutation
  from the same seeded generator; process r trains on rows [r·b/N, (r+1)·b/N) of each global
  batch of b samples. Augmentation runs on the whole global batch in every process before it
  is cut, so each sample gets the parameters it gets in one process;
- the model is wrapped in DistributedDataParallel, which averages the gradients. The loss is
  a mean over the local batch and the local batches are equal, so the average is the
  gradient of the global batch's mean loss, as in one process;
- `batchnorm` becomes `SyncBatchNorm` (mean and variance of the global batch) unless the
  spec says `batchnorm sync=false`;
- torch's global generator (dropout, DropConnect, noise layers, weight noise) is seeded per
  process after initialization, so that different processes' samples get independent masks.
"""

from __future__ import annotations

import atexit
import faulthandler
import gc
import math
import os
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..compiler import ir
from ..dsl.diagnostics import TrickUsageError
from .launch import TIMEOUT_ENV, timeout_seconds


@dataclass
class World:
    """This process's rank among `size` processes, and the device it trains on."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    joined: bool = False  # whether `join` initialized the process group (and `leave` destroys it)

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder and prints (rank 0)."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's equal share of a global batch (its length divides by `size`)."""
        if self.size == 1:
            return batch
        n = len(batch) // self.size
        return batch[self.rank * n : (self.rank + 1) * n]

    def part(self, n: int) -> tuple[int, int]:
        """This process's contiguous part of n evaluation samples (the parts differ by at most one)."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the processes, in rank order (the same result in every process)."""
        if self.size == 1:
            return list(values)
        mine = torch.tensor(values, dtype=torch.float64, device=self._wire)
        parts = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(parts, mine)
        total = parts[0].clone()
        for part in parts[1:]:
            total += part
        return total.tolist()

    def all_finite(self, value: torch.Tensor) -> bool:
        """Whether the value is finite in every process (so that all of them stop together)."""
        finite = math.isfinite(value.item()) if value.numel() == 1 else bool(torch.isfinite(value).all())  # a float test for the usual scalar
        if self.size == 1:
            return finite
        flag = torch.tensor([1.0 if finite else 0.0], device=self._wire)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() == 1.0)

    def gather(self, value) -> list:
        """Every process's `value` (picklable), by rank."""
        if self.size == 1:
            return [value]
        found: list = [None] * self.size
        dist.all_gather_object(found, value)
        return found

    def agree(self, value, what: str):
        """`value`, which must be the same in every process: what a process reads from the run
        folder, which on several machines must be on a file system they all see."""
        if self.size == 1:
            return value
        values = self.gather(value)
        if any(v != values[0] for v in values):
            seen = ", ".join(f"rank {rank}: {v}" for rank, v in enumerate(values))
            raise TrickUsageError(f"the processes disagree on {what} ({seen}); on several machines the run folder must be on a file system that every machine sees")
        return value

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (the running statistics of `batchnorm sync=false`) in every process."""
        if self.size == 1:
            return
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)

    def barrier(self) -> None:
        if self.size > 1 and self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        elif self.size > 1:
            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training forward goes through: DistributedDataParallel around the
        model with several processes (buffers are not broadcast on every forward: synchronized
        batchnorm keeps them equal, and `broadcast_buffers` copies rank 0's after each epoch)."""
        if self.size == 1 or not any(p.requires_grad for p in model.parameters()):
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # torch >= 2.13 names the option forward_sync_buffers (and deprecates broadcast_buffers)
        option = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers"
        return DistributedDataParallel(model, device_ids=ids, **{option: False})

    def split_rng(self, seed: int) -> None:
        """Seed torch's global generator per process: rank 0 keeps its stream (the one a single
        process has), rank r > 0 gets a seed derived from (seed, r)."""
        if self.rank > 0:
            torch.manual_seed(int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint64)[0]))

    @property
    def _wire(self) -> torch.device:
        """Where tensors for collectives live: the GPU for nccl, the CPU for gloo."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")


SINGLE = World()


def join(device: torch.device) -> World:
    """This process's World: one process, or its place in the process group that torchrun or
    `trickc run --nproc` started (read from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
    MASTER_PORT; the group is initialized on first use, gloo on the CPU and nccl on GPUs)."""
    initialized = dist.is_available() and dist.is_initialized()
    size = dist.get_world_size() if initialized else int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World(device=device)
    rank = dist.get_rank() if initialized else int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            here = int(os.environ.get("LOCAL_WORLD_SIZE", size))
            raise TrickUsageError(f"{here} processes on this machine need {here} GPUs, one each, but torch sees {count}; start fewer processes, or train on the CPU with --device cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not initialized:
        faulthandler.enable()  # a worker that dies on a signal shows where each of its threads was
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_seconds()))
        atexit.register(_leave)  # the backstop; `leave` is the way out
    return World(rank, size, local, device, joined=not initialized)


def leave(world: World) -> None:
    """Destroy the process group that `join` initialized for `world` (one it found initialized
    is its owner's). First the garbage that may still hold it (DistributedDataParallel is
    cyclic) is collected: the group's worker threads must stop while the interpreter is whole.
    Left to the interpreter's finalization, a gloo thread that frees a tensor there needs the
    GIL and aborts the process ("terminate called without an active exception")."""
    if world.joined:
        gc.collect()
        _leave()


def _leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---- synchronized batch normalization ---------------------------------------------------------------------


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronized batch normalization on the CPU, where torch's nn.SyncBatchNorm does not run
    (its kernels and DistributedDataParallel both want GPUs); on GPUs, nn.SyncBatchNorm is used.

    In training with several processes, the batch mean and variance are those of the global
    batch: sums over every process's samples, taken with differentiable all-reduces (whose
    backward sums the gradients of the statistics over the processes, as nn.SyncBatchNorm's
    does). The variance is computed in two passes, Σ(x − μ)²/n, like BatchNorm's; the running
    variance gets the unbiased n/(n − 1)·σ², as in BatchNorm. In evaluation, and in a single
    process, it is plain batch normalization. The state_dict is BatchNorm's."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)  # (1, C, 1, ...) broadcasts over a (B, C, ...) batch
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        totals = _AllReduceSum.apply(torch.cat([x.sum(dims), count]))  # Σx per channel, and n
        n = totals[-1]
        mean = totals[:-1] / n
        centered = x - mean.view(shape)
        var = _AllReduceSum.apply(centered.pow(2).sum(dims)) / n  # biased, for normalizing
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():  # the running variance is the unbiased one, as in BatchNorm
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach())
                self.running_var.mul_(1 - factor).add_(factor * var.detach() * n.detach() / (n.detach() - 1))
        return y


class _AllReduceSum(torch.autograd.Function):
    """y = Σ_r x_r over the processes; the gradient of Σ_r L_r with respect to each x_r is
    then Σ_r ∂L_r/∂y, an all-reduce of the incoming gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _synced(bn: nn.modules.batchnorm._BatchNorm, gpu: bool) -> nn.Module:
    """nn.SyncBatchNorm (GPUs) or CpuSyncBatchNorm sharing `bn`'s parameters and buffers."""
    sync = (nn.SyncBatchNorm if gpu else CpuSyncBatchNorm)(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        sync.weight, sync.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        sync.running_mean, sync.running_var, sync.num_batches_tracked = bn.running_mean, bn.running_var, bn.num_batches_tracked
    sync.train(bn.training)
    return sync


def batchnorm_paths(graph: ir.ModelGraph) -> dict[str, bool]:
    """The submodule path of every `batchnorm` layer, and whether it is synchronized."""
    found: dict[str, bool] = {}

    def walk(layers, prefix):
        for layer in layers:
            if layer.op == "batchnorm":
                found[prefix + layer.name] = bool(layer.args.get("sync", True))
            walk(layer.body, prefix + layer.name + ".")

    walk(graph.layers, "")
    for head in graph.heads:
        walk(head.layers, f"heads.{head.target}.")
    return found


def synchronize_batchnorm(model: nn.Module, graph: ir.ModelGraph, world: World) -> nn.Module:
    """With several processes, each `batchnorm` whose `sync` is true (the default) becomes
    nn.SyncBatchNorm (CpuSyncBatchNorm on the CPU); `batchnorm sync=false` keeps per-process
    batch statistics."""
    if world.size == 1:
        return model
    for path, sync in batchnorm_paths(graph).items():
        if sync:
            owner, _, name = path.rpartition(".")
            parent = model.get_submodule(owner) if owner else model
            setattr(parent, name, _synced(getattr(parent, name), world.device.type == "cuda"))
    return model


# ---- resuming ------------------------------------------------------------------------------------------------


def check_resume(state: dict, world: World, path) -> None:
    """A run resumes on as many processes as it ran on: each one's random generator is in the
    checkpoint, and the data a process trains on depends on how many there are."""
    written = int(state.get("world_size", 1))
    if written != world.size:
        ran = "1 process" if written == 1 else f"{written} processes"
        now = "1 process" if world.size == 1 else f"{world.size} processes"
        how = "without --nproc" if written == 1 else f"with --nproc {written} (or torchrun with {written} processes in all)"
        raise TrickUsageError(f"{path} was written by a run on {ran}, which cannot continue on {now}: resume it {how}")


__all__ = ["SINGLE", "TIMEOUT_ENV", "CpuSyncBatchNorm", "World", "batchnorm_paths", "check_resume", "join", "leave", "synchronize_batchnorm"]
