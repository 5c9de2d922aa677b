"""Time per training step of `train { compile true }`, `precision bf16` and `channels_last`
against eager trick and hand-written eager PyTorch (bench/handwritten.py), on the CPU.

Recipes: E1 `mnist1d_cnn` and the `digits_mlp` (hand-written, eager trick, compiled trick,
bf16 trick), and `tiny_images` without its augment block (eager, channels_last, bf16, both:
its convolutions are 2-D; E1's are 1-D and the digits model has none, so channels_last does
not apply to them). Every side gets the same data, initial weights, batch, optimizer and
schedule (as bench/overhead.py); `train.epochs` is raised so that no schedule runs out.

What is timed: each training step, from the end of the previous one (a batch's inputs,
augmentation, forward, loss, backward, optimizer and schedule step, the metrics' float()),
after one untimed warm-up epoch per side (for compile: its compilation, against a warm cache).
The sides take turns one epoch at a time (the starting side rotates each round); a figure
is the median over all steps of all rounds. One torch thread (--threads); the garbage
collector is paused inside each epoch.

The compile warm-up is measured in fresh processes: the first with an empty
TORCHINDUCTOR_CACHE_DIR (a new temporary folder), the second with the same folder, now warm;
each prints the time of its first step and first epoch (the compilations) and a later epoch.

    python bench/compile.py [--rounds 6] [--threads 1] [--spec mnist1d_cnn ...] [--no-warmup]
    # last line `compiled speedup: X`: hand-written eager ms/step over compiled trick ms/step, worst of E1 and digits
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

EPOCHS = 200  # train.epochs of every side: the schedules never run out within a bench
VARIANTS = {  # recipe -> (label, --set overrides); "hand" is the hand-written eager loop
    "mnist1d_cnn": [("hand-written eager", None), ("trick eager", []), ("trick compile", ["train.compile=true"]), ("trick bf16", ["train.precision=bf16"])],
    "digits_mlp": [("hand-written eager", None), ("trick eager", []), ("trick compile", ["train.compile=true"]), ("trick bf16", ["train.precision=bf16"])],
    "tiny_images": [("trick eager", []), ("trick channels_last", ["train.channels_last=true"]), ("trick bf16", ["train.precision=bf16"]), ("trick channels_last+bf16", ["train.channels_last=true", "train.precision=bf16"])],
}
SPEEDUP_RECIPES = ("mnist1d_cnn", "digits_mlp")


def source(name: str) -> str:
    """The spec's text; tiny_images without `augment` (so that the convolutions, not the
    augmentation, make up the step)."""
    text = (ROOT / "specs" / f"{name}.trick").read_text(encoding="utf-8")
    return re.sub(r"(?ms)^augment \{.*?^\}\n", "", text) if name == "tiny_images" else text


def program(name: str, overrides: list[str]):
    from trick.compiler.pipeline import compile_source

    return compile_source(source(name), name, [f"train.epochs={EPOCHS}", *overrides])


def trick_side(name: str, overrides: list[str], splits):
    """A fresh Trainer (as `trickc run` makes it) and one timed epoch of it: the step end times."""
    import torch

    from trick.runtime import recipe
    from trick.runtime.trainer import Trainer

    p = program(name, overrides)
    torch.manual_seed(p.plan.seed)
    model = p.model()
    trainer = Trainer(model, p.graph, p.plan, splits, torch.device("cpu"), recipe.hooks(p.plan, p.graph, model, {}, splits))

    def epoch(stamps: list[float]) -> None:
        stamps.append(time.perf_counter())
        trainer.train_epoch(lambda step, steps, loss: stamps.append(time.perf_counter()))
        trainer.epoch += 1

    return epoch, trainer


def hand_side(name: str, splits):
    """The hand-written recipe (bench/handwritten.py) with the compiled model's initial
    weights, and its training loop (Recipe.epoch without the validation pass), timed per step."""
    import handwritten
    import torch

    p = program(name, [])
    torch.manual_seed(p.plan.seed)
    compiled = p.model()
    net = handwritten.model(name)
    handwritten.copy_weights(net, compiled)
    xt, yt = splits.split("train")
    xv, yv = splits.split("val")
    augments = bool(p.plan.augment)
    raw = splits.raw_inputs("train") if augments else xt
    r = handwritten.Recipe(name, net, raw, yt["label"], xv, yv["label"], p.plan.seed, p.plan.epochs, normalize=splits.normalizer if augments else None)

    def epoch(stamps: list[float]) -> None:
        r.net.train()
        order = torch.randperm(len(r.x), generator=r.g)
        stamps.append(time.perf_counter())
        for idx in order.split(r.batch):
            if len(idx) < 2:
                continue
            r.step(r.normalize(r.augment(r.x[idx])), r.y[idx])
            stamps.append(time.perf_counter())

    return epoch


def paused_gc(fn, stamps):
    gc.collect()
    gc.disable()
    try:
        fn(stamps)
    finally:
        gc.enable()


def steady(name: str, rounds: int) -> dict[str, tuple[float, int]]:
    """label -> (median seconds per step, steps timed), the sides taking turns."""
    import torch

    from trick.runtime.data import load_splits

    p = program(name, [])
    torch.manual_seed(p.plan.seed)
    splits = load_splits(p.plan.data, p.plan.seed, p.graph.input)
    sides = {}
    for label, overrides in VARIANTS[name]:
        sides[label] = hand_side(name, splits) if overrides is None else trick_side(name, overrides, splits)[0]
        sides[label]([])  # warm-up epoch (compilation, allocator, first calls)
    steps: dict[str, list[float]] = {label: [] for label in sides}
    labels = list(sides)
    for rep in range(rounds):
        for label in labels[rep % len(labels) :] + labels[: rep % len(labels)]:
            stamps: list[float] = []
            paused_gc(sides[label], stamps)
            steps[label] += [b - a for a, b in itertools.pairwise(stamps)]
    return {label: (statistics.median(s), len(s)) for label, s in steps.items()}


def warmup_child(name: str, threads: int) -> None:
    """In a fresh process: the compiled side's first step, first epoch and third epoch (s)."""
    import torch

    torch.set_num_threads(threads)
    from trick.runtime.data import load_splits

    p = program(name, [])
    torch.manual_seed(p.plan.seed)
    splits = load_splits(p.plan.data, p.plan.seed, p.graph.input)
    epoch, trainer = trick_side(name, ["train.compile=true"], splits)
    times = []
    for _ in range(3):
        stamps: list[float] = []
        epoch(stamps)
        times.append(stamps)
    first = times[0]
    print(json.dumps({"first_step": first[1] - first[0], "first_epoch": first[-1] - first[0], "later_epoch": times[2][-1] - times[2][0], "steps": trainer.steps_per_epoch}))


