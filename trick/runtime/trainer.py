"""Executing a TrainingPlan: the training loop, metrics, early stopping and checkpoints.

Batches are cut from in-memory tensors with one seeded permutation per epoch. Everything
random draws from two generators that go into every checkpoint: `data` (order and
augmentation) and torch's global one (initialization, dropout), so a resumed run continues
exactly where the interrupted one stopped.

With several processes (`distributed.World`), every one draws the same order and trains on
its share of each global batch through DistributedDataParallel; the metrics are summed over
them (docs/distributed.md).

The objectives of other issues plug in through `Hooks`: the epoch's sample order
(curriculum), the batch loss (adversarial training, distillation) and the parameter groups
(transfer learning).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..compiler import ir
from ..dsl.diagnostics import TrickUsageError
from . import checkpoint as ckpt
from .augment import Augmenter
from .data import Splits
from .distributed import SINGLE, World
from .objectives import Penalty, WeightNoise, loss_kind
from .optim import optimizer as make_optimizer
from .optim import scheduler as make_scheduler
from .speed import Speed
from .tta import tta_logits


_NO_CONTEXT = contextlib.nullcontext()  # reusable: a nullcontext holds no state


@dataclass
class Head:
    """One output of the model and how it is scored."""

    target: str
    loss: Callable
    weight: float
    classify: bool
    scale: tuple[float, float] | None = None  # a regression target's (mean, std): value = output · std + mean


@dataclass
class Hooks:
    """Where the training objectives plug in; the defaults are plain supervised training."""

    order: Callable[[int, int, torch.Generator], torch.Tensor] | None = None  # (epoch, n, g) -> indices
    batch_loss: Callable | None = None  # (trainer, x, targets) -> (loss, outputs)
    param_groups: Callable[[nn.Module], list] | None = None
    on_train: Callable[[nn.Module], None] | None = None  # after model.train() (frozen layers)
    after_epoch: Callable[["Trainer", int], None] | None = None


@dataclass
class EpochState:
    """Early stopping and best-model bookkeeping (saved in checkpoints)."""

    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False


def heads_of(graph: ir.ModelGraph, plan: ir.TrainingPlan, scales: dict[str, tuple[float, float]] | None = None) -> list[Head]:
    """The heads and their losses (an unknown loss is an error at the head, or at `loss`);
    `scales`: the regression targets' (mean, std) (Splits.scales), for their metrics."""
    scales = scales or {}
    if graph.heads:
        heads = []
        for h in graph.heads:
            loss = loss_kind(h.loss, h.span)
            classify = loss.classifies or (h.classes or 1) > 1
            heads.append(Head(h.target, loss.make(h.smoothing), h.weight, classify, None if classify else scales.get(h.target, (0.0, 1.0))))
        return heads
    width = graph.output[0] if len(graph.output) == 1 else 1
    loss = loss_kind(plan.loss.kind, plan.loss.span)
    classify = loss.classifies or width > 1
    return [Head("label", loss.make(plan.loss.args.get("smoothing", 0.0), plan.loss.args), 1.0, classify, None if classify else scales.get("label", (0.0, 1.0)))]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrickUsageError("the device cuda was asked for (--device or the spec's `device`), but torch sees no CUDA device")
    return torch.device(name)


