"""Time per epoch of `trickc run` against the frameworks a user would pick instead: PyTorch
Lightning and Keras 3 (on its torch backend), on the recipes of bench/overhead.py.

For each spec (E1 `mnist1d_cnn`, `digits_mlp`, the playground `spiral_l1`) every side gets
the same split tensors (`load_splits`, as `trickc run` loads them), the same initial weights
(the compiled model's), batch size, optimizer, schedule and per-epoch work: augmentation,
regularizers, weight noise, DropConnect, label smoothing, a validation pass, and a checkpoint
after every epoch. Each side is written as its users write it:

- trick: the body of `trickc run`'s epoch loop (trick/runtime/run.py: `Trainer.train_epoch`,
  `Trainer.evaluate("val")`, `Trainer.improved`, then `best.pt` when it improved, `last.pt`
  and a line of metrics.jsonl);
- Lightning: a `LightningModule` around bench/handwritten.py's network and recipe (its
  augmentation, penalties, optimizer and per-step schedule), a `DataLoader(TensorDataset)`
  with shuffling, `self.log` of the epoch's loss and accuracy, and `Trainer(logger=False,
  enable_progress_bar=False, enable_model_summary=False)` with a `ModelCheckpoint` that keeps
  the best and the last checkpoint every epoch;
- Keras: a `keras.Sequential` of Keras layers (custom layers for what Keras lacks:
  DropConnect, weight-scaling dropout, the shift augmentation), kernel regularizers,
  `model.fit` on the arrays with `validation_data`, a custom `train_step` for the weight noise
  (the Keras guide's way to change a step), and two `ModelCheckpoint`s (best and last, the
  last a full `.keras` file with the optimizer, as trick's last.pt holds it).

What is timed: EPOCHS consecutive epochs inside one run, from the start of the first epoch
to the end of the last one (checkpoint included); building the model, the Trainer or
`compile`, and a framework's start-up before its first epoch are outside. Each repeat builds
every side afresh and runs them in rotating order; the figure is the median over REPEATS of
the time per epoch. Torch runs on one thread on every side. Validation accuracies after the
timed epochs are printed beside the times (a sanity check that each side trains: they
differ in their random draws, not in their recipe).

Needs the `bench` extra (`pip install -e '.[bench]'`: pytorch-lightning, keras); a side whose
package is missing is left out and said so.

    python bench/peers.py [--repeats 3] [--threads 1] [--spec NAME] [--no-keras]
    # last line: `peer ratio: X.XX` -- trick's time over the fastest peer's, worst spec
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import handwritten  # noqa: E402
import trick  # noqa: E402
from trick.compiler.build import build  # noqa: E402
from trick.runtime import checkpoint as ckpt  # noqa: E402
from trick.runtime import recipe  # noqa: E402
from trick.runtime.data import load_splits  # noqa: E402
from trick.runtime.trainer import Trainer, prefixed  # noqa: E402

SPECS = {"mnist1d_cnn": 3, "digits_mlp": 6, "spiral_l1": 20}  # spec -> epochs per timing


def timed(fn) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


# ---- trick ---------------------------------------------------------------------------------------------


def trick_side(program, splits, epochs, folder: Path):
    """`trickc run`'s epoch loop: train, validate, best.pt when improved, last.pt, metrics line."""
    plan, graph = program.plan, program.graph
    torch.manual_seed(plan.seed)
    model = build(graph)
    trainer = Trainer(model, graph, plan, splits, torch.device("cpu"), recipe.hooks(plan, graph, model, {}, splits))
    result = {}

    def run():
        start = time.perf_counter()
        for _ in range(epochs):
            record = {"epoch": trainer.epoch + 1, **prefixed("train", trainer.train_epoch())}
            if len(trainer.x["val"]):
                record.update(prefixed("val", trainer.evaluate("val")))
            record["lr"] = trainer.optimizer.param_groups[0]["lr"]
            trainer.epoch += 1
            trainer.history.append(record)
            if trainer.improved(record):
                ckpt.save(folder / "best.pt", {"format": ckpt.FORMAT, "epoch": trainer.epoch, "model": model.state_dict(), "normalizer": splits.normalizer.state_dict()})
            ckpt.save(folder / "last.pt", trainer.checkpoint())
            with open(folder / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        result["seconds"] = time.perf_counter() - start
        result["val_acc"] = record.get("val.accuracy", float("nan"))

    return run, result


def raw_training_inputs(program, splits):
    """The training inputs as the hand-written loop takes them, and the normalizer to apply
    after augmenting (None when the spec does not augment: the inputs are then normalized)."""
    xt, yt = splits.split("train")
    if program.plan.augment:
        return splits.raw_inputs("train"), yt["label"], splits.normalizer
    return xt, yt["label"], None


# ---- PyTorch Lightning --------------------------------------------------------------------------------


def lightning_side(name, program, splits, epochs, folder: Path):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    plan = program.plan
    torch.manual_seed(plan.seed)
    net = handwritten.model(name)
    handwritten.copy_weights(net, build(program.graph))
    x, y, normalize = raw_training_inputs(program, splits)
    xv, yv = splits.split("val")
    # The hand-written recipe supplies the augmentation, penalties, loss, optimizer and schedule.
    r = handwritten.Recipe(name, net, x, y, xv, yv["label"], plan.seed, plan.epochs, normalize=normalize)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            xb, yb = batch
            xb = r.normalize(r.augment(xb))
            noisy = name == "digits_mlp"
            if noisy:  # weight noise for this step's forward and backward, restored before the step
                with torch.no_grad():
                    self._saved = [w.clone() for w in r.weights]
                    for w in r.weights:
                        w.add_(torch.randn_like(w) * 0.01)
            out = self.net(xb)
            loss = r.loss(out, yb)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            self.log("train_acc", (out.argmax(1) == yb).float().mean(), on_step=False, on_epoch=True)
            pen = r.penalty()
            return loss + pen if pen is not None else loss

        def on_after_backward(self):
            if name == "digits_mlp":
                with torch.no_grad():
                    for w, s in zip(r.weights, self._saved):
                        w.copy_(s)

        def validation_step(self, batch, _):
            xb, yb = batch
            out = self.net(xb)
            self.log("val_loss", r.loss(out, yb), on_epoch=True, batch_size=len(yb))
            self.log("val_acc", (out.argmax(1) == yb).float().mean(), on_epoch=True, batch_size=len(yb))

        def configure_optimizers(self):
            if r.sched is None:
                return r.opt
            return {"optimizer": r.opt, "lr_scheduler": {"scheduler": r.sched, "interval": "step"}}

    clock = {}

    class Clock(Callback):
        def on_train_epoch_start(self, trainer, module):
            clock.setdefault("start", time.perf_counter())

        def on_train_end(self, trainer, module):
            clock["end"] = time.perf_counter()

    monitor = "val_loss" if plan.early_stop is not None else None  # trick's best.pt: every epoch without a monitor
    checkpoint = ModelCheckpoint(dirpath=folder, monitor=monitor, save_last=True, save_top_k=1)
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[checkpoint, Clock()], default_root_dir=folder,
    )
    train = DataLoader(TensorDataset(x, y), batch_size=r.batch, shuffle=True, generator=torch.Generator().manual_seed(plan.seed))
    val = DataLoader(TensorDataset(xv, yv["label"]), batch_size=1024)
    module = Module()
    result = {}

    def run():
        trainer.fit(module, train, val)
        result["seconds"] = clock["end"] - clock["start"]
        result["val_acc"] = float(trainer.callback_metrics["val_acc"])

    return run, result


