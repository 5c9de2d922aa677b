"""Imports that train: the finished run of an imported spec, and its model.

A finished run of an imported spec is reused while the spec file and everything it imports
are unchanged (their content hash is in the run's summary.json); the driver (trick/driver.py)
trains the imported spec first when it has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..dsl.diagnostics import Diagnostic, Span
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
                if json.loads(summary.read_text(encoding="utf-8")).get("content_hash") == content_hash:
                    return run_dir
            except (OSError, ValueError, AttributeError):  # unreadable, or not a summary: not a finished run
                continue
    return None


def load_imported(alias: str, program, run_dir: Path, device: torch.device) -> ImportedRun:
    """The imported spec's model (its compiled program, from the importing one) with its
    best weights, frozen, in eval mode."""
    path = run_dir / "best.pt"
    best = ckpt.load(path)
    model = program.model()
    normalizer = Normalizer()
    try:
        model.load_state_dict(best["model"])
        normalizer.load_state_dict(best["normalizer"])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:  # a checkpoint of another network
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ckpt.CheckpointError(Diagnostic(Span.point(str(path), 1, 1), f"these weights do not fit the network of '{alias}' ({program.plan.spec}): {reason}; remove {run_dir} to train it again")) from None
    model.to(device).eval().requires_grad_(False)
    return ImportedRun(alias, program, run_dir, model, normalizer)