class Trainer:
    def __init__(self, model: nn.Module, graph: ir.ModelGraph, plan: ir.TrainingPlan, splits: Splits, device: torch.device, hooks: Hooks | None = None, world: World = SINGLE):
        self.model, self.graph, self.plan, self.splits, self.device = model.to(device), graph, plan, splits, device
        self.world = world  # this process's rank among the processes of a data-parallel run
        self.hooks = hooks or Hooks()
        self.heads = heads_of(graph, plan, splits.scales)
        self.multi = bool(graph.heads)
        self.x = {s: splits.split(s)[0].to(device) for s in ("train", "val", "test")}
        self.y = {s: {h.target: splits.split(s)[1][h.target].to(device) for h in self.heads} for s in ("train", "val", "test")}
        self.generator = torch.Generator().manual_seed(plan.seed)
        # Augmentation acts on the data's own scale: raw training batches are augmented, then
        # normalized with the splits' Normalizer (float64, as the splits were: a batch left
        # alone gets bit-for-bit the values of x["train"]); colours clamp to [0, 1] for data in it.
        self.augment = Augmenter(plan.augment, clamp=splits.normalizer.clamp)
        self.normalizer = splits.normalizer.to(device)
        self._raw: dict[str, torch.Tensor] = {}  # raw inputs on the device, by split, loaded when needed
        self.penalty = Penalty(model, graph, plan.regularizers)  # the weights by the graph's layer roles
        self.weight_noise = WeightNoise(model, graph, plan.weight_noise) if plan.weight_noise > 0 else None
        groups = self.hooks.param_groups(model) if self.hooks.param_groups else [{"params": [p for p in model.parameters() if p.requires_grad]}]
        self.optimizer = make_optimizer(plan.optimizer, groups, fused=plan.compile is not None)
        self._optimized = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.net = world.wrap(self.model)  # what the training forward goes through: DistributedDataParallel with several processes
        self._uncompiled = self.net  # what _forward_loss calls (compiled, if at all, as part of it)
        self._plain = self._forward_loss  # the plain objective's step: forward, losses, penalty
        # compile / precision / channels_last (speed.py); None for the eager fp32 step
        self.speed = Speed(plan, self.model, self.optimizer, device) if Speed.needed(plan) else None
        if self.speed is not None and plan.compile is not None:
            if self.hooks.batch_loss is None:
                self._plain = self.speed.compile(self._forward_loss)  # one graph
            self.net = self.speed.compile(self.net)  # what other objectives call, through `outputs`
        self._move = device.type != "cpu"  # batch indices are cut on the CPU: move them (a call saved per step on the CPU)
        self._sharded = world.size > 1
        n = len(self.x["train"])
        self.steps_per_epoch = max(1, len(self._batches(torch.arange(n))))
        self.scheduler = make_scheduler(plan.schedule, self.optimizer, plan.epochs, self.steps_per_epoch, plan.optimizer.args["lr"])
        self.state = EpochState()
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # epochs completed

    # -- batches and losses --------------------------------------------------------------------------------

    def _batches(self, order: torch.Tensor) -> list[torch.Tensor]:
        """The global batches of an epoch. With N processes a trailing partial batch is cut to a
        multiple of N (each process gets as many samples); one that leaves a process a single
        sample is skipped, as is a trailing batch of one sample in a single process."""
        batches = list(order.split(self.plan.batch))
        size = self.world.size
        if batches and len(batches[-1]) % size:
            batches[-1] = batches[-1][: len(batches[-1]) - len(batches[-1]) % size]
        if len(batches) > 1 and len(batches[-1]) < 2 * size:
            batches.pop()  # a batch of one sample has no batch statistics (batchnorm fails on it)
        return [b for b in batches if len(b)]

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # Training goes through DDP (which averages the gradients); evaluation is local.
        out = (self.net if self.model.training else self.model)(x)
        return out if isinstance(out, dict) else {"label": out}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return weighted_sum(self.heads, self.head_losses(outputs, targets))

    def head_losses(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Each head's (unweighted) loss, in the order of `heads`."""
        return [h.loss(outputs[h.target], targets[h.target]) for h in self.heads]

    # -- one epoch --------------------------------------------------------------------------------------------

    def train_epoch(self, progress=None) -> dict[str, float]:
        n = len(self.x["train"])
        order = self.hooks.order(self.epoch, n, self.generator) if self.hooks.order else torch.randperm(n, generator=self.generator)
        self.model.train()
        if self.hooks.on_train is not None:
            self.hooks.on_train(self.model)
        sums = _Sums(self.heads)
        y_train = self.y["train"]
        batches = self._batches(order)
        inputs = self._train_batches(batches)
        for step, index in enumerate(batches):
            if self._move:
                index = index.to(self.device)
            x = next(inputs)
            if self._sharded:
                index, x = self.world.shard(index), self.world.shard(x)
            targets = {t: y[index] for t, y in y_train.items()}
            if self.weight_noise is not None:
                with self.weight_noise:
                    loss, outputs, parts = self._step(x, targets, step)
            else:
                loss, outputs, parts = self._step(x, targets, step)
            if self.plan.clip_grad is not None:
                if self.speed is not None:
                    self.speed.unscale()
                nn.utils.clip_grad_norm_(self.model.parameters(), self.plan.clip_grad)
            if self.speed is None:
                self.optimizer.step()
            else:
                self.speed.step()
            if self.penalty.proximal:  # `regularize l1 proximal=true`: at the step's learning rates
                self.penalty.prox(self.optimizer)
            self.scheduler.step()
            sums.add(outputs, targets, len(index), parts)
            if progress is not None:
                progress(step + 1, self.steps_per_epoch, sums.mean_loss())
        self.world.broadcast_buffers(self.model)  # rank 0's running statistics of `batchnorm sync=false` everywhere
        sums = sums.reduced(self.world)
        self.samples_seen = sums.n
        return sums.metrics(self.multi)

    def raw_inputs(self, split: str) -> torch.Tensor:
        """A split's inputs before normalization, on the device (kept once asked for)."""
        if split not in self._raw:
            self._raw[split] = self.splits.raw_inputs(split).to(self.device)
        return self._raw[split]

    def _train_batches(self, batches: list[torch.Tensor]):
        """The model's input for each batch of training rows, in order (`train_inputs`); a
        folder's images come through their view's `batches`, decoded ahead when streamed (the
        augmentation still draws from the generator at each step, in the same order)."""
        source = self.raw_inputs("train") if self.augment else self.x["train"]
        if not hasattr(source, "batches"):
            for index in batches:
                yield self.train_inputs(index.to(self.device) if self._move else index)
            return
        if not self._sharded:
            for x in source.batches(batches):
                yield self.normalizer(self.augment(x, self.generator)) if self.augment else x
            return
        # With several processes each one decodes only its share of every global batch (as a
        # DistributedSampler would give it); the augmentation still draws for the whole batch,
        # whose other rows are left zero, so that every sample gets the draws it gets alone.
        for index, mine in zip(batches, source.batches([self.world.shard(b) for b in batches])):
            x = mine.new_zeros((len(index), *mine.shape[1:]))
            n = len(index) // self.world.size
            x[self.world.rank * n : (self.world.rank + 1) * n] = mine
            yield self.normalizer(self.augment(x, self.generator)) if self.augment else x

    def train_inputs(self, index: torch.Tensor) -> torch.Tensor:
        """The model's inputs for a batch of training rows: with an `augment` block the raw
        rows augmented (`self.augment(x_raw, self.generator)`, the whole global batch in
        every process, so each sample's draws are those of one process) and then normalized;
        without one, the rows of x["train"]."""
        if not self.augment:
            return self.x["train"][index]
        return self.normalizer(self.augment(self.raw_inputs("train")[index], self.generator))

    def _forward_loss(self, x: torch.Tensor, targets: dict[str, torch.Tensor]):
        """The plain objective's forward: (loss + penalty, loss, outputs, each head's loss)."""
        out = self._uncompiled(x)
        outputs = out if isinstance(out, dict) else {"label": out}
        parts = self.head_losses(outputs, targets)
        loss = weighted_sum(self.heads, parts)
        return (loss + self.penalty() if self.penalty else loss), loss, outputs, parts

    def _step(self, x, targets, step):
        """One step's forward and backward: (loss, outputs, each head's loss or None).

        With the plain objective, the heads' losses come back for the epoch's metrics (which
        would otherwise compute them again from the outputs: the same values), as they are:
        their graph is freed by the backward pass, and the metrics only read them. Otherwise
        the loss and outputs come back detached."""
        for p in self._optimized:  # optimizer.zero_grad(set_to_none=True) without its profiler context (~15 µs a step)
            p.grad = None
        parts = None
        with self.speed.autocast() if self.speed is not None else _NO_CONTEXT:
            if self.speed is not None:
                x = self.speed.inputs(x)
            if self.hooks.batch_loss is None:
                total, loss, outputs, parts = self._plain(x, targets)
            else:
                loss, outputs = self.hooks.batch_loss(self, x, targets)
                total = loss + self.penalty() if self.penalty else loss
        if not (self.world.all_finite(total.detach()) if self._sharded else math.isfinite(total.detach().item())):
            raise NonFiniteLoss(float(total.detach()), self.epoch + 1, step + 1)
        if self.speed is None:
            total.backward()
        else:
            self.speed.backward(total)
        if parts is not None:  # read by the metrics only (float() and argmax, which autograd does not record): no detach calls
            return loss, outputs, parts
        return loss.detach(), {k: v.detach() for k, v in outputs.items()}, None

    @torch.no_grad()
    def evaluate(self, split: str, batch: int = 1024, tta: bool = False) -> dict[str, float]:
        """Metrics of a split in eval mode; with `tta`, of the test-time augmented predictions
        (log of the averaged softmax, which every loss reads like logits)."""
        self.model.eval()
        x, y = (self.raw_inputs(split) if tta else self.x[split]), self.y[split]  # test-time views are cut from raw images
        lo, hi = self.world.part(len(x)) if self.world.size > 1 else (0, len(x))  # each process evaluates its part; the sums are added up
        y = {t: v[lo:hi] for t, v in y.items()} if self.world.size > 1 else y
        if hasattr(x, "batches"):  # a folder's images (decoded ahead when streamed)
            chunks = x.batches(list(torch.arange(lo, hi).split(batch)))
        else:
            x = x[lo:hi] if self.world.size > 1 else x
            chunks = (x[start : start + batch] for start in range(0, len(x), batch))
        sums = _Sums(self.heads)
        for i, xb in enumerate(chunks):
            start = i * batch
            targets = {t: v[start : start + batch] for t, v in y.items()}
            outputs = tta_logits(self.outputs, xb, self.plan.evaluate, self.plan.augment, self.normalizer) if tta else self.outputs(xb)
            sums.add(outputs, targets, len(xb))
        return sums.reduced(self.world).metrics(self.multi)

    # -- early stopping ----------------------------------------------------------------------------------------

    def monitor(self) -> tuple[str, str] | None:
        """The metric that picks the best epoch, and whether lower or higher is better."""
        if self.plan.early_stop is not None:
            return self.plan.early_stop.monitor, self.plan.early_stop.mode
        if len(self.x["val"]):
            return "val.loss", "min"
        return None

    def improved(self, metrics: dict[str, float]) -> bool:
        watch = self.monitor()
        if watch is None:
            self.state.best_epoch = self.epoch
            return True
        name, mode = watch
        value = metrics[name]
        delta = self.plan.early_stop.min_delta if self.plan.early_stop else 0.0
        best = self.state.best_value
        better = best is None or (value < best - delta if mode == "min" else value > best + delta)
        if better:
            self.state.best_value, self.state.best_epoch, self.state.bad_epochs = value, self.epoch, 0
        else:
            self.state.bad_epochs += 1
            if self.plan.early_stop is not None and self.state.bad_epochs >= self.plan.early_stop.patience:
                self.state.stopped_early = True
        return better

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def checkpoint(self) -> dict:
        """Everything a resumed run needs; with several processes also each one's torch
        generators (every process calls this: it gathers them)."""
        state = {
            "format": ckpt.FORMAT,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "data": self.generator.get_state(), **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})},
            "state": vars(self.state).copy(),
            "history": list(self.history),
            "normalizer": self.splits.normalizer.state_dict(),
        }
        if self.speed is not None and self.speed.scaler is not None:
            state["scaler"] = self.speed.scaler.state_dict()  # fp16's loss scale, for an exact resume
        if self.world.size > 1:
            cuda = {"cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}
            state["rng"]["ranks"] = self.world.gather({"torch": torch.get_rng_state(), **cuda})
            state["world_size"] = self.world.size
        return state

    def restore(self, data: dict) -> None:
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        if self.speed is not None and self.speed.scaler is not None and "scaler" in data:
            self.speed.scaler.load_state_dict(data["scaler"])
        torch.set_rng_state(data["rng"]["torch"])
        self.generator.set_state(data["rng"]["data"])
        if "cuda" in data["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(data["rng"]["cuda"])
        if self.world.size > 1 and "ranks" in data["rng"]:  # this process's own generators
            mine = data["rng"]["ranks"][self.world.rank]
            torch.set_rng_state(mine["torch"])
            if "cuda" in mine and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda"], self.device)
        self.state = EpochState(**data["state"])
        self.history = list(data["history"])
        self.epoch = data["epoch"]


def weighted_sum(heads: list[Head], losses: list[torch.Tensor]) -> torch.Tensor:
    """Σ weight·loss over the heads; a weight of 1 and the leading zero of `sum` are left out
    (the same value, two fewer operations on the autograd tape)."""
    total = None
    for h, value in zip(heads, losses):
        term = value if h.weight == 1.0 else h.weight * value
        total = term if total is None else total + term
    return total


def supervised(trainer: "Trainer", x: torch.Tensor, targets: dict[str, torch.Tensor]):
    """The plain objective: each head's loss on its target, weighted and summed."""
    outputs = trainer.outputs(x)
    return trainer.loss(outputs, targets), outputs


class NonFiniteLoss(Exception):
    def __init__(self, value: float, epoch: int, step: int):
        super().__init__(f"loss {value} at epoch {epoch}, step {step}")
        self.value, self.epoch, self.step = value, epoch, step


class _Sums:
    """Sums over an epoch of each head's loss (weighted into the total) and correct predictions."""

    def __init__(self, heads: list[Head]):
        self.heads = heads
        self.n = 0
        self.loss = 0.0
        self.head_loss = {h.target: 0.0 for h in heads}
        self.correct = {h.target: 0 for h in heads if h.classify}
        # regression heads, in the target's own units: Σ(ŷ − y)², Σ|ŷ − y|, Σy, Σy²
        self.errors = {h.target: [0.0, 0.0, 0.0, 0.0] for h in heads if h.scale is not None}

    def add(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], n: int, losses: list[torch.Tensor] | None = None) -> None:
        """`losses`: each head's loss on this batch when already computed (else computed here).
        The outputs are detached (or come from a no_grad evaluation): no autograd here, and no
        no_grad context to enter on every step."""
        self.n += n
        for i, h in enumerate(self.heads):
            value = float(losses[i].detach() if losses is not None else h.loss(outputs[h.target], targets[h.target]))
            self.head_loss[h.target] += value * n
            self.loss += h.weight * value * n
            if h.classify:
                self.correct[h.target] += int((outputs[h.target].argmax(1) == targets[h.target]).sum())
            elif h.scale is not None:
                mean, std = h.scale
                truth = targets[h.target].double() * std + mean
                error = outputs[h.target].detach().reshape(len(truth)).double() * std + mean - truth
                sums = self.errors[h.target]
                sums[0] += float((error * error).sum())
                sums[1] += float(error.abs().sum())
                sums[2] += float(truth.sum())
                sums[3] += float((truth * truth).sum())

    def mean_loss(self) -> float:
        return self.loss / max(self.n, 1)

    def reduced(self, world: World) -> "_Sums":
        """The sums over every process (this one alone in a single process)."""
        if world.size == 1:
            return self
        targets, classified, regressed = list(self.head_loss), list(self.correct), list(self.errors)
        errors = [v for t in regressed for v in self.errors[t]]
        values = world.sum([self.n, self.loss, *(self.head_loss[t] for t in targets), *(self.correct[t] for t in classified), *errors])
        total = _Sums(self.heads)
        total.n, total.loss = int(round(values[0])), values[1]
        total.head_loss = dict(zip(targets, values[2 : 2 + len(targets)]))
        at = 2 + len(targets)
        total.correct = {t: int(round(v)) for t, v in zip(classified, values[at : at + len(classified)])}
        at += len(classified)
        total.errors = {t: list(values[at + 4 * i : at + 4 * i + 4]) for i, t in enumerate(regressed)}
        return total

    def metrics(self, multi: bool) -> dict[str, float]:
        """`loss` and `accuracy` (a classifier) or `mse`, `mae` and `r2` (a regressor, in the
        target's units: r2 = 1 − Σ(ŷ − y)² / Σ(y − ȳ)²); with several heads also `<head>.loss`
        and `<head>.accuracy` or `<head>.mse`, ... `loss` is the training objective (on the
        standardized targets of a regressor)."""
        if self.n == 0:
            return {}
        out = {"loss": self.loss / self.n}
        for h in self.heads:
            prefix = f"{h.target}." if multi else ""
            if multi:
                out[f"{h.target}.loss"] = self.head_loss[h.target] / self.n
            if h.target in self.correct:
                out[f"{prefix}accuracy"] = self.correct[h.target] / self.n
            elif h.target in self.errors:
                squared, absolute, total, squares = self.errors[h.target]
                spread = squares - total * total / self.n  # Σ(y − ȳ)²
                out[f"{prefix}mse"] = squared / self.n
                out[f"{prefix}mae"] = absolute / self.n
                out[f"{prefix}r2"] = 1.0 - squared / spread if spread > 1e-12 * max(squares, 1.0) else 0.0
        return out


def prefixed(split: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{split}.{k}": v for k, v in metrics.items()}
