"""`trickc run SPEC --nproc N`: N processes on this machine, started and watched.

The launcher starts N copies of the same `trickc run` (without `--nproc`) with the
environment torchrun gives its workers: MASTER_ADDR (loopback), MASTER_PORT (a free port),
RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE. So `--nproc N` and
`torchrun --nproc-per-node N -m trick run SPEC` run exactly the same code in the workers
(`distributed.join` reads that environment).

It watches them: when one dies (a signal, an exit code other than 0), the others are stopped
at once, and the launcher says which worker died and how, and exits with 1, instead of
leaving the others waiting on a process that will never answer.

This module imports neither torch nor numpy: the launcher only starts processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence, TextIO

from ..dsl.diagnostics import TrickError

TIMEOUT_ENV = "TRICK_DIST_TIMEOUT"  # seconds a process waits for the others in a collective
DEFAULT_TIMEOUT = 300
GRACE = 10.0  # seconds the others get to stop by themselves after one stopped on an error
REPORTED = (1, 2)  # trickc's exit codes for an error it has printed (every process meets it; rank 0 says it)


def timeout_seconds() -> float:
    """How long a process waits for the others (TRICK_DIST_TIMEOUT, default 300 s): the
    backstop when a peer hangs without dying (a dead one is noticed at once)."""
    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


def env_world_size() -> int | None:
    """WORLD_SIZE when this process was started by torchrun or by the launcher, else None."""
    value = os.environ.get("WORLD_SIZE")
    return int(value) if value and value.isdigit() else None


def env_rank() -> int:
    value = os.environ.get("RANK", "0")
    return int(value) if value.isdigit() else 0


def check_batch(program, processes: int) -> None:
    """The spec's batch is the global batch: it must divide evenly among the processes."""
    batch = program.plan.batch
    if processes <= 1 or batch % processes == 0:
        return
    lower, upper = batch - batch % processes, batch - batch % processes + processes
    choices = f"{lower} or {upper}" if lower > 0 else f"{upper}"
    plan = program.plan
    default = " (the default)" if plan.batch_span is None else ""
    message = (
        f"batch {batch}{default} does not divide among {processes} processes: the batch is the global batch, split evenly "
        f"across the processes; choose a multiple of {processes} ({choices}) or another number of processes"
    )
    raise TrickError(program.diagnostic(plan.batch_span or plan.train_span, message))


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N` (what each worker runs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def free_port() -> int:
    """A TCP port free on the loopback interface (for rank 0's rendezvous store)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM if the launcher itself is killed (no orphans left waiting)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def launch(argv: Sequence[str], processes: int, stream: TextIO = sys.stderr) -> int:
    """Run `python -m trick *argv` in `processes` workers on this machine; the exit code."""
    env = dict(os.environ)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes), GROUP_RANK="0")
    # As torchrun does: one thread per worker unless told otherwise (N workers x all cores thrash).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    workers = [
        subprocess.Popen([sys.executable, "-m", "trick", *argv], env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, preexec_fn=preexec)
        for rank in range(processes)
    ]
    try:
        return _watch(workers, stream)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the workers too; rank 0 says how to resume.
        if not _wait(workers, 2.0):  # the launcher alone was interrupted: pass it on
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGINT)
            _wait(workers, 10.0)
        return 130
    finally:
        _stop(workers, grace=5.0)


def _watch(workers: list[subprocess.Popen], stream: TextIO) -> int:
    while True:
        codes = [w.poll() for w in workers]
        if all(code == 0 for code in codes):
            return 0
        failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            # A signal or an unexpected exit code says more than the errors it causes in the others.
            rank, code = min(failed, key=lambda rc: (rc[1] in REPORTED, rc[0]))
            if code in REPORTED and _wait(workers, GRACE):
                return workers[0].returncode or code  # every worker stopped on the error, which rank 0 has reported
            _stop(workers, grace=5.0)
            how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit code {code}"
            verb = "stopped on an error" if code in REPORTED else "died"
            print(
                f"trickc: error: worker {rank} of {len(workers)} {verb} ({how}); the other workers were stopped. "
                "The last finished epoch is saved: --resume continues from it",
                file=stream, flush=True,
            )  # fmt: skip
            return 1
        time.sleep(0.05)


def _wait(workers: list[subprocess.Popen], seconds: float) -> bool:
    """Wait up to `seconds` for every worker to exit; whether they all did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(w.poll() is not None for w in workers):
            return True
        time.sleep(0.05)
    return all(w.poll() is not None for w in workers)


def _stop(workers: list[subprocess.Popen], grace: float) -> None:
    """Terminate the workers still running; kill those that outlive `grace` seconds."""
    running = [w for w in workers if w.poll() is None]
    for w in running:
        w.terminate()
    deadline = time.monotonic() + grace
    for w in running:
        try:
            w.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
