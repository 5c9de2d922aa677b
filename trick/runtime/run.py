"""A run: a folder with the spec, the plan, metrics, checkpoints and a summary.

    runs/<spec>/<n>/
        spec.trick      the spec as written
        plan.json       the resolved TrainingPlan
        metrics.jsonl   one line per epoch
        last.pt         everything needed to resume (written atomically after every epoch)
        best.pt         the weights of the best epoch so far
        summary.json    test metrics, best epoch, epochs run, wall time (when finished)
        *.png           curves, weights, decision boundary; tensorboard/ with --tensorboard (report.py)

Before anything is written, `preflight` checks the folder (writable, not a file, empty for a
new run; for --resume a run of this spec with these settings), and the run loads its data,
imports and checkpoint and builds its model. A run that then fails before its first
checkpoint removes what it wrote (`_discard`), so that the same command can be tried again.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from ..compiler import ir
from ..dsl.diagnostics import Diagnostic, TrickCheckError, TrickRuntimeError, TrickUsageError
from . import checkpoint as ckpt
from . import datainfo, distributed, launch, recipe
from .data import load_splits
from .imports import load_imported
from .report import write_reports
from .trainer import Hooks, NonFiniteLoss, Trainer, prefixed, resolve_device
from .tta import tta_enabled, tta_views

RUNS = Path("runs")


@dataclass
class RunResult:
    """What a finished run gives back: its folder, summary, per-epoch metrics and model."""

    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    model: torch.nn.Module | None = None


def _fingerprint(plan: ir.TrainingPlan) -> Any:
    """The plan without source positions: what must not change for a run to be resumed."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith("span")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(ir.to_json(plan))


def run_folder(spec: str, out: str | Path | None, resume: bool, runs: Path = RUNS) -> Path:
    """The folder of this run: `out`, or the next (or, resuming, the latest) runs/<spec>/<n>."""
    if out is not None:
        return Path(out)
    parent = Path(runs) / spec
    numbers = sorted(int(p.name) for p in parent.glob("*") if p.is_dir() and p.name.isdigit()) if parent.is_dir() else []
    if resume:
        if not numbers:
            raise TrickUsageError(f"there is no run of '{spec}' to resume in {parent}")
        return parent / str(numbers[-1])
    return parent / str((numbers[-1] + 1) if numbers else 1)


class Progress:
    """A progress bar on a terminal, one line per epoch otherwise, nothing when quiet."""

    def __init__(self, stream: TextIO | None, epochs: int):
        self.stream, self.epochs = stream, epochs
        self.bar = None
        self.tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()

    def start_epoch(self, epoch: int, steps: int):
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{self.epochs}", file=self.stream, leave=False, dynamic_ncols=True)

    def step(self, step: int, steps: int, loss: float):
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if step % 5 == 0 or step == steps:
                self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end_epoch(self, record: dict[str, Any]):
        self.close()
        if self.stream is None:
            return
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds", "lr", "stage", "train.samples"))
        print(f"epoch {record['epoch']}/{self.epochs}  {metrics}  ({record['seconds']:.1f}s)", file=self.stream, flush=True)


def execute(
    program,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    stream: TextIO | None = sys.stderr,
    hooks: Hooks | None = None,
    runs: Path = RUNS,
    tensorboard: bool = False,
    imported: dict[str, Path] | None = None,
) -> RunResult:
    """Train a compiled program, writing its run folder; return the results as data.

    `imported` gives the run folder of every import the objectives need, by alias (the
    driver, trick/driver.py, trains those that have none first)."""
    plan: ir.TrainingPlan = program.plan
    folder = run_folder(plan.spec, out, resume, runs)
    torch_device = resolve_device(device or plan.device)  # before anything is written
    world = distributed.join(torch_device)  # rank 0 of 1, or this process's place under torchrun / --nproc
    try:
        return _execute(program, folder, world, resume, stream, hooks, tensorboard, imported or {})
    except KeyboardInterrupt as err:
        if isinstance(err, Interrupted):
            raise
        saved = [p for p in (Path(folder) / "last.pt", Path(folder) / "hint.pt") if p.is_file()]
        raise Interrupted(saved[0] if saved else None) from None
    finally:
        # Once _execute's frame (and the DistributedDataParallel in it) is gone: tear down the
        # group this call joined while the interpreter is whole, not in its finalization.
        distributed.leave(world)


