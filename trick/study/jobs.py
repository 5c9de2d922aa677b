"""Many runs at once: each a normal run folder, trained in one of N worker processes with
one torch thread each (worker.py).

A run whose folder holds a summary.json with the program's content hash is reused without
starting anything; one with a checkpoint and no summary is resumed by its worker; anything
else there (another version's run, an attempt that died before its first epoch ended) is
cleared and trained afresh. So a study that is stopped and started again loses at most the
epochs that were under way.

While a run trains, each new line of its metrics.jsonl goes to the job's `on_epoch`; when that
returns True the run is stopped (it keeps its checkpoint), which is how a sweep prunes. The
workers run in sessions of their own, so Ctrl-C reaches this process only, which stops the
runs in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..dsl.diagnostics import TrickError, TrickUsageError

POLL_SECONDS = 0.25


def cores() -> int:
    """The cores this process may use (the default number of jobs)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_jobs(jobs: int | None) -> int:
    if jobs is None:
        return cores()
    if jobs < 1:
        raise TrickUsageError(f"--jobs must be at least 1, found {jobs}")
    return jobs


@dataclass
class Job:
    """One run: a spec (a file, or `text` read as if it were that file) with settings, and
    the run folder it trains."""

    key: str  # unique within a study, e.g. "without_dropout/seed1"
    folder: Path
    spec: Path
    text: str | None = None
    overrides: tuple[str, ...] = ()
    name: str | None = None  # how diagnostics name the spec
    runs: Path | None = None  # where the runs of its imports go (None: next to each imported spec)
    on_epoch: Callable[[dict], bool] | None = field(default=None, repr=False)
    program: Any = field(default=None, repr=False)


@dataclass
class Outcome:
    """How a job ended: finished, reused, pruned, failed or interrupted."""

    job: Job
    status: str
    summary: dict | None = None
    history: list[dict] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "reused")


def compile_job(job: Job):
    """The job's program (compiled once, here); a TrickError when it has errors."""
    if job.program is None:
        from .worker import compile_job as compile_dict

        job.program = compile_dict(_as_dict(job))
    return job.program


def _as_dict(job: Job) -> dict:
    return {"spec": str(job.spec), "text": job.text, "name": job.name or str(job.spec), "overrides": list(job.overrides), "folder": str(job.folder), "runs": job.runs and str(job.runs)}


def read_history(folder: Path) -> list[dict]:
    """The training epochs of a run folder's metrics.jsonl (not the hint stage's)."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("stage", "train") == "train":
            records.append(record)
    return records


def read_summary(folder: Path) -> dict | None:
    path = Path(folder) / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def reusable(job: Job) -> Outcome | None:
    """The outcome of a finished run of this very program in the job's folder, if there is
    one; a folder that holds a finished run of another version is cleared."""
    summary = read_summary(job.folder)
    if summary is None:
        return None
    if summary.get("content_hash") == compile_job(job).content_hash:
        return Outcome(job, "reused", summary, read_history(job.folder))
    shutil.rmtree(job.folder)  # the spec changed since that run
    return None


def train_imports(jobs: Sequence[Job], stream: TextIO | None) -> None:
    """Train, once and here, the imports the jobs' programs need that have no finished run
    (two workers must not train the same teacher)."""
    seen: set[str] = set()
    for job in jobs:
        program = job.program
        if program is None or not program.plan.imports:
            continue
        from ..driver import train_imports as train_them  # torch, only when there are imports
        key = ",".join(sorted(imp.content_hash for imp in program.plan.imports)) + str(job.runs)
        if key not in seen:
            seen.add(key)
            train_them(program, job.runs, None, stream)


class Pool:
    """At most `processes` runs at a time, in as many worker processes (worker.py), started
    once and kept for every run."""

    def __init__(self, processes: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .worker import initialize

        self.processes = processes
        self.running: list[_Running] = []
        self.stops = Path(tempfile.mkdtemp(prefix="trick-study-"))  # a file here stops a run
        self.executor = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=initialize)
        self.started = 0

    @property
    def free(self) -> int:
        return self.processes - len(self.running)

    def start(self, job: Job) -> None:
        from .worker import train_job

        self.started += 1
        stop = self.stops / f"{self.started}.stop"
        self.running.append(_Running(job, self.executor.submit(train_job, _as_dict(job), str(stop)), stop))

    def wait(self) -> list[Outcome]:
        """The jobs that ended since the last call (waiting a moment when none did); each
        running job's new epochs go to its `on_epoch`."""
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_for

        wait_for([r.future for r in self.running], timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        ended = []
        for run in list(self.running):
            run.follow()
            if run.future.done():
                run.follow()
                self.running.remove(run)
                ended.append(run.outcome())
        return ended

    def stop(self) -> list[Outcome]:
        """Stop every run (each keeps its last checkpoint) and the workers; the runs' outcomes."""
        for run in self.running:
            run.stop.touch()
        ended = []
        for run in self.running:
            with contextlib.suppress(BaseException):  # a worker that died: its run is interrupted all the same
                run.future.result(timeout=30)
            ended.append(Outcome(run.job, "interrupted", None, read_history(run.job.folder), "stopped"))
        self.running.clear()
        self.close()
        return ended

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.stops, ignore_errors=True)


