"""The data path: one epoch of shuffled batches cut from in-memory tensors, as the trainer
does (trick/runtime/trainer.py: one seeded `randperm`, `split` into batches, index the
training tensors), against `DataLoader(TensorDataset(x, y), batch_size, shuffle=True)` with
the default collate (num_workers=0), on each benchmark spec's training split and batch size.

What is timed: iterating one epoch's batches (x and y of every batch in hand, no model);
median over REPEATS of the time per epoch, both sides in alternating order, one torch thread.

    python bench/datapath.py [--repeats 7]   # `data path speedup: N.Nx` last (DataLoader time / in-memory time, the smallest)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import trick  # noqa: E402
from trick.runtime.data import load_splits  # noqa: E402
from timing import alternating_medians  # noqa: E402  (bench/ is the script's folder)

SPECS = ("mnist1d_cnn", "digits_mlp", "spiral_l1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    worst = float("inf")
    for name in SPECS:
        program = trick.compile(HERE.parent / "specs" / f"{name}.trick")
        torch.manual_seed(program.plan.seed)
        splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
        x, y = splits.split("train")
        y = y["label"]
        batch = program.plan.batch
        g = torch.Generator().manual_seed(0)

        def in_memory():
            for index in torch.randperm(len(x), generator=g).split(batch):
                xb, yb = x[index], y[index]

        loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0))

        def dataloader():
            for xb, yb in loader:
                pass

        in_memory(), dataloader()
        o, d = alternating_medians(in_memory, dataloader, args.repeats)
        worst = min(worst, d / o)
        print(f"{name:12s}  {len(x):5d} samples, batch {batch:3d}  in-memory {o * 1e3:7.2f} ms/epoch  DataLoader {d * 1e3:7.2f} ms/epoch  speedup {d / o:.1f}x")
    print(f"data path speedup: {worst:.1f}x")


if __name__ == "__main__":
    main()
