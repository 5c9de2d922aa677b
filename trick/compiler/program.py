"""`trick.compile(...)`: a checked, lowered spec with its model, plan, source and summary.

Compiling needs no torch; only `.model()` imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, SourceLines, Span, TrickError
from . import ir
from .check import CheckedSpec, check_source
from .lower import lower_or_raise



@dataclass
class Program:
    """A compiled spec."""

    spec: CheckedSpec
    graph: ir.ModelGraph
    plan: ir.TrainingPlan
    warnings: list[Diagnostic]
    overrides: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """Identifies what this program trains: the spec, what it imports, and overrides."""
        import hashlib

        from .lower import content_hash

        spec_hash = content_hash(self.spec)  # what an import of this spec records
        if not self.overrides:
            return spec_hash
        return hashlib.sha256("\0".join((spec_hash, *self.overrides)).encode()).hexdigest()[:16]

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

    def diagnostic_at(self, block: str, clause: str, param: str | None, message: str) -> Diagnostic:
        """An error about a clause of this spec that only running it can find (a batch that does
        not divide among the processes): at the clause's value, or at the block when the spec
        leaves the clause to its default, with its source line (a `--set` one's too)."""
        bound = self.spec.clause(block, clause)
        program = self.spec.program
        if bound is not None:
            span = bound.span_of(param) if param else bound.span
        else:
            blocks = (i.chain[0] for i in program.items if isinstance(i, ast.Line) and len(i.chain) == 1 and i.chain[0].body is not None)
            span = next((b.name_span for b in blocks if b.name == block), Span.point(program.file, 1, 1))
        lines = SourceLines()
        lines.add(program.file, program.text)
        if self.overrides:
            from .overrides import parse_setting

            for index, setting in enumerate(self.overrides):
                try:
                    _, _, _, setting_clause, text = parse_setting(setting, index)
                except TrickError:
                    continue
                lines.add(setting_clause.span.file, text)
        return lines.attach(Diagnostic(span, message))

    def plan_json(self) -> str:
        return json.dumps(ir.to_json(self.plan), indent=2) + "\n"

    def frozen_layers(self) -> set[str]:
        """Names of the layers that `transfer ... freeze true` keeps fixed."""
        transfer = self.plan.transfer
        return set(transferred_layers(self.graph, transfer)) if transfer is not None and transfer.freeze else set()

    def summary(self) -> str:
        """A table of layers, labels, output shapes and parameter counts, with totals."""
        frozen = self.frozen_layers()
        rows = [("input", "", "", _shape(self.graph.input), 0, 0)]

        def add(layers, prefix="", indent=""):
            for layer in layers:
                trainable = 0 if layer.name in frozen else layer.params
                params = layer.params if not layer.body else sum(l.params for l in layer.body)
                rows.append((indent + prefix + layer.name, layer.op, layer.label or "", _shape(layer.output), params, trainable))
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


def _shape(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def transferred_layers(graph: ir.ModelGraph, transfer: ir.Transfer) -> list[str]:
    """Names of the layers `transfer` copies into this network."""
    from .objectives import transferred

    return [layer.name for layer in transferred(graph, transfer.layers, transfer.labels)]


def compile_source(source, name: str | None = None, overrides: list[str] | None = None) -> Program:
    """Check and lower a spec (text or path), with `--set` overrides; raise a TrickError
    with every error."""
    result = check_source(source, name, overrides)
    spec = result.raise_for_errors()
    graph, plan = lower_or_raise(spec)
    return Program(spec, graph, plan, [d for d in result.diagnostics if d.severity == "warning"], tuple(overrides or ()))
