"""Linking: the checks that join two specs (transfer and distillation), on their graphs.

They need both networks' shapes, so they run after the spec and its imports are lowered; the
imports' graphs are passed in (nothing is lowered again here). No torch.
"""

from __future__ import annotations

from ..dsl.diagnostics import Diagnostic
from . import ir
from .ir import regressor_shape, show_shape


def _describe(layer: ir.Layer) -> str:
    return f"{layer.op} {show_shape(layer.input)} -> {show_shape(layer.output)} ({layer.params:,} parameters)"


def check_transfer(plan: ir.TrainingPlan, graph: ir.ModelGraph, source: ir.ModelGraph) -> list[Diagnostic]:
    """Each copied layer must have the same op and parameter shapes in both networks."""
    transfer = plan.transfer
    if transfer is None:
        return []
    theirs = source.transferred(transfer.layers, transfer.labels)
    mine = graph.transferred(transfer.layers, transfer.labels)
    if len(theirs) != len(mine):
        return [Diagnostic(transfer.span, f"'{source.name}' gives {len(theirs)} layers to copy ({', '.join(l.name for l in theirs)}), but this model takes {len(mine)} ({', '.join(l.name for l in mine)})")]
    for a, b in zip(theirs, mine):
        if (a.op, a.input, a.output, a.params, a.args.get("bias"), a.args.get("affine")) != (b.op, b.input, b.output, b.params, b.args.get("bias"), b.args.get("affine")):
            return [Diagnostic(transfer.span, f"cannot copy {a.name} of '{source.name}' into {b.name}: it is {_describe(a)}, but here it is {_describe(b)}")]
    return []


def check_distill(plan: ir.TrainingPlan, graph: ir.ModelGraph, teacher: ir.ModelGraph) -> list[Diagnostic]:
    """The hint's regressor can be built, and teacher and student give the same outputs."""
    distill = plan.distill
    if distill is None:
        return []
    errors = []
    mine, theirs = graph.labels(), teacher.labels()
    for hint_label, guided_label in distill.hints:
        if hint_label not in theirs or guided_label not in mine:
            continue  # the checker reported it
        shape = regressor_shape(mine[guided_label].output, theirs[hint_label].output, distill.regressor)
        if isinstance(shape, str):
            errors.append(Diagnostic(distill.span, shape))
    if len(distill.hints) > 1:
        errors.append(Diagnostic(distill.span, "FitNets trains with one hint; give one 'hint TEACHER.LABEL -> LABEL'"))
    if graph.heads:
        errors.append(Diagnostic(distill.span, "distillation needs a single-output student (this model has heads)"))
    if teacher.heads:
        errors.append(Diagnostic(distill.span, f"the teacher '{teacher.name}' has heads; distillation needs a single-output teacher"))
    elif graph.output != teacher.output:
        errors.append(Diagnostic(distill.span, f"the teacher's output {show_shape(teacher.output)} and the student's {show_shape(graph.output)} differ"))
    return errors


def link(plan: ir.TrainingPlan, graph: ir.ModelGraph, imports: dict[str, ir.ModelGraph | None]) -> list[Diagnostic]:
    """Transfer and distillation checks against the imported specs' networks (by alias;
    None where an import did not compile)."""
    errors: list[Diagnostic] = []
    for alias, check in ((plan.transfer and plan.transfer.source, check_transfer), (plan.distill and plan.distill.teacher, check_distill)):
        other = imports.get(alias) if alias else None
        if other is not None:
            errors += check(plan, graph, other)
    return errors
