"""The worker processes of a study: each trains one run folder at a time, with one torch thread.

A worker is started once (`initialize`: one thread, a session of its own so that Ctrl-C at
the terminal reaches the study only) and keeps its imports, torch, scikit-learn and
matplotlib among them, for every run it trains. `train_job` trains one job, given as plain
data:

    {"spec": PATH, "text": TEXT or None, "name": NAME, "overrides": [...], "folder": DIR, "runs": DIR or None}

`text`, when given, is compiled as the content of the file `spec` (its imports and data
relative to it). A folder with a checkpoint, or a finished run, is resumed (a finished run
of this very program is left as it is); anything else there is cleared first, as is a
folder whose run cannot be resumed (another version of the spec).

The study stops a run (a pruned trial, Ctrl-C) by creating the file `stop`: a thread of the
worker watches for it and interrupts the training, which keeps its last checkpoint.
"""

from __future__ import annotations

import _thread
import os
import shutil
import signal
import threading
from pathlib import Path

WATCH_SECONDS = 0.1


def initialize() -> None:
    """Once per worker process: one torch thread, and a session of its own."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    try:
        os.setsid()  # Ctrl-C goes to the terminal's process group: the study, which stops the workers in order
    except (AttributeError, OSError):
        pass
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the stop (interrupt_main) works even where SIGINT was ignored (nohup, &)
    import torch

    torch.set_num_threads(1)  # one core per run: N runs use N cores, and none waits on another


def compile_job(job: dict):
    """The compiled program of a job (a TrickError if it has errors)."""
    from ..compiler.pipeline import compile_source, run_pipeline

    if job.get("text") is not None:
        return run_pipeline(job["text"], job["name"], list(job["overrides"]), origin=job["spec"]).program()
    return compile_source(Path(job["spec"]), name=job["name"], overrides=list(job["overrides"]))


def clear(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder)


def train_job(job: dict, stop: str) -> dict:
    """Train one job: {"status": "finished" | "failed" | "interrupted", "error": text}."""
    done = threading.Event()
    lock = threading.Lock()

    def watch() -> None:
        while not done.wait(WATCH_SECONDS):
            if os.path.exists(stop):
                with lock:
                    if not done.is_set():
                        _thread.interrupt_main()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return _train(job)
    except KeyboardInterrupt:
        return {"status": "interrupted", "error": None}
    finally:
        with lock:
            done.set()
        watcher.join()


def _train(job: dict) -> dict:
    from .. import driver
    from ..dsl.diagnostics import TrickError, TrickUsageError

    folder = Path(job["folder"])
    runs = Path(job["runs"]) if job.get("runs") else None
    try:
        program = compile_job(job)
        resume = (folder / "last.pt").is_file() or (folder / "summary.json").is_file()
        if not resume:
            clear(folder)
        try:
            driver.train(program, folder, resume=resume, stream=None, runs=runs)
        except TrickUsageError:
            if not resume:
                raise
            clear(folder)  # its checkpoint is of another version of the spec: start afresh
            driver.train(program, folder, stream=None, runs=runs)
    except TrickError as err:
        return {"status": "failed", "error": err.render()}
    return {"status": "finished", "error": None}
