"""The driver, above the stages: what `trickc run` and `trick.run` do with a compiled program.

    compile (trick.compiler.pipeline)  ->  train the imports that have no finished run yet
                                           (into runs/ next to each imported spec file)
                                       ->  train the spec (trick.runtime.run.execute)

or, with `--nproc N`, start N workers that each do the same. The runtime receives compiled
programs only; this module is where a program's imports become run folders.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .dsl.diagnostics import TrickUsageError
from .runtime import launch, recipe
from .runtime.imports import finished_run
from .runtime.run import RUNS, RunResult, check_batchnorm, execute, preflight, run_folder, say
from .runtime.trainer import Hooks, resolve_device


def train(
    program,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    stream: TextIO | None = sys.stderr,
    hooks: Hooks | None = None,
    runs: Path | None = None,
    tensorboard: bool = False,
) -> RunResult:
    """Train a compiled program into its run folder (`out`, or the next runs/<spec>/<n>),
    training first the imports its objectives need that have no finished run of their
    current version.

    `runs` is where default run folders go: for the spec, ./runs (of the working directory)
    when it is None; for an import, the `runs/` folder next to the imported spec file, so
    that its run is found again from any working directory. A `runs` given is used for both."""
    plan = program.plan
    folder = run_folder(plan.spec, out, resume, RUNS if runs is None else Path(runs))
    resolve_device(device or plan.device)  # a usage error before any import trains
    finished = preflight(program, folder, resume)  # a finished run needs no imports trained
    check_batchnorm(program, launch.env_world_size() or 1)
    imported = {} if finished else train_imports(program, runs, device, stream)
    return execute(program, folder, resume=resume, device=device, stream=stream, hooks=hooks, runs=RUNS if runs is None else Path(runs), tensorboard=tensorboard, imported=imported)


def train_imports(program, runs: Path | None, device: str | None, stream: TextIO | None) -> dict[str, Path]:
    """The run folder of each import the plan's objectives use, by alias."""
    needed = recipe.needed_imports(program.plan)
    return {imp.alias: ensure_trained(imp, program.imports[imp.alias], runs, device, stream) for imp in program.plan.imports if imp.alias in needed}


def import_runs(imp, runs: Path | None = None) -> Path:
    """Where the runs of an imported spec go: `runs`, or the runs/ folder next to its file
    (relative to the working directory when it is under it, as messages show it)."""
    if runs is not None:
        return Path(runs)
    folder = Path(imp.path).resolve().parent / "runs"
    try:
        return folder.relative_to(Path.cwd().resolve())
    except ValueError:
        return folder


def ensure_trained(imp, program, runs: Path | None, device: str | None, stream: TextIO | None) -> Path:
    """The folder of a finished run of an imported spec (`imp`, compiled as `program`),
    training it first, into <runs>/<spec>/<n> (import_runs), if it has none."""
    where = import_runs(imp, runs)
    found = finished_run(where, imp.name, imp.content_hash)
    if found is not None:
        say(stream, f"using {found} for '{imp.alias}' ({imp.name}, unchanged since that run)")
        return found
    say(stream, f"'{imp.alias}' ({imp.name}) has no finished run of its current version; training it first")
    result = train(program, run_folder(imp.name, None, False, where), device=device, stream=stream, runs=runs)
    say(stream, f"trained '{imp.alias}' in {result.run_dir}; back to the spec that imports it")
    return result.run_dir


def start_workers(program, nproc: int | None, argv: Sequence[str]) -> int | None:
    """With `--nproc N` (N > 1) outside torchrun: run N workers and return their exit code;
    None when this process trains by itself (alone, or as one of torchrun's workers)."""
    workers = launch.env_world_size()  # set when torchrun (or `--nproc`) started this process
    if nproc is not None and workers is not None and nproc != workers:
        raise TrickUsageError(f"--nproc {nproc} asks for {nproc} processes, but this one was started as one of {workers} (WORLD_SIZE); leave --nproc out under torchrun")
    if nproc is not None and nproc > 1 and workers is None:
        launch.check_batch(program, nproc)  # here, once, rather than in every worker
        return launch.launch(launch.strip_nproc(argv), nproc)
    return None
