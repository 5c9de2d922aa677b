"""Image folders: decode throughput, and the epoch time of a cached against a streamed run.

The folder: 20,000 32×32 PNGs in 10 classes (specs/data/make_image_folder.py, seed 0), written
once into bench/out/folder_20k/ and reused. What is timed:
- decode: `decode_all` of every image at size 32 (the stored size: no resampling, so this is
  PNG decoding and conversion), in this process and with 2 DataLoader workers; median over
  REPEATS, the two in alternating order; the load average is printed beside it, since other
  work on the machine takes cores from the workers;
- epoch: `trickc run` of a small CNN (written into bench/out/folder_bench/) for 2 epochs with
  `--set data.source.cache=memory`, then `=stream` (with `workers=N`); the `seconds` of the
  fastest epoch in each run folder's metrics.jsonl (the cache is filled before the first
  epoch; each streamed epoch starts its workers anew).

    python bench/folder.py [--repeats 3] [--workers 2] [--skip-epochs]
    # last lines: `decode: N images/s (1 process), M images/s (2 workers)` and
    #             `epoch: cached A s, streamed B s (B/Ax)`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parent / "specs" / "data")]

from make_image_folder import make_folder
from timing import alternating_medians

from trick.runtime.folder import decode_all, scan_folder

OUT = HERE / "out"
FOLDER = OUT / "folder_20k"
N_PER_CLASS, CLASSES, SIZE = 2000, 10, 32

SPEC = """spec folder_bench

data {{
    source folder "{path}"
    validation 0.1
}}

model {{
    input [3, 32, 32]
    conv 8 k=3 pad=1 -> relu
    maxpool 2
    conv 16 k=3 pad=1 -> relu
    maxpool 2
    avgpool global
    dense 10
}}

train {{
    epochs 2
    batch 128
    optimizer adamw lr=1e-3
    loss cross_entropy
    seed 0
}}
"""


def the_folder() -> list[Path]:
    """The 20,000 image paths, writing the folder first when it is missing or incomplete."""
    try:
        paths = scan_folder(FOLDER, str(FOLDER)).splits["all"][0]
        if len(paths) == N_PER_CLASS * CLASSES:
            return paths
    except ValueError:
        pass
    start = time.perf_counter()
    make_folder(FOLDER, N_PER_CLASS, SIZE, seed=0, classes=CLASSES)
    print(f"wrote {N_PER_CLASS * CLASSES:,} PNGs to {FOLDER} in {time.perf_counter() - start:.1f} s")
    return scan_folder(FOLDER, str(FOLDER)).splits["all"][0]


def epoch_seconds(run: Path) -> tuple[float, list[float]]:
    """The fastest epoch's seconds (the one least disturbed by other work), and all of them."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seconds = [r["seconds"] for r in records if "seconds" in r and "epoch" in r]
    if not seconds:
        raise SystemExit(f"{run}/metrics.jsonl has no epoch with 'seconds'")
    return min(seconds), seconds


def run_spec(spec: Path, out: Path, cache: str, workers: int) -> tuple[float, list[float]]:
    command = [sys.executable, "-m", "trick", "run", str(spec), "--quiet", "--out", str(out), "--set", "train.epochs=2",
               "--set", f"data.source.cache={cache}"]  # fmt: skip
    if cache == "stream":
        command += ["--set", f"data.source.workers={workers}"]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run folder each time (bench/out/ is the bench's own)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(command[1:])}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    fastest, all_seconds = epoch_seconds(out)
    print(f"{cache:6s} run: {time.perf_counter() - start:.1f} s in all, epochs {', '.join(f'{s:.2f}' for s in all_seconds)} s")
    return fastest, all_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-epochs", action="store_true", help="only measure decoding")
    args = parser.parse_args()
    paths = the_folder()
    n = len(paths)
    decode_all(paths[:2000], SIZE, "rgb", "folder_20k")  # warm the page cache and the imports

    def in_process():
        decode_all(paths, SIZE, "rgb", "folder_20k")

    def with_workers():
        decode_all(paths, SIZE, "rgb", "folder_20k", workers=args.workers)

    load = os.getloadavg()[0]
    serial, parallel = alternating_medians(in_process, with_workers, args.repeats)
    print(
        f"{n:,} images of {SIZE}×{SIZE}, {os.cpu_count()} cores, load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    decode_line = f"decode: {n / serial:,.0f} images/s (1 process), {n / parallel:,.0f} images/s ({args.workers} workers)"
    if args.skip_epochs:
        print(decode_line)
        return
    work = OUT / "folder_bench"
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "folder_bench.trick"
    spec.write_text(SPEC.format(path=os.path.relpath(FOLDER, work)))
    cached, _ = run_spec(spec, work / "run_memory", "memory", args.workers)
    streamed, _ = run_spec(spec, work / "run_stream", "stream", args.workers)
    print(decode_line)
    print(f"epoch: cached {cached:.1f} s, streamed {streamed:.1f} s ({streamed / cached:.2f}x)")


if __name__ == "__main__":
    main()