@dataclass
class _Running:
    job: Job
    future: Any
    stop: Path
    seen: int = 0  # lines of metrics.jsonl given to on_epoch
    pruned: bool = False

    def follow(self) -> None:
        if self.job.on_epoch is None or self.pruned:
            return
        path = self.job.folder / "metrics.jsonl"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]  # whole lines only
        except OSError:
            return
        for line in lines[self.seen :]:
            self.seen += 1
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("stage", "train") == "train" and self.job.on_epoch(record):
                self.pruned = True
                self.stop.touch()
                return

    def outcome(self) -> Outcome:
        history = read_history(self.job.folder)
        try:
            result = self.future.result()
        except KeyboardInterrupt:  # the stop arrived as the run ended
            result = {"status": "interrupted", "error": None}
        except Exception as err:  # noqa: BLE001 - a worker that crashed: the run failed, the study goes on
            result = {"status": "failed", "error": f"the worker failed: {type(err).__name__}: {err}"}
        status = result["status"]
        if status == "finished":
            return Outcome(self.job, "finished", read_summary(self.job.folder), history)
        if status == "interrupted":
            return Outcome(self.job, "pruned" if self.pruned else "interrupted", None, history, result["error"])
        return Outcome(self.job, "failed", None, history, result["error"])


class Progress:
    """A bar over the runs on a terminal; a line per finished run otherwise; nothing when quiet."""

    def __init__(self, stream: TextIO | None, total: int, what: str = "runs"):
        self.stream, self.total, self.done = stream, total, 0
        self.bar = None
        if stream is not None and hasattr(stream, "isatty") and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, file=stream, dynamic_ncols=True)

    def finished(self, outcome: Outcome, text: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text[:60], refresh=True)
        elif self.stream is not None:
            print(f"[{self.done}/{self.total}] {outcome.job.key}: {text}", file=self.stream, flush=True)

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.stream is not None:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe(outcome: Outcome, metric: str = "accuracy") -> str:
    """One line about a finished job, for the progress display."""
    if outcome.status in ("finished", "reused"):
        test = (outcome.summary or {}).get("test", {})
        shown = f"test {metric} {test[metric]:.4f}" if metric in test else ", ".join(f"test {k} {v:.4f}" for k, v in list(test.items())[:2])
        return f"{shown}{' (reused)' if outcome.status == 'reused' else ''}"
    if outcome.status == "failed":
        return "failed: " + (outcome.error or "").splitlines()[0] if outcome.error else "failed"
    return outcome.status


def run_all(jobs: Sequence[Job], processes: int, stream: TextIO | None = sys.stderr, what: str = "runs") -> dict[str, Outcome]:
    """Every job's outcome, by key: reused where finished, else trained `processes` at a time."""
    outcomes: dict[str, Outcome] = {}
    pending: list[Job] = []
    for job in jobs:
        try:
            compile_job(job)
        except TrickError as err:
            outcomes[job.key] = Outcome(job, "failed", error=err.render())
            continue
        found = reusable(job)
        if found is not None:
            outcomes[job.key] = found
        else:
            pending.append(job)
    progress = Progress(stream, len(jobs), what)
    for outcome in outcomes.values():
        progress.finished(outcome, describe(outcome))
    train_imports(pending, None if progress.bar is not None else stream)
    if not pending:
        progress.close()
        return {job.key: outcomes[job.key] for job in jobs}
    pool = Pool(min(processes, len(pending)))
    try:
        while pending or pool.running:
            while pending and pool.free:
                pool.start(pending.pop(0))
            for outcome in pool.wait():
                outcomes[outcome.job.key] = outcome
                progress.finished(outcome, describe(outcome))
    except KeyboardInterrupt:
        pool.stop()
        progress.close()
        raise
    pool.close()
    progress.close()
    return {job.key: outcomes[job.key] for job in jobs}
