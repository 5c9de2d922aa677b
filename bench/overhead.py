"""Time per epoch of trick's training loop against hand-written PyTorch (bench/handwritten.py).

For each spec (E1 `mnist1d_cnn`, `digits_mlp`, the playground `spiral_l1`) both sides get the
same data (the split tensors `trickc run` loads), the same initial weights (the compiled
model's, copied into an nn.Sequential), batch size, optimizer, schedule, seed and per-epoch
work (augmentation, regularizers, weight noise, DropConnect, label smoothing, validation).

What is timed, per side: EPOCHS consecutive epochs, each = one training epoch plus the
validation pass. On the trick side that is exactly the body of `trickc run`'s epoch loop
(trick/runtime/run.py: `Trainer.train_epoch`, `Trainer.evaluate("val")`, the metrics record
and `Trainer.improved`) without the checkpoint write (`last.pt`, `best.pt`), which is
measured on its own and printed as an extra figure. Data loading, compiling, the test pass
and the plots at the end of a run are outside both timings.

Each repeat builds both sides afresh and times them in alternating order; the figure is the
median over REPEATS of the time per epoch. Torch runs on one thread on both sides (--threads);
the garbage collector is paused inside each timing.

    python bench/overhead.py [--repeats 5] [--threads 1]   # `overhead ratio: N.NN` last (the worst spec)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import handwritten  # noqa: E402
import trick  # noqa: E402
from trick.compiler.build import build  # noqa: E402
from trick.runtime import checkpoint as ckpt  # noqa: E402
from trick.runtime import recipe  # noqa: E402
from trick.runtime.data import load_splits  # noqa: E402
from trick.runtime.trainer import Trainer, prefixed  # noqa: E402

SPECS = {"mnist1d_cnn": 3, "digits_mlp": 8, "spiral_l1": 60}  # spec -> epochs per timing


def trick_side(program, splits, epochs):
    plan, graph = program.plan, program.graph
    torch.manual_seed(plan.seed)
    model = build(graph)
    trainer = Trainer(model, graph, plan, splits, torch.device("cpu"), recipe.hooks(plan, graph, model, {}, splits))

    def run():
        for _ in range(epochs):
            metrics = trainer.train_epoch()
            record = {"epoch": trainer.epoch + 1, **prefixed("train", metrics)}
            if len(trainer.x["val"]):
                record.update(prefixed("val", trainer.evaluate("val")))
            record["lr"] = trainer.optimizer.param_groups[0]["lr"]
            trainer.epoch += 1
            trainer.history.append(record)
            trainer.improved(record)

    return run, trainer


def hand_side(name, program, splits, epochs):
    plan = program.plan
    torch.manual_seed(plan.seed)
    compiled = build(program.graph)
    net = handwritten.model(name)
    handwritten.copy_weights(net, compiled)
    xt, yt = splits.split("train")
    xv, yv = splits.split("val")
    augments = bool(plan.augment)  # then trick augments raw batches and normalizes them; so does the hand-written loop
    raw = splits.raw_inputs("train") if augments else xt
    r = handwritten.Recipe(name, net, raw, yt["label"], xv, yv["label"], plan.seed, plan.epochs, normalize=splits.normalizer if augments else None)

    def run():
        for _ in range(epochs):
            r.epoch()

    return run


def timed(fn) -> float:
    gc.collect()
    gc.disable()  # no collection pauses inside either side's timing
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spec", action="append", choices=sorted(SPECS), help="only these specs (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), medians over {args.repeats} repeats")
    worst = 0.0
    for name, epochs in SPECS.items():
        if args.spec and name not in args.spec:
            continue
        program = trick.compile(HERE.parent / "specs" / f"{name}.trick")
        torch.manual_seed(program.plan.seed)
        splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
        hand_side(name, program, splits, 1)()  # warm-up of both sides (allocator, first-call costs)
        trick_side(program, splits, 1)[0]()
        ours, theirs, saves = [], [], []
        for rep in range(args.repeats):
            t_run, trainer = trick_side(program, splits, epochs)
            h_run = hand_side(name, program, splits, epochs)
            if rep % 2:
                ours.append(timed(t_run) / epochs)
                theirs.append(timed(h_run) / epochs)
            else:
                theirs.append(timed(h_run) / epochs)
                ours.append(timed(t_run) / epochs)
            with tempfile.TemporaryDirectory() as tmp:
                saves.append(timed(lambda: ckpt.save(Path(tmp) / "last.pt", trainer.checkpoint())))
        o, h, s = statistics.median(ours), statistics.median(theirs), statistics.median(saves)
        ratio = o / h
        worst = max(worst, ratio)
        print(f"{name:12s}  {epochs:3d} epochs/timing  trick {o * 1e3:8.2f} ms/epoch  hand-written {h * 1e3:8.2f} ms/epoch  ratio {ratio:.3f}  (checkpoint write {s * 1e3:.2f} ms/epoch)")
    print(f"overhead ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