# ---- Keras 3 (torch backend) --------------------------------------------------------------------------


def keras_side(name, program, splits, epochs, folder: Path):
    import keras
    from keras import layers

    plan = program.plan
    keras.utils.set_random_seed(plan.seed)
    torch.manual_seed(plan.seed)
    hand = handwritten.model(name)
    handwritten.copy_weights(hand, build(program.graph))
    x, y, normalize = raw_training_inputs(program, splits)
    xv, yv = splits.split("val")
    classes = int(program.graph.output[0])

    class Augment(layers.Layer):  # E1: per-sample shift (zero fill), Gaussian noise, then the normalizer
        def call(self, x, training=False):
            if training:
                n, length = x.shape[0], x.shape[-1]
                s = torch.randint(-4, 5, (n,))
                src = torch.arange(length) - s[:, None]
                inside = (src >= 0) & (src < length)
                x = torch.gather(x, -1, src.clamp(0, length - 1)[:, None].expand_as(x)) * inside[:, None]
                x = x + 0.05 * torch.randn_like(x)
            return normalize(x)

    class DropConnect(layers.Dense):  # one mask per example, as trick's default
        def __init__(self, units, p, **kw):
            super().__init__(units, **kw)
            self.p = p

        def call(self, x, training=False):
            if not training:
                return super().call(x)
            w = self.kernel.value
            masks = torch.empty((x.shape[0], *w.shape)).bernoulli_(1 - self.p) / (1 - self.p)
            return torch.bmm(x.unsqueeze(1), w * masks).squeeze(1) + self.bias.value

    class ScaledDropout(layers.Layer):  # weight-scaling dropout: scale at test time
        def __init__(self, p, **kw):
            super().__init__(**kw)
            self.p = p

        def call(self, x, training=False):
            return x * torch.empty_like(x).bernoulli_(1 - self.p) if training else x * (1 - self.p)

    class NoisyWeights(keras.Sequential):  # the Keras guide's custom train_step, with weight noise
        def train_step(self, data):
            x, y = data
            kernels = [v for v in self.trainable_weights if len(v.shape) >= 2]
            with torch.no_grad():
                saved = [v.value.clone() for v in kernels]
                for v in kernels:
                    v.value.add_(torch.randn_like(v.value) * 0.01)
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
            self.zero_grad()
            loss.backward()
            with torch.no_grad():
                for v, s in zip(kernels, saved):
                    v.value.copy_(s)
                weights = self.trainable_weights
                self.optimizer.apply([v.value.grad for v in weights], weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    if name == "mnist1d_cnn":
        steps = len(x) // 64 + (len(x) % 64 >= 2)

        class WarmCosine(keras.optimizers.schedules.LearningRateSchedule):  # handwritten.Recipe's factor
            def __call__(self, step):
                e = (float(step) + 1) / steps
                f = e / 2 if e < 2 else 0.5 * (1 + math.cos(math.pi * min((e - 2) / (plan.epochs - 2), 1.0)))
                return 1e-3 * f

            def get_config(self):
                return {}

        model = keras.Sequential([
            keras.Input((1, 40)), Augment(),
            layers.Conv1D(32, 5, padding="same", data_format="channels_first"), layers.GroupNormalization(8, axis=1, epsilon=1e-5), layers.ReLU(),
            layers.Conv1D(64, 3, padding="same", data_format="channels_first"), layers.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5), layers.ReLU(),
            layers.MaxPooling1D(2, data_format="channels_first"), layers.Flatten(),
            layers.Dense(128), layers.ReLU(), layers.Dropout(0.5),
            layers.Dense(10),
        ])
        optimizer = keras.optimizers.AdamW(learning_rate=WarmCosine(), weight_decay=1e-4, epsilon=1e-8)
        # trick's smoothing eps puts eps/(k-1) on every other class; Keras' ls puts ls/k: ls = eps*k/(k-1)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1 * classes / (classes - 1))
        batch = 64
    elif name == "digits_mlp":
        reg = keras.regularizers.L1L2(l1=1e-6, l2=0.5 * 1e-4)  # trick's l2 is ½λ‖θ‖²
        model = NoisyWeights([
            keras.Input((64,)),
            DropConnect(256, 0.3, kernel_regularizer=reg), layers.BatchNormalization(momentum=0.9, epsilon=1e-5), layers.ReLU(),
            layers.Dense(256, kernel_regularizer=reg), layers.LayerNormalization(epsilon=1e-5), layers.ReLU(), ScaledDropout(0.5),
            layers.GaussianNoise(0.1),
            layers.Dense(10, kernel_regularizer=reg),
        ])
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        batch = 32
    else:
        reg = keras.regularizers.L1(1e-3)
        model = keras.Sequential([
            keras.Input((2,)),
            layers.Dense(16, activation="tanh", kernel_regularizer=reg),
            layers.Dense(16, activation="tanh", kernel_regularizer=reg),
            layers.Dense(2, kernel_regularizer=reg),
        ])
        optimizer = keras.optimizers.SGD(0.03)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        batch = 32
    copy_into_keras(model, hand)
    model.compile(optimizer=optimizer, loss=loss, metrics=[keras.metrics.CategoricalAccuracy(name="acc")])
    clock = {}

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock.setdefault("start", time.perf_counter())

        def on_train_end(self, logs=None):
            clock["end"] = time.perf_counter()

    best = keras.callbacks.ModelCheckpoint(str(folder / "best.weights.h5"), monitor="val_loss", save_best_only=plan.early_stop is not None, save_weights_only=True)
    last = keras.callbacks.ModelCheckpoint(str(folder / "last.keras"))
    onehot = lambda t: F.one_hot(t, classes).float().numpy()  # noqa: E731
    xv_in = splits.raw_inputs("val") if normalize is not None else xv  # the model normalizes what it augments
    data = {"x": x.numpy(), "y": onehot(y), "validation_data": (xv_in.numpy(), onehot(yv["label"])), "batch_size": batch, "validation_batch_size": 1024}
    result = {}

    def run():
        history = model.fit(**data, epochs=epochs, shuffle=True, verbose=0, callbacks=[best, last, Clock()])
        result["seconds"] = clock["end"] - clock["start"]
        result["val_acc"] = history.history["val_acc"][-1]

    return run, result


