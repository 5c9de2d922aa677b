"""`trick.compile(...)`: a compiled spec with its model, plan, source and summary.

A Program is what the pipeline (pipeline.py) gives the later stages: the IR (graph and
plan), the spec's text as written, its compiled imports, and the source lines its
diagnostics point into. The runtime reads these and never the AST. Compiling needs no
torch; only `.model()` imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..dsl.diagnostics import Diagnostic, SourceLines, Span
from . import ir
from .ir import show_shape


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

    def source(self) -> str:
        """Standalone PyTorch source defining the same module."""
        from .codegen import generate

        return generate(self.graph, self.plan.spec_path and os.path.relpath(self.plan.spec_path))

    def diagnostic(self, span: Span | None, message: str) -> Diagnostic:
        """An error that only running the spec can find, at `span` (or the spec's first line),
        with its source line (a `--set` one's too)."""
        return self.lines.attach(Diagnostic(span or Span.point(self.plan.spec_path or self.plan.spec, 1, 1), message))

    def plan_json(self) -> str:
        return json.dumps(ir.to_json(self.plan), indent=2) + "\n"

    def frozen_layers(self) -> set[str]:
        """Names of the layers that `transfer ... freeze true` keeps fixed."""
        transfer = self.plan.transfer
        return set(transferred_layers(self.graph, transfer)) if transfer is not None and transfer.freeze else set()

    def summary(self) -> str:
        """A table of layers, labels, output shapes and parameter counts, with totals."""
        frozen = self.frozen_layers()
        rows = [("input", "", "", show_shape(self.graph.input), 0, 0)]

        def add(layers, prefix="", indent=""):
            for layer in layers:
                trainable = 0 if layer.name in frozen else layer.params
                params = layer.params if not layer.body else sum(l.params for l in layer.body)
                rows.append((indent + prefix + layer.name, layer.op, layer.label or "", show_shape(layer.output), params, trainable))
                add(layer.body, prefix, indent + "  ")

        add(self.graph.layers)
        for head in self.graph.heads:
            rows.append((f"head {head.target}", f"{head.loss} ×{head.weight:g}", "", "", None, None))
            add(head.layers, "", "  ")
        total = self.graph.params
        trainable = total - sum(l.params for l in self.graph.all_layers() if l.name in frozen and not l.body)
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
