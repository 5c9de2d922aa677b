"""`trickc sweep SPEC`: the search of the spec's sweep block, with Optuna.

Each trial is the spec with the trial's values written in (the `--set` settings of
compiler/sweep.py, applied to the AST and formatted canonically), trained as a normal run
folder DIR/trials/<content hash>: the same values give the same folder, so a finished trial
is reused and an interrupted one resumed. Optuna's TPE sampler draws the values; after every
epoch the trial's metric goes to the study, whose median pruner stops a trial that is worse
than the median of the others at that epoch.

The study lives in DIR/study.db (SQLite), or in `--storage URL` shared by several machines;
running the command again continues it. A trial of a sweep that was stopped (Ctrl-C) is
failed and enqueued again with its values; one whose process died without a word is found by
its missing heartbeat and retried the same way. A trial whose spec or run has an error fails
for good (it would fail again). DIR gets trials.csv, sweep.png and best.trick.
"""

from __future__ import annotations

import csv
import hashlib
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..compiler.overrides import apply
from ..compiler.pipeline import run_pipeline
from ..compiler.sweep import Sweep, settings, sweep_of
from ..dsl.diagnostics import TrickCheckError, TrickError, TrickUsageError
from ..dsl.format import format_program
from ..dsl.parser import parse_text
from . import plots
from .jobs import Job, Outcome, Pool, Progress, compile_job, reusable, train_imports
from .variants import relocated

HEARTBEAT_SECONDS, GRACE_SECONDS = 5, 30  # a running trial without a heartbeat for GRACE is a dead one


@dataclass
class SweepResult:
    spec: str
    out: Path
    metric: str
    direction: str
    rows: list[dict] = field(default_factory=list)
    best: dict | None = None

    def report(self) -> str:
        states = [r["state"] for r in self.rows]
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL", "INTERRUPTED", "RUNNING") if states.count(s))
        lines = [f"sweep of {self.spec}: {len(self.rows)} trials ({counts}) in {self.out}"]
        if self.best is None:
            lines.append("no trial has finished yet")
        else:
            lines.append(f"best: trial {self.best['number']}, {self.metric} {self.best['value']:.4f} ({'lower' if self.direction == 'minimize' else 'higher'} is better)")
            lines += [f"    {path} = {text}" for path, text in self.best["written"].items()]
            lines.append(f"wrote {self.out / 'best.trick'}, trials.csv and sweep.png")
        return "\n".join(lines) + "\n"


def trial_value(history: list[dict], summary: dict | None, metric: str) -> float | None:
    """The metric at the epoch whose weights the run kept: the best one when it restored the
    best weights, else the last."""
    records = [r for r in history if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    if not records:
        return None
    kept = (summary or {}).get("best_epoch") if (summary or {}).get("weights") == "best" else None
    chosen = next((r for r in records if r["epoch"] == kept), records[-1])
    return float(chosen[metric])


OPTUNA_MISSING = "trickc sweep needs Optuna, which is not installed; install it with: pip install 'trick[sweep]'"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise TrickUsageError(OPTUNA_MISSING) from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")  # this loop records them
    return optuna


def open_study(sweep: Sweep, name: str, storage: str, seed: int, shared: bool = False):
    """The study (created, or loaded to continue it) and its storage."""
    optuna = _optuna()
    from optuna import storages
    from optuna.storages import RDBStorage

    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
        retry, callback = storages.RetryHeartbeatStaleTrialCallback(max_retry=3), "heartbeat_stale_trial_callback"
    else:
        retry, callback = storages.RetryFailedTrialCallback(max_retry=3), "failed_trial_callback"
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None
    try:
        rdb = RDBStorage(storage, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS, **{callback: retry})
        study = optuna.create_study(
            storage=rdb,
            study_name=name,
            direction=sweep.direction,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_warmup_steps=1),
            load_if_exists=True,
        )
        # A continued study draws new points: the seed moves on by the trials it has (several
        # machines sharing a study each draw their own, unseeded).
        study.sampler = optuna.samplers.TPESampler(seed=None if shared else seed + len(study.trials))
    except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as err:
        raise TrickUsageError(f"cannot open the study storage {storage}: {err}") from None
    except Exception as err:  # the database's own errors (SQLAlchemy: a server that cannot be reached, ...)
        if type(err).__module__.split(".")[0] != "sqlalchemy":
            raise
        raise TrickUsageError(f"cannot open the study storage {storage}: {str(err).splitlines()[0]}") from None
    return study, rdb


