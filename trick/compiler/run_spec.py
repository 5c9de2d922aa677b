"""The compiled program of a run folder: the spec it trained, as it trained it.

A run folder keeps the spec as written (spec.trick) and the resolved plan (plan.json). The
spec is compiled as the file it was copied from (plan.json's `spec_path`), so that its imports
resolve as they did; the plan of plan.json replaces the compiled one, so that `--set`
overrides of that run (which change no layer) are kept. No torch.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..dsl.diagnostics import TrickUsageError
from . import ir
from .pipeline import run_pipeline
from .program import Program


def is_run_folder(path: str | Path) -> bool:
    """Whether `path` is a folder that `trickc run` wrote (it has spec.trick and plan.json)."""
    path = Path(path)
    return path.is_dir() and (path / "spec.trick").is_file() and (path / "plan.json").is_file()


def saved_plan(run_dir: Path) -> ir.TrainingPlan | None:
    """plan.json as a TrainingPlan; None when it cannot be read as one."""
    try:
        return ir.from_json(ir.TrainingPlan, json.loads((run_dir / "plan.json").read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        return None


def compile_run(run_dir: str | Path) -> Program:
    """The program of a run: spec.trick compiled where the spec was, with plan.json's plan.

    A folder that does not exist, or that is not a run folder, is a TrickUsageError; a spec
    that no longer compiles (an import that has moved) is the TrickError of its diagnostics."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise TrickUsageError(f"there is no run folder {run_dir}")
    if not run_dir.is_dir():
        raise TrickUsageError(f"{run_dir} is a file, not a run folder; name the folder that `trickc run` wrote (runs/SPEC/N, or its --out)")
    if not (run_dir / "spec.trick").is_file():
        raise TrickUsageError(f"{run_dir} is not a run folder: it has no spec.trick (a folder that `trickc run` wrote has spec.trick, plan.json and the weights)")
    plan = saved_plan(run_dir)
    origin = None
    if plan is not None:
        origin = plan.spec_path or str(Path(plan.data.base_dir) / "spec.trick")
    try:
        text = (run_dir / "spec.trick").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TrickUsageError(f"cannot read {run_dir / 'spec.trick'}: {getattr(err, 'strerror', None) or err}") from None
    program = run_pipeline(text, str(run_dir / "spec.trick"), origin=origin).program()
    if plan is not None and plan.spec == program.plan.spec:
        program = dataclasses.replace(program, plan=plan)
    return program