def preflight(program, folder: Path, resume: bool) -> bool:
    """Whether `folder` holds this program's finished run (nothing to resume); a usage error
    when it cannot be used for this run. Nothing is written (a folder's writability is tried
    with a temporary folder, removed at once)."""
    folder = Path(folder)
    writable(folder)
    if not resume:
        if folder.is_dir() and any(folder.iterdir()):
            if not (folder / "plan.json").exists():  # files of something else: never mixed with a run's
                raise TrickUsageError(f"{folder} is not empty, and it is not a run folder; choose a new or empty folder for --out")
            raise TrickUsageError(f"{folder} already holds a run; use --resume to continue it, or choose another --out")
        return False
    if not folder.is_dir():
        raise TrickUsageError(f"there is no run to resume in {folder}: the folder does not exist; leave out --resume to start a run there")
    plan_path, summary_path = folder / "plan.json", folder / "summary.json"
    if not any(folder.iterdir()):
        raise TrickUsageError(f"there is no run to resume in {folder}: the folder is empty; leave out --resume to start a run there")
    if not plan_path.is_file():
        raise TrickUsageError(f"{folder} is not a run folder (it has no plan.json), so there is nothing to resume there; choose another --out")
    try:
        theirs = ir.from_json(ir.TrainingPlan, json.loads(plan_path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        raise TrickUsageError(f"{plan_path} cannot be read as a training plan, so {folder} cannot be resumed; start a new run (another --out)") from None
    if theirs.spec != program.plan.spec:
        raise TrickUsageError(f"{folder} holds a run of another spec, '{theirs.spec}', not '{program.plan.spec}'; choose another --out for a new run of '{program.plan.spec}'")
    finished = summary_path.is_file()
    if _fingerprint(theirs) != _fingerprint(program.plan):
        if finished:
            raise TrickUsageError(f"{folder} is a finished run of '{theirs.spec}' with other settings (the spec or --set differ); start a new run (another --out) instead of --resume")
        raise TrickUsageError(f"the spec has changed since {folder} started; start a new run instead of --resume")
    if finished:
        try:
            json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise TrickUsageError(f"{summary_path} cannot be read; move it away to resume {folder} from its last checkpoint") from None
        return True
    for name in ("last.pt", "best.pt", "hint.pt", "metrics.jsonl"):
        if (folder / name).exists() and not (folder / name).is_file():
            raise TrickUsageError(f"cannot resume {folder}: its {name} is a folder, not a file trick wrote; move it away")
    return False


def writable(folder: Path) -> None:
    """A usage error unless `folder` is, or can be made, a folder that can be written: not a
    file, not under a file, not in a read-only place. Nothing is left behind."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise TrickUsageError(f"cannot use {folder} as a run folder: it is a file; choose another --out")
    existing = folder
    while not existing.is_dir():  # the nearest folder that exists (a file on the way is refused)
        parent = existing.parent
        if existing.exists() or existing.is_symlink() and not existing.exists():
            raise TrickUsageError(f"cannot use {folder} as a run folder: {existing} is {'a file' if existing.is_file() else 'not a folder'}; choose another --out")
        if parent == existing:
            break
        existing = parent
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".trick-").cleanup()
    except OSError as err:
        where = "it" if existing == folder else f"{existing}"
        raise TrickUsageError(f"cannot write the run folder {folder}: {where} is not writable ({err.strerror or err}); choose another --out") from None


def _execute(program, folder: Path, world: distributed.World, resume: bool, stream: TextIO | None, hooks: Hooks | None, tensorboard: bool, imported_runs: dict[str, Path]) -> RunResult:
    plan: ir.TrainingPlan = program.plan
    graph: ir.ModelGraph = program.graph
    torch_device = world.device
    if not world.main:
        stream = None  # rank 0 prints and writes the run folder; the others train
    launch.check_batch(program, world.size)
    last_path = folder / "last.pt"
    summary_path, metrics_path, plan_path = folder / "summary.json", folder / "metrics.jsonl", folder / "plan.json"
    if preflight(program, folder, resume):
        summary = json.loads(summary_path.read_text())
        say(stream, f"{folder} is already finished; nothing to resume")
        return RunResult(folder, summary, _read_history(metrics_path))
    check_batchnorm(program, world)

    # Everything that can fail on the data or the imports, before anything is written.
    started = time.perf_counter()
    imported = {alias: load_imported(alias, program.imports[alias], run_dir, torch_device) for alias, run_dir in imported_runs.items()}
    torch.manual_seed(plan.seed)
    splits = load_splits(plan.data, plan.seed, graph.input, stream=stream)
    check_data(program, splits, world)
    model = distributed.synchronize_batchnorm(program.model(), graph, world)
    if hooks is None:
        hooks = recipe.hooks(plan, graph, model, imported, splits)
    trainer = Trainer(model, graph, plan, splits, torch_device, hooks, world)
    recipe.attach(trainer, plan, imported, splits)
    elapsed_before = 0.0
    hint_records: list[dict] = []
    resumed = world.agree(resume and last_path.is_file(), f"whether {last_path} exists")
    if resumed:
        state = ckpt.load(last_path)
        distributed.check_resume(state, world, last_path)
        trainer.restore(state)
        elapsed_before = float(state.get("wall_seconds", 0.0))
        hint_records = list(state.get("hint_history", []))

    world.barrier()  # every process has looked at the folder before rank 0 writes into it
    made = _make_folder(folder) if world.main else []
    try:
        if world.main:
            (folder / "spec.trick").write_text(program.text, encoding="utf-8")
            plan_path.write_text(program.plan_json(), encoding="utf-8")
            datainfo.write(folder, datainfo.describe(plan, graph, splits))
        if resumed:
            say(stream, f"resuming {folder} after epoch {trainer.epoch}")
        elif plan.distill is not None and plan.distill.hint_epochs > 0:
            hint_records = recipe.hint_stage(trainer, plan, imported, splits, folder, resume, stream)
        if not resumed:
            world.split_rng(plan.seed)  # dropout masks differ between processes (rank 0 keeps the single-process stream)
        if world.main:
            metrics_path.write_text("".join(json.dumps(r) + "\n" for r in hint_records + trainer.history))
        return _finish(program, trainer, splits, folder, world, hooks, stream, tensorboard, imported, (started, elapsed_before), hint_records)
    except BaseException:
        if world.main:
            _discard(folder, made)  # when nothing trained: a retry there starts afresh
        raise


def check_batchnorm(program, processes: int | distributed.World = 1) -> None:
    """An error at `batch` when a training step would give a batchnorm a single value per
    channel (batch 1, or 1 sample per process without `sync`): it has no batch statistics."""
    size = processes.size if isinstance(processes, distributed.World) else processes
    plan = program.plan
    for layer in program.graph.all_layers():
        if layer.op != "batchnorm":
            continue
        alone = size > 1 and not layer.args.get("sync", True)
        samples = plan.batch // size if alone else plan.batch
        if samples * math.prod(layer.input[1:]) < 2:
            if alone:
                message = f"batch {plan.batch} split among {size} processes gives the batchnorm with sync=false (line {layer.span.line}) one sample per process in every training step"
            else:
                message = f"batch {plan.batch} gives batchnorm (line {layer.span.line}) a single value per channel in every training step"
            message += f", which has no batch statistics; use batch {2 * size if alone else 2} or more, or layernorm"
            raise TrickCheckError(program.diagnostic(plan.batch_span or layer.span, message))


def check_data(program, splits, world: distributed.World = distributed.SINGLE) -> None:
    """What only the loaded data can tell: labels the model's outputs cannot score (a file's
    classes are not known before it is read), and a training split too small for batchnorm."""
    graph, plan = program.graph, program.plan
    source = plan.data.source
    what = f"the labels of '{source.args.get('path')}'" if source.kind == "file" else "its labels"
    if graph.heads:
        checks = [(h.target, h.classes, h.layers[-1].span if h.layers else h.span, f"head {h.target} has") for h in graph.heads if h.loss == "cross_entropy" and h.classes]
    else:
        width = graph.output[0] if len(graph.output) == 1 else None
        scores = width is not None and (plan.loss.kind == "cross_entropy" or width > 1)
        span = graph.layers[-1].span if graph.layers else graph.span
        checks = [("label", width, span, "the model has")] if scores else []
    for target, outputs, span, has in checks:
        classes = splits.num_classes.get(target)
        if classes is not None and classes > outputs:
            labels = what if target == "label" else f"'{target}'"
            raise TrickCheckError(program.diagnostic(span, f"{has} {outputs} output{'s' * (outputs != 1)}, but the data has {classes} classes ({labels} go up to {classes - 1})"))
    samples = len(splits.x_train) // world.size
    norms = [layer for layer in graph.all_layers() if layer.op == "batchnorm" and math.prod(layer.input[1:]) == 1]
    if norms and samples < 2:
        message = f"the training split has {samples} sample{'s' * (samples != 1)}{' per process' if world.size > 1 else ''}, too few for batchnorm (line {norms[0].span.line}), which needs 2 or more in a batch"
        raise TrickCheckError(program.diagnostic(source.span, message))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; `checkpoint` is the checkpoint to resume from (None: nothing was
    saved, and what the attempt wrote is gone)."""

    def __init__(self, checkpoint: Path | None):
        super().__init__()
        self.checkpoint = checkpoint


# The files a run writes before its first checkpoint (and the temporary ones of ckpt.save).
_EARLY = ("spec.trick", "plan.json", "data.json", "metrics.jsonl", "best.pt", ".best.pt.tmp", ".last.pt.tmp", ".hint.pt.tmp")


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` (and its parents); the folders created, innermost first."""
    made = []
    at = Path(folder)
    while not at.is_dir():
        made.append(at)
        if at.parent == at:
            break
        at = at.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # preflight tried; the file system can still change under a run
        raise TrickUsageError(f"cannot write the run folder {folder}: {err.strerror or err}") from None
    return made


def _discard(folder: Path, made: list[Path]) -> bool:
    """After a failed attempt: when it left no checkpoint (last.pt, or the hint stage's
    hint.pt), remove what it wrote, and the folders it made, so that a retry starts afresh;
    whether it did. A run with a checkpoint keeps everything (--resume continues it)."""
    if (folder / "last.pt").is_file() or (folder / "hint.pt").is_file() or (folder / "summary.json").is_file():
        return False
    for name in _EARLY:
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
    if (folder / "tensorboard").is_dir():
        shutil.rmtree(folder / "tensorboard", ignore_errors=True)
    for at in made:  # innermost first; only folders this attempt made, and only when empty
        try:
            at.rmdir()
        except OSError:
            break
    return True


def _finish(program, trainer: Trainer, splits, folder: Path, world: distributed.World, hooks: Hooks | None, stream: TextIO | None, tensorboard: bool, imported: dict, clock: tuple[float, float], hint_records: list[dict]) -> RunResult:
    """The epochs still to run, the test metrics, summary.json and the reports."""
    plan, model = program.plan, trainer.model
    summary_path = folder / "summary.json"
    _train_epochs(trainer, splits, folder, world, hooks, Progress(stream, plan.epochs), clock, hint_records)
    world.barrier()  # best.pt is written before any process reads it
    best_path = folder / "best.pt"
    restore = plan.early_stop is not None and plan.early_stop.restore == "best" and world.agree(best_path.is_file(), f"whether {best_path} exists")
    if restore:
        model.load_state_dict(ckpt.load(best_path)["model"])
    summary = _summary(program, trainer, folder, world, restore, imported, clock)
    if not world.main:  # rank 0 writes the summary and the reports; the others return when it has
        world.barrier()
        return RunResult(folder, summary, list(trainer.history), model)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_reports(folder, program, model, splits, trainer.history, summary, stream, tensorboard=tensorboard)  # curves.png, ...
    world.barrier()
    return RunResult(folder, summary, list(trainer.history), model)


def _train_epochs(trainer: Trainer, splits, folder: Path, world: distributed.World, hooks: Hooks | None, progress: Progress, clock: tuple[float, float], hint_records: list[dict]) -> None:
    """The epochs still to run: after each, best.pt (when it improved), last.pt and a line of
    metrics.jsonl, written by rank 0."""
    plan, model = trainer.plan, trainer.model
    last_path, best_path, metrics_path = folder / "last.pt", folder / "best.pt", folder / "metrics.jsonl"
    started, elapsed_before = clock
    try:
        while trainer.epoch < plan.epochs and not trainer.state.stopped_early:
            epoch_start = time.perf_counter()
            progress.start_epoch(trainer.epoch + 1, trainer.steps_per_epoch)
            train_metrics = trainer.train_epoch(progress.step)
            record: dict[str, Any] = {"epoch": trainer.epoch + 1, **prefixed("train", train_metrics)}
            if len(trainer.x["val"]):
                record.update(prefixed("val", trainer.evaluate("val")))
            record["train.samples"] = trainer.samples_seen
            record["lr"] = float(trainer.optimizer.param_groups[0]["lr"])  # a 0-d tensor in a compiled run
            record["seconds"] = round(time.perf_counter() - epoch_start, 3)
            trainer.epoch += 1
            trainer.history.append(record)
            if trainer.improved(record) and world.main:
                ckpt.save(best_path, {"format": ckpt.FORMAT, "epoch": trainer.epoch, "model": model.state_dict(), "normalizer": splits.normalizer.state_dict()})
            if hooks is not None and hooks.after_epoch is not None:
                hooks.after_epoch(trainer, trainer.epoch)
            state = trainer.checkpoint()  # in every process: it gathers their generators
            state["wall_seconds"] = elapsed_before + time.perf_counter() - started
            state["hint_history"] = hint_records
            if world.main:
                ckpt.save(last_path, state)
                with open(metrics_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            progress.end_epoch(record)
    except NonFiniteLoss as err:
        progress.close()
        kept = f"the last good checkpoint is {last_path}" if last_path.is_file() else "no epoch had finished, so there is no checkpoint"
        raise TrickRuntimeError(
            Diagnostic(plan.loss.span, f"the loss became {err.value} at epoch {err.epoch}, step {err.step}, and training stopped; {kept}. A smaller learning rate or clip_grad may help")
        ) from None


def _summary(program, trainer: Trainer, folder: Path, world: distributed.World, restore: bool, imported: dict, clock: tuple[float, float]) -> dict[str, Any]:
    """The test metrics (with the restored weights) and what the run did: summary.json."""
    plan = program.plan
    tta = tta_enabled(plan.evaluate)
    test = trainer.evaluate("test", tta=tta)
    if "accuracy" not in test and "label.accuracy" in test:  # a multi-task model's main head
        test = {"loss": test["loss"], "accuracy": test["label.accuracy"], **test}
    started, elapsed_before = clock
    summary = {
        "spec": plan.spec,
        "run_dir": str(folder),
        "test": test,
        "weights": "best" if restore else "last",
        "tta": {"used": tta, "views": tta_views(plan.evaluate)},
        "classes": {h.target: trainer.splits.class_names(h.target) for h in trainer.heads if h.classify},
        "best_epoch": trainer.state.best_epoch,
        "epochs_run": trainer.epoch,
        "stopped_early": trainer.state.stopped_early,
        "final": trainer.history[-1] if trainer.history else {},
        "seed": plan.seed,
        "device": str(world.device),
        "content_hash": program.content_hash,
        "imports": {alias: str(run.run_dir) for alias, run in imported.items()},
        "wall_seconds": round(elapsed_before + time.perf_counter() - started, 2),
    }
    if world.size > 1:
        summary["processes"] = world.size
    return summary


def _read_history(path: Path) -> list[dict]:
    """The lines of metrics.jsonl (one that cannot be read is left out: the summary is what
    a finished run is)."""
    if not path.is_file():
        return []
    history = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            history.append(json.loads(line))
        except ValueError:
            continue
    return history


def say(stream, text: str) -> None:
    """One line of progress for the user (nothing when quiet)."""
    if stream is not None:
        print(text, file=stream, flush=True)


def table(result: RunResult) -> str:
    """The final table a run prints."""
    s = result.summary
    test = s["test"]
    rows = [("run", s["run_dir"]), ("epochs run", f"{s['epochs_run']}" + (" (stopped early)" if s["stopped_early"] else "")), ("best epoch", str(s["best_epoch"]))]
    rows.append(("test weights", s["weights"] + (f", test-time augmentation over {s['tta']['views']} views" if s.get("tta", {}).get("used") else "")))
    for key, value in test.items():
        rows.append((f"test {key}", f"{value:.2%}" if key.endswith("accuracy") else f"{value:.4f}"))
    minutes, seconds = divmod(s["wall_seconds"], 60)
    rows.append(("wall time", f"{int(minutes)}m {seconds:.1f}s" if minutes else f"{seconds:.1f}s"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows) + "\n"