def copy_into_keras(model, hand: torch.nn.Module) -> None:
    """The hand-written (= compiled) model's weights, module by module, into the Keras layers."""
    torch_mods = [m for m in hand.modules() if any(True for _ in m.parameters(recurse=False)) or isinstance(m, torch.nn.BatchNorm1d)]
    keras_layers = [layer for layer in model.layers if layer.weights]
    assert len(torch_mods) == len(keras_layers), (torch_mods, keras_layers)
    for m, layer in zip(torch_mods, keras_layers):
        if isinstance(m, torch.nn.Conv1d):
            values = [m.weight.detach().permute(2, 1, 0), m.bias.detach()]  # (out, in, k) -> (k, in, out)
        elif isinstance(m, torch.nn.Linear):
            values = [m.weight.detach().T, m.bias.detach()]
        elif isinstance(m, torch.nn.BatchNorm1d):
            values = [m.weight.detach(), m.bias.detach(), m.running_mean, m.running_var]
        else:  # GroupNorm, LayerNorm
            values = [m.weight.detach(), m.bias.detach()]
        layer.set_weights([v.numpy().copy() for v in values])


# ---- the comparison --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spec", action="append", choices=sorted(SPECS), help="only these specs (default: all)")
    parser.add_argument("--no-keras", action="store_true", help="leave Keras out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # Lightning's advice about DataLoader workers and the like
    sides = {"trick": None}
    try:
        import logging

        import pytorch_lightning

        sides["lightning"] = pytorch_lightning.__version__
        for logger in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):  # its start-up notes
            logging.getLogger(logger).setLevel(logging.ERROR)
    except ImportError:
        print("pytorch-lightning is not installed (pip install -e '.[bench]'): left out")
    if not args.no_keras:
        try:
            import keras

            sides["keras"] = f"{keras.__version__} ({keras.backend.backend()})"
        except ImportError:
            print("keras is not installed (pip install -e '.[bench]'): left out")
    if len(sides) == 1:
        raise SystemExit("no peer to compare with")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), medians over {args.repeats} repeats; "
          + ", ".join(f"{k} {v}" for k, v in sides.items() if v))
    worst = 0.0
    for name, epochs in SPECS.items():
        if args.spec and name not in args.spec:
            continue
        program = trick.compile(HERE.parent / "specs" / f"{name}.trick")
        torch.manual_seed(program.plan.seed)
        splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
        makers = {
            "trick": lambda folder, n: trick_side(program, splits, n, folder),
            "lightning": lambda folder, n: lightning_side(name, program, splits, n, folder),
            "keras": lambda folder, n: keras_side(name, program, splits, n, folder),
        }
        makers = {k: v for k, v in makers.items() if k in sides}
        for make in makers.values():  # warm-up of every side (first-call costs, imports)
            with tempfile.TemporaryDirectory() as tmp:
                make(Path(tmp), 1)[0]()
        times: dict[str, list[float]] = {k: [] for k in makers}
        accuracy: dict[str, float] = {}
        order = list(makers)
        for rep in range(args.repeats):
            for side in order[rep % len(order):] + order[: rep % len(order)]:
                with tempfile.TemporaryDirectory() as tmp:
                    run, result = makers[side](Path(tmp), epochs)
                    timed(run)
                    times[side].append(result["seconds"] / epochs)
                    accuracy[side] = result["val_acc"]
        med = {k: statistics.median(v) for k, v in times.items()}
        fastest_peer = min((k for k in med if k != "trick"), key=med.get)
        ratio = med["trick"] / med[fastest_peer]
        worst = max(worst, ratio)
        cells = "  ".join(f"{k} {med[k] * 1e3:8.2f} ms/epoch (val acc {accuracy[k]:.3f})" for k in med)
        print(f"{name:12s} {epochs:3d} epochs/timing  {cells}  ratio to {fastest_peer} {ratio:.3f}")
    print(f"peer ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
