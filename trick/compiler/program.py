"""`trick.compile(...)`: a compiled spec with its model, plan, source and summary.

A Program is what the pipeline (pipeline.py) gives the later stages: the IR (graph and
plan), the spec's text as written, its compiled imports, and the source lines its
diagnostics point into. The runtime reads these and never the AST. Compiling needs no
torch; only `.model()` and `.augment()` (through the hook below) import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..dsl.diagnostics import Diagnostic, SourceLines, Span, TrickUsageError
from . import ir
from .ir import show_shape

# `Program.augment` runs the runtime's augmentation engine, which the compiler may not import
# (the arrows point compiler -> runtime, never back). The package level, trick/__init__.py,
# which may import both, installs the function here when `trick` is imported: that happens
# before any module of the package runs, so every Program finds it. It imports the runtime
# (and torch) only when called, so compiling and `trickc check` stay free of them.
_augment_hook: Callable[..., Any] | None = None


def install_augment(hook: Callable[..., Any]) -> None:
    """Set what `Program.augment(x, seed=, generator=)` calls: hook(program, x, seed, generator)."""
    global _augment_hook
    _augment_hook = hook


@dataclass
class Program:
    """A compiled spec."""

    graph: ir.ModelGraph
    plan: ir.TrainingPlan
    warnings: list[Diagnostic]
    text: str  # the spec as written (a run folder keeps it as spec.trick)
    spec_hash: str  # of the file and, recursively, everything it imports
    imports: dict[str, Program] = field(default_factory=dict)  # compiled imports, by alias
    overrides: tuple[str, ...] = ()
    lines: SourceLines = field(default_factory=SourceLines, repr=False)  # for the diagnostics of later stages

    @property
    def content_hash(self) -> str:
        """Identifies what this program trains: the spec, what it imports, and overrides."""
        import hashlib

        if not self.overrides:
            return self.spec_hash
        return hashlib.sha256("\0".join((self.spec_hash, *self.overrides)).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return self.graph.name

    def model(self, seed: int | None = None):
        """A fresh nn.Module; with `seed`, initialized as torch.manual_seed(seed) makes it."""
        from .build import build

        if seed is not None:
            import torch

            torch.manual_seed(seed)
        return build(self.graph)

    def augment(self, x, seed: int | None = None, *, generator=None):
        """The training augmentation of a batch `x` of raw inputs (a tensor or numpy array
        [N, *input shape], before `normalize`), exactly as the trainer applies it: the same
        operations and the same draws for the same generator state. `seed` (default 0) draws
        from a fresh torch.Generator().manual_seed(seed); `generator=` draws from (and
        advances) a CPU generator of your own. Returns a tensor for a tensor, an array for an
        array; `x` itself when the spec has no `augment` block. A batch of another shape is a
        TrickUsageError."""
        if _augment_hook is None:  # only if trick/__init__.py did not run, which Python does not allow
            raise TrickUsageError("Program.augment needs the runtime; import trick first")
        return _augment_hook(self, x, seed, generator)

    def source(self) -> str:
        """Standalone PyTorch source defining the same module."""
        from .codegen import generate

        return generate(self.graph, self.plan.spec_path and os.path.relpath(self.plan.spec_path))

    def diagnostic(self, span: Span | None, message: str) -> Diagnostic:
        """An error that only running the spec can find, at `span` (or the spec's first line),
        with its source line (a `--set` one's too)."""
        return self.lines.attach(Diagnostic(span or Span.point(self.plan.spec_path or self.plan.spec, 1, 1), message))

    def plan_json(self) -> str:
        import json  # here: `trickc check` does not need it

        return json.dumps(ir.to_json(self.plan), indent=2) + "\n"

    def frozen_layers(self) -> set[str]:
        """Names of the layers that `transfer ... freeze true` keeps fixed."""
        transfer = self.plan.transfer
        return set(transferred_layers(self.graph, transfer)) if transfer is not None and transfer.freeze else set()

    def summary(self) -> str:
        """A table of layers, labels, output shapes and parameter counts, with totals (the
        parameters `transfer ... freeze true` keeps fixed are not trainable, inside residual
        blocks too)."""
        frozen = self.frozen_layers()  # names, and submodule paths inside residual blocks

        def fixed(layer, path: str, above: bool = False) -> int:
            """The parameters of `layer` (at submodule `path`) that are frozen."""
            if above or path in frozen:
                return layer.params
            return sum(fixed(inner, f"{path}.{inner.name}") for inner in layer.body)

        rows = [("input", "", "", show_shape(self.graph.input), 0, 0)]

        def add(layers, prefix="", indent="", trunk=True, above=False):
            for layer in layers:
                path = prefix + layer.name
                params = layer.params if not layer.body else sum(l.params for l in layer.body)
                trainable = params - (fixed(layer, path, above) if trunk else 0)
                rows.append((indent + layer.name, layer.op, layer.label or "", show_shape(layer.output), params, trainable))
                add(layer.body, path + ".", indent + "  ", trunk, above or path in frozen)

        add(self.graph.layers)
        for head in self.graph.heads:
            rows.append((f"head {head.target}", f"{head.loss} ×{head.weight:g}", "", "", None, None))
            add(head.layers, "", "  ", trunk=False)
        total = self.graph.params
        trainable = total - sum(fixed(layer, layer.name) for layer in self.graph.layers)
        header = ("layer", "op", "label", "output", "params", "trainable")
        table = [header] + [(r[0], r[1], r[2], r[3], "" if r[4] is None else f"{r[4]:,}", "" if r[5] is None else f"{r[5]:,}") for r in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(6)]

        def line(row):
            left = "  ".join(str(row[i]).ljust(widths[i]) for i in range(4))
            right = "  ".join(str(row[i]).rjust(widths[i]) for i in range(4, 6))
            return (left + "  " + right).rstrip()

        rule = "-" * len(line(header))
        out = [f"{self.name}", rule, line(header), rule] + [line(r) for r in table[1:]] + [rule]
        out.append(f"total parameters: {total:,}   trainable: {trainable:,}   frozen: {total - trainable:,}")
        return "\n".join(out) + "\n"


def transferred_layers(graph: ir.ModelGraph, transfer: ir.Transfer) -> list[str]:
    """Names of the layers `transfer` copies into this network."""
    return [layer.name for layer in graph.transferred(transfer.layers, transfer.labels)]
