"""The front end's speed: parse, check and lower each spec, a generated 2,000-line spec, and
the wall time of `trickc check` and `trickc compile` as a user runs them.

In-process stages (median over REPEATS, after one warm-up call):
  parse   `trick.parse(path)`: read the file and build the AST
  check   `check_source(path)`: parse, imports, every check and the shape inference, i.e.
          all of `trickc check`'s work
  lower   `lower(checked.spec)`: lowering the checked spec to the ModelGraph and
          TrainingPlan (what `compile_source` adds after the check)
  compile `compile_source(path)`: `trick.compile`, all of the above
Command lines (median over REPEATS fresh interpreters, interpreter start included; run as
`python -m trick`, which is what the `trickc` console script runs, plus the script itself):
  `trickc check specs/mnist1d_cnn.trick` (target under 0.3 s) and `python -c pass` for scale;
  `trickc compile specs/mnist1d_cnn.trick`, which must not import torch (checked in a child
  interpreter that runs the same command and then looks at sys.modules).

    python bench/frontend.py [--repeats 7]   # `trickc check E1: N.NNN s` last
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import trick  # noqa: E402
from trick.compiler.pipeline import check_source  # noqa: E402
from trick.compiler.lower import lower  # noqa: E402
from trick.compiler.pipeline import compile_source  # noqa: E402
from timing import median_seconds  # noqa: E402  (bench/ is the script's folder)

E1 = ROOT / "specs" / "mnist1d_cnn.trick"


def generated(lines: int = 2000) -> str:
    """A valid spec of about `lines` lines: a deep MLP, one layer chain per line, with comments."""
    head = ["spec generated_big", "", "data {", "    source playground spiral n=200", "    validation 0.2", "}", "", "model {", "    input [2]"]
    tail = ["    dense 2", "}", "", "train {", "    epochs 1", "    batch 32", "    optimizer sgd lr=0.01", "    loss cross_entropy", "}"]
    body = []
    i = 0
    while len(head) + len(body) + len(tail) < lines:
        i += 1
        if i % 10 == 0:
            body.append(f"    # block {i // 10}")
        elif i % 10 == 5:
            body.append(f"    layer{i}: dense 16 -> layernorm -> tanh")
        else:
            body.append("    dense 16 -> relu")
    return "\n".join(head + body + tail) + "\n"


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "generated_big.trick"
        big.write_text(generated(), encoding="utf-8")
        specs = [ROOT / "specs" / f"{n}.trick" for n in ("mnist1d_cnn", "digits_mlp", "spiral_l1")] + [big]
        print(f"{'spec':22s} {'lines':>6s} {'parse ms':>9s} {'check ms':>9s} {'lower ms':>9s} {'compile ms':>11s}")
        for path in specs:
            parse = median_seconds(lambda: trick.parse(path), args.repeats, warmup=True)
            check = median_seconds(lambda: check_source(path), args.repeats, warmup=True)
            checked = check_source(path)
            assert checked.ok, path
            low = median_seconds(lambda: lower(checked.spec), args.repeats, warmup=True)
            comp = median_seconds(lambda: compile_source(path), args.repeats, warmup=True)
            lines = path.read_text().count("\n")
            print(f"{path.stem:22s} {lines:6d} {parse * 1e3:9.2f} {check * 1e3:9.2f} {low * 1e3:9.2f} {comp * 1e3:11.2f}")

    py = sys.executable
    probe = (
        "import sys, io, contextlib\nfrom trick.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): rc = main(['compile', sys.argv[1]])\n"
        "print(rc, 'torch' in sys.modules, 'numpy' in sys.modules)"
    )
    rc, torch_loaded, numpy_loaded = subprocess.run([py, "-c", probe, str(E1)], check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    start_py = wall([py, "-c", "pass"], args.repeats)
    compile_wall = wall([py, "-m", "trick", "compile", str(E1)], args.repeats)
    check_wall = wall([py, "-m", "trick", "check", str(E1)], args.repeats)
    script = Path(sys.executable).parent / "trickc"  # the installed console script (no pyenv shim)
    if script.is_file():
        print(f"{script} check E1: {wall([str(script), 'check', str(E1)], args.repeats):.3f} s")
    print(f"python -c pass: {start_py:.3f} s (interpreter start, for scale)")
    print(f"trickc compile E1: {compile_wall:.3f} s wall; exit {rc}; torch imported: {torch_loaded == 'True'}; numpy imported: {numpy_loaded == 'True'}")
    print(f"trickc check E1: {check_wall:.3f} s")


if __name__ == "__main__":
    main()
