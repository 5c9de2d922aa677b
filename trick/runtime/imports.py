"""Imports that train: the run of an imported spec, trained first when it has none.

A finished run of an imported spec is reused while the spec file and everything it imports
are unchanged (their content hash is in the run's summary.json); otherwise the imported spec
is trained first, into runs/<spec>/<n> as if `trickc run` had been called on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..compiler import ir
from . import checkpoint as ckpt
from .data import Normalizer


@dataclass
class ImportedRun:
    """A trained, imported spec: its program, run folder, model (eval mode, frozen) and the
    normalizer its inputs need."""

    alias: str
    program: object
    run_dir: Path
    model: torch.nn.Module
    normalizer: Normalizer

    def inputs(self, x: torch.Tensor, mine: Normalizer) -> torch.Tensor:
        """This run's view of inputs normalized by `mine`: undo it, apply its own, reshape."""
        raw = x * mine.scale.to(x) + mine.shift.to(x) if mine.kind is not None else x
        return self.normalizer(raw).reshape(len(x), *self.program.graph.input)


def finished_run(runs: Path, spec: str, content_hash: str) -> Path | None:
    """The latest finished run of `spec` made from exactly this content, if any."""
    folder = runs / spec
    if not folder.is_dir():
        return None
    candidates = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
    for run_dir in candidates:
        summary = run_dir / "summary.json"
        if summary.is_file() and (run_dir / "best.pt").is_file():
            try:
                if json.loads(summary.read_text()).get("content_hash") == content_hash:
                    return run_dir
            except ValueError:
                continue
    return None


def ensure_trained(imp: ir.ImportPlan, runs: Path, device: str | None, stream) -> Path:
    """The run folder of a finished run of the imported spec, training it first if needed."""
    from ..compiler.program import compile_source
    from .run import execute

    found = finished_run(runs, imp.name, imp.content_hash)
    if found is not None:
        _say(stream, f"using {found} for '{imp.alias}' ({imp.name}, unchanged since that run)")
        return found
    _say(stream, f"'{imp.alias}' ({imp.name}) has no finished run of its current version; training it first")
    result = execute(compile_source(imp.path), None, device=device, stream=stream, runs=runs)
    _say(stream, f"trained '{imp.alias}' in {result.run_dir}; back to the spec that imports it")
    return result.run_dir


def load_imported(imp: ir.ImportPlan, run_dir: Path, device: torch.device) -> ImportedRun:
    """The imported spec's model with its best weights, frozen, in eval mode."""
    from ..compiler.program import compile_source

    program = compile_source(imp.path)
    best = ckpt.load(run_dir / "best.pt")
    model = program.model()
    model.load_state_dict(best["model"])
    model.to(device).eval().requires_grad_(False)
    normalizer = Normalizer()
    normalizer.load_state_dict(best["normalizer"])
    return ImportedRun(imp.alias, program, run_dir, model, normalizer)


def _say(stream, text: str) -> None:
    if stream is not None:
        print(text, file=stream, flush=True)