def _suggest(trial, dim):
    if dim.kind == "float":
        return trial.suggest_float(dim.path, dim.low, dim.high, log=dim.log)
    if dim.kind == "int":
        return trial.suggest_int(dim.path, dim.low, dim.high, log=dim.log)
    return trial.suggest_categorical(dim.path, list(dim.choices))


def trial_text(program, sweep: Sweep, values: dict) -> str:
    """The spec with a trial's values written in, formatted canonically."""
    edited, _ = apply(program, settings(sweep, values))
    return format_program(edited)


def run_sweep(spec: Path, out: Path, *, trials: int | None = None, jobs: int = 1, storage: str | None = None, stream: TextIO | None = sys.stderr) -> SweepResult:
    """Run (or continue) the sweep of `spec` into `out`; see the module's docstring."""
    spec, out = Path(spec), Path(out)
    compiled = run_pipeline(spec, str(spec))
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    if errors:
        raise TrickCheckError(errors)
    sweep = sweep_of(compiled.spec)
    if sweep is None:
        raise TrickUsageError(f"{spec} has no sweep block; add one, e.g. sweep {{ trials 20; metric val.accuracy; vary train.optimizer.lr log 1e-4..1e-1 }}")
    program, base = compiled.spec.program, compiled.program()
    total = trials or sweep.trials
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    space = repr([(d.path, d.kind, d.low, d.high, d.log, d.choices) for d in sweep.dimensions]) + sweep.metric + sweep.direction
    name = f"{base.plan.spec}-{hashlib.sha256((base.content_hash + space).encode()).hexdigest()[:10]}"  # a changed spec or search is a new study
    study, rdb = open_study(sweep, name, url, base.plan.seed, shared=storage is not None)
    optuna = _optuna()
    State = optuna.trial.TrialState
    running: dict[int, object] = {}  # trial number -> its Trial, for the trials this process runs
    reported: dict[int, int] = {}

    def counted() -> int:
        found = study.get_trials(deepcopy=False)
        return sum(t.state in (State.COMPLETE, State.PRUNED, State.RUNNING, State.WAITING) or (t.state == State.FAIL and "error" in t.user_attrs) for t in found)

    def fail(trial, error: str) -> None:
        trial.set_user_attr("error", error.splitlines()[0][:500] if error else "failed")
        study.tell(trial, state=State.FAIL)

    def finish(trial, outcome: Outcome) -> None:
        value = trial_value(outcome.history, outcome.summary, sweep.metric)
        if value is None:
            fail(trial, f"the run recorded no {sweep.metric}")
        else:
            trial.set_user_attr("epochs", (outcome.summary or {}).get("epochs_run"))
            study.tell(trial, value)

    def on_epoch(trial):
        def report(record: dict) -> bool:
            value = record.get(sweep.metric)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or record["epoch"] <= reported.get(trial.number, 0):
                return False
            reported[trial.number] = record["epoch"]
            trial.report(float(value), int(record["epoch"]))
            return trial.should_prune()

        return report

    def next_job() -> Job | None:
        """Ask for a trial; its job, or None when it needs no run (reused, or an error)."""
        trial = study.ask()
        values = {d.path: _suggest(trial, d) for d in sweep.dimensions}
        written = {d.path: d.text(values[d.path]) for d in sweep.dimensions}
        trial.set_user_attr("written", written)
        job = Job(f"trial {trial.number}", out, spec, trial_text(program, sweep, values), name=f"{spec} (trial {trial.number})", on_epoch=on_epoch(trial))
        try:
            job.folder = out / "trials" / compile_job(job).content_hash
        except TrickError as err:
            fail(trial, err.render())
            progress.finished(Outcome(job, "failed", error=err.render()), "failed: " + err.render().splitlines()[0])
            return None
        trial.set_user_attr("folder", str(job.folder.relative_to(out)))
        found = reusable(job)
        if found is not None:
            finish(trial, found)
            progress.finished(found, _line(found, trial_value(found.history, found.summary, sweep.metric), sweep.metric))
            return None
        running[trial.number] = trial
        rdb.record_heartbeat(trial._trial_id)
        return job

    def done() -> int:
        found = study.get_trials(deepcopy=False)
        return sum(t.state in (State.COMPLETE, State.PRUNED) or (t.state == State.FAIL and "error" in t.user_attrs) for t in found)

    progress = Progress(stream, max(total - done(), 0), "trials")
    pool: Pool | None = None
    beat = stale = 0.0
    try:
        while True:
            if time.monotonic() - stale > HEARTBEAT_SECONDS:
                optuna.storages.fail_stale_trials(study)  # dead trials of a stopped sweep, here or elsewhere: retried
                stale = time.monotonic()
            while (pool is None or pool.free) and counted() < total:
                job = next_job()
                if job is None:
                    continue
                if pool is None:
                    train_imports([job], None)
                    pool = Pool(max(1, min(jobs, total)))
                pool.start(job)
            if pool is None or not pool.running:
                break
            for outcome in pool.wait():
                trial = running.pop(int(outcome.job.key.split()[-1]))
                if outcome.status == "finished":
                    finish(trial, outcome)
                elif outcome.status == "pruned":
                    study.tell(trial, state=State.PRUNED)
                else:
                    fail(trial, outcome.error or outcome.status)
                progress.finished(outcome, _line(outcome, trial_value(outcome.history, outcome.summary, sweep.metric), sweep.metric))
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                for trial in running.values():
                    rdb.record_heartbeat(trial._trial_id)
                beat = time.monotonic()
    except KeyboardInterrupt:
        if pool is not None:
            pool.stop()
        for trial in running.values():  # retried with the same values, so its run folder resumes
            study.tell(trial, state=State.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        progress.close()
        write_outputs(study, sweep, program, spec, out)
        raise
    if pool is not None:
        pool.close()
    progress.close()
    return write_outputs(study, sweep, program, spec, out)


def _line(outcome: Outcome, value: float | None, metric: str) -> str:
    if outcome.status in ("finished", "reused") and value is not None:
        return f"{metric} {value:.4f}" + (" (reused)" if outcome.status == "reused" else "")
    if outcome.status == "failed":
        return "failed: " + (outcome.error or "").splitlines()[0] if outcome.error else "failed"
    return outcome.status


def write_outputs(study, sweep: Sweep, program, spec: Path, out: Path) -> SweepResult:
    """trials.csv, sweep.png and best.trick from the study as it stands."""
    optuna = _optuna()
    State = optuna.trial.TrialState
    result = SweepResult(str(spec), out, sweep.metric, sweep.direction)
    for t in study.get_trials(deepcopy=False):
        if t.state == State.WAITING:
            continue
        state = "INTERRUPTED" if t.state == State.FAIL and "error" not in t.user_attrs else t.state.name  # retried with its values
        result.rows.append({
            "number": t.number, "state": state, "value": t.value if t.state == State.COMPLETE else None, "params": dict(t.params),
            "written": dict(t.user_attrs.get("written", {})), "epochs": len(t.intermediate_values), "folder": t.user_attrs.get("folder", ""), "error": t.user_attrs.get("error", ""),
        })
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        paths = [d.path for d in sweep.dimensions]
        writer.writerow(["trial", "state", sweep.metric, *paths, "epochs_reported", "run_folder", "error"])
        for r in result.rows:
            writer.writerow([r["number"], r["state"].lower(), "" if r["value"] is None else f"{r['value']:.6g}", *[r["written"].get(p, "") for p in paths], r["epochs"], r["folder"], r["error"]])
    complete = [r for r in result.rows if r["value"] is not None]
    if complete:
        best = study.best_trial
        result.best = next(r for r in result.rows if r["number"] == best.number)
        text = trial_text(program, sweep, best.params)
        moved = format_program(relocated(parse_text(text, str(out / "best.trick")), spec.parent, out))
        (out / "best.trick").write_text(moved, encoding="utf-8")
        plots.sweep(out / "sweep.png", result.rows, sweep.dimensions, sweep.metric, best.number)
    return result

