"""Forward plus backward of the compiled module (`trick.compile(spec).model()`, i.e.
trick/compiler/build.py) against the hand-written nn.Sequential of bench/handwritten.py with
the same weights, in training mode, on one training batch of each spec.

What is timed: `model(x)`, cross-entropy on it, `backward()` and `zero_grad`, STEPS times in
a row; the figure is the median over REPEATS of the time per step, the two modules timed in
alternating order. Torch runs on one thread (--threads).

    python bench/forward.py [--repeats 7] [--threads 1]   # `forward+backward ratio: N.NN` last (the worst)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import handwritten  # noqa: E402
import trick  # noqa: E402
from timing import alternating_medians  # noqa: E402  (bench/ is the script's folder)

SPECS = {"mnist1d_cnn": (64, 200), "digits_mlp": (32, 600), "spiral_l1": (32, 2000)}  # batch, steps per timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), medians over {args.repeats} repeats")
    worst = 0.0
    for name, (batch, steps) in SPECS.items():
        program = trick.compile(HERE.parent / "specs" / f"{name}.trick")
        compiled = program.model(seed=0).train()
        hand = handwritten.model(name).train()
        handwritten.copy_weights(hand, compiled)
        torch.manual_seed(0)
        x = torch.randn(batch, *program.graph.input)
        y = torch.randint(0, program.graph.output[0], (batch,))

        def run(m):
            for _ in range(steps):
                F.cross_entropy(m(x), y).backward()
                m.zero_grad(set_to_none=True)

        run(compiled), run(hand)  # warm-up
        o, h = (t / steps for t in alternating_medians(lambda: run(compiled), lambda: run(hand), args.repeats))
        worst = max(worst, o / h)
        print(f"{name:12s}  batch {batch:3d}  compiled {o * 1e6:8.1f} us/step  hand-written {h * 1e6:8.1f} us/step  ratio {o / h:.3f}")
    print(f"forward+backward ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
