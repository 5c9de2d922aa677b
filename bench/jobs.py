"""`--jobs`: an ablation of specs/mnist1d_cnn.trick run with one job and with two; the speedup.

    python bench/jobs.py                       # 3 seeds, 10 epochs (--set train.epochs=10), --jobs 1 then 2
    python bench/jobs.py --seeds 1 --epochs 2  # a quick look

Each measurement is the whole `trickc ablate SPEC --seeds N --jobs J --set train.epochs=E`
command, timed from start to end, in a fresh folder (nothing reused). Every run trains in a
worker process with one torch thread, so J jobs may use J cores. The load average before and
after each measurement says how busy the machine was (other work slows both). The two
ablations must give the same test accuracies, run for run (a seed fixes everything); the last
line printed is `speedup (jobs 1 / jobs 2): X.XX`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "mnist1d_cnn.trick"


def measure(jobs: int, seeds: int, epochs: int, folder: Path) -> tuple[float, dict[str, float], float]:
    """(wall seconds, test accuracy by run, the runs' mean own wall time) of one ablation."""
    out = folder / f"jobs{jobs}"
    command = [sys.executable, "-m", "trick", "ablate", str(SPEC), "--seeds", str(seeds), "--jobs", str(jobs), "--out", str(out), "--set", f"train.epochs={epochs}"]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"trickc ablate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summaries = {str(p.parent.relative_to(out / "runs")): json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/seed*/summary.json"))}
    accuracy = {key: s["test"]["accuracy"] for key, s in summaries.items()}
    own = sum(s["wall_seconds"] for s in summaries.values()) / len(summaries)
    print(f"--jobs {jobs}: {len(summaries)} runs in {wall:.1f} s (a run's own wall time {own:.1f} s on average); load average {load:.2f} before, {os.getloadavg()[0]:.2f} after", flush=True)
    return wall, accuracy, own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--jobs", type=int, nargs=2, default=[1, 2], metavar=("FEW", "MANY"))
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; ablation of {SPEC.relative_to(ROOT)}: {args.seeds} seeds, {args.epochs} epochs", flush=True)
    with tempfile.TemporaryDirectory(prefix="trick-jobs-") as tmp:
        few_wall, few, _ = measure(args.jobs[0], args.seeds, args.epochs, Path(tmp))
        many_wall, many, _ = measure(args.jobs[1], args.seeds, args.epochs, Path(tmp))
    same = few == many
    print(f"the same test accuracies, run for run: {'yes' if same else 'NO'}")
    print(f"speedup (jobs {args.jobs[0]} / jobs {args.jobs[1]}): {few_wall / many_wall:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