def warmup(name: str, cache: Path, threads: int) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--warmup-child", name, "--threads", str(threads)], env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the warm-up run of {name} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process": time.perf_counter() - started}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="epochs timed per side (default 6)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spec", action="append", choices=sorted(VARIANTS), help="only these recipes (default: all)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the compile warm-up runs (then the steady state pays a cold compilation)")
    parser.add_argument("--warmup-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup_child:
        return warmup_child(args.warmup_child, args.threads)
    names = [n for n in VARIANTS if not args.spec or n in args.spec]
    root = Path(tempfile.mkdtemp(prefix="trick-compile-bench-"))
    shared = root / "shared"  # the steady-state measurement's cache: the warm-up runs' caches, merged
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(shared)
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load average {load()} at the start")
    try:
        for name in names:
            if args.no_warmup or not any(o for _, o in VARIANTS[name] if o and "train.compile=true" in o):
                continue
            cache = root / name
            for which in ("empty cache", "warm cache"):
                w = warmup(name, cache, args.threads)
                print(f"{name:12s}  compile warm-up, {which}:  first step {w['first_step']:6.2f} s  first epoch {w['first_epoch']:6.2f} s  (a later epoch {w['later_epoch']:.2f} s; the process {w['process']:.1f} s)")
            shutil.copytree(cache, shared, dirs_exist_ok=True)
        speedups = []
        for name in names:
            figures = steady(name, args.rounds)
            base_label = "hand-written eager" if "hand-written eager" in figures else "trick eager"
            base = figures[base_label][0]
            eager = figures["trick eager"][0]
            for label, (seconds, n) in figures.items():
                vs = f"  {base / seconds:5.2f}x hand-written" if base_label != "trick eager" else ""
                print(f"{name:12s}  {label:26s} {seconds * 1e3:8.3f} ms/step  {eager / seconds:5.2f}x trick eager{vs}  (median of {n} steps)")
            if name == "mnist1d_cnn":
                print(f"{name:12s}  channels_last: does not apply (1-D convolutions: NHWC order is for 4-D tensors)")
            if name in SPEEDUP_RECIPES and "trick compile" in figures:
                speedups.append(base / figures["trick compile"][0])
        print(f"load average {load()} at the end")
        if speedups:
            print(f"compiled speedup: {min(speedups):.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
