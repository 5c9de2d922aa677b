"""The front end's speed: parse, check and lower each spec, a generated 2,000-line spec, the
language server's re-check after an edit, and the wall time of `trickc check` and `trickc
compile` as a user runs them.

In-process stages (median over REPEATS, after one warm-up call):
  parse   `trick.parse(path)`: read the file and build the AST
  check   `check_source(path)`: parse, imports, every check and the shape inference, i.e.
          all of `trickc check`'s work
  lower   `lower(checked.spec)`: lowering the checked spec to the ModelGraph and
          TrainingPlan (what `compile_source` adds after the check)
  compile `compile_source(path)`: `trick.compile`, all of the above
Language server: `trick.lsp.check_document` (what `trickc lsp` runs on every change of a
document) on E1's text with one edit (the width of a dense layer, a different one each
time, so nothing is reused), in this already warm process: median over 40 edits (target
20 ms).
Command lines (median over REPEATS fresh interpreters, interpreter start included; run as
`python -m trick`, which is what the `trickc` console script runs, plus the script itself):
  `trickc check specs/mnist1d_cnn.trick` (target 0.15 s) and `python -c pass` for scale,
  wall time and the CPU time (user + system) the child used, which the load of a busy
  machine changes less;
  twice: with bytecode caches, as an installed package has them (pip compiles the modules
  when it installs them; here they go to a temporary PYTHONPYCACHEPREFIX, filled by a first
  run), and as this environment runs it (PYTHONDONTWRITEBYTECODE=1 in the sandbox: every
  start compiles trick's modules from source again);
  `trickc compile specs/mnist1d_cnn.trick`, which must not import torch (checked in a child
  interpreter that runs the same command and then looks at sys.modules).
With --callgrind (valgrind installed): the instructions one `trickc check` process executes,
both ways, which do not depend on the load at all.

    python bench/frontend.py [--repeats 7] [--callgrind]   # `trickc check E1: N.NNN s` last
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
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


def wall(cmd: list[str], repeats: int, env: dict | None = None) -> float:
    return timed_runs(cmd, repeats, env)[0]


def timed_runs(cmd: list[str], repeats: int, env: dict | None = None) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system) of `cmd` in a child."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def environments(tmp: str) -> dict[str, dict]:
    """The child's environment with bytecode caches (in `tmp`) and as this one is."""
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
    return {"bytecode cached": cached, "as set here": dict(os.environ)}


def lsp_recheck(edits: int = 40) -> float:
    """Median seconds of the language server's check of E1 after an edit, in this process."""
    from trick.lsp import check_document

    text, uri = E1.read_text(encoding="utf-8"), E1.resolve().as_uri()
    assert "dense 128" in text
    check_document(text, uri)  # the server has checked the document once when it was opened
    times = []
    for i in range(edits):
        edited = text.replace("dense 128", f"dense {100 + i}")
        start = time.perf_counter()
        found = check_document(edited, uri)
        times.append(time.perf_counter() - start)
        assert not found, found
    return statistics.median(times)


def instructions(cmd: list[str], env: dict) -> int | None:
    """Instructions executed by `cmd` under valgrind's callgrind (None without valgrind)."""
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *cmd], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    return int(found.group(1).replace(",", "")) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--callgrind", action="store_true", help="also count instructions with valgrind (about 10 s)")
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

    recheck = lsp_recheck()
    print(f"language server re-check of E1 after an edit: {recheck * 1e3:.2f} ms (median of 40 edits, warm process)")

    py = sys.executable
    probe = (
        "import sys, io, contextlib\nfrom trick.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): rc = main(['compile', sys.argv[1]])\n"
        "print(rc, 'torch' in sys.modules, 'numpy' in sys.modules)"
    )
    rc, torch_loaded, numpy_loaded = subprocess.run([py, "-c", probe, str(E1)], check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    check = [py, "-m", "trick", "check", str(E1)]
    with tempfile.TemporaryDirectory() as tmp:
        envs = environments(tmp)
        cached = envs["bytecode cached"]
        subprocess.run(check, check=True, stdout=subprocess.DEVNULL, env=cached, cwd=ROOT)  # fills the caches
        start_py = timed_runs([py, "-c", "pass"], args.repeats, cached)
        compile_wall = wall([py, "-m", "trick", "compile", str(E1)], args.repeats, cached)
        results = {name: timed_runs(check, args.repeats, env) for name, env in envs.items()}
        script = Path(sys.executable).parent / "trickc"  # the installed console script (no pyenv shim)
        if script.is_file():
            print(f"{script} check E1: {wall([str(script), 'check', str(E1)], args.repeats, cached):.3f} s wall (bytecode cached)")
        if args.callgrind:
            for name, env in envs.items():
                count = instructions(check, env)
                base = instructions([py, "-c", "pass"], env)
                if count is None:
                    print("valgrind is not installed: no instruction counts")
                    break
                print(f"instructions of trickc check E1 ({name}): {count / 1e6:,.0f} M (python -c pass: {base / 1e6:,.0f} M)")
    print(f"python -c pass: {start_py[0]:.3f} s wall, {start_py[1]:.3f} s CPU (interpreter start, for scale)")
    print(f"trickc compile E1: {compile_wall:.3f} s wall; exit {rc}; torch imported: {torch_loaded == 'True'}; numpy imported: {numpy_loaded == 'True'}")
    (w, c) = results["as set here"]
    print(f"trickc check E1 without bytecode caches (PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!s}): {w:.3f} s wall, {c:.3f} s CPU")
    (w, c) = results["bytecode cached"]
    print(f"trickc check E1 CPU: {c:.3f} s")
    print(f"trickc check E1: {w:.3f} s")

if __name__ == "__main__":
    main()
