"""Compile-time checks of the objectives that join two specs: transfer and distillation.

They need both networks' shapes, so they run after both specs are lowered (still no torch).
"""

from __future__ import annotations

import math

from ..dsl.diagnostics import Diagnostic
from . import ir
from .lower import _show, lower
from .registry import NORM_LAYERS, WEIGHT_LAYERS


def _describe(layer: ir.Layer) -> str:
    return f"{layer.op} {_show(layer.input)} -> {_show(layer.output)} ({layer.params:,} parameters)"


def transferred(graph: ir.ModelGraph, layers: int | None, labels: tuple[str, ...] | None) -> list[ir.Layer]:
    """The layers `transfer` copies: the first K weight layers with the norms that follow
    each, or the parameterized layers of the labelled lines."""
    trunk = list(graph.layers)
    if labels is not None:
        found: list[ir.Layer] = []
        for label in labels:
            end = next((i for i, layer in enumerate(trunk) if layer.label == label), None)
            if end is None:
                continue
            start = end
            while start > 0 and trunk[start - 1].span.line == trunk[end].span.line and trunk[start - 1].label is None:
                start -= 1
            found += [layer for layer in trunk[start : end + 1] if layer.params]
        return found
    found, count = [], 0
    for layer in trunk:
        if layer.op in WEIGHT_LAYERS:
            count += 1
            if count > (layers or 0):
                break
            found.append(layer)
        elif layer.op in NORM_LAYERS and count and layer.params:
            found.append(layer)
    return found


def check_transfer(plan: ir.TrainingPlan, graph: ir.ModelGraph, source: ir.ModelGraph) -> list[Diagnostic]:
    """Each copied layer must have the same op and parameter shapes in both networks."""
    transfer = plan.transfer
    if transfer is None:
        return []
    theirs = transferred(source, transfer.layers, transfer.labels)
    mine = transferred(graph, transfer.layers, transfer.labels)
    if len(theirs) != len(mine):
        return [Diagnostic(transfer.span, f"'{source.name}' gives {len(theirs)} layers to copy ({', '.join(l.name for l in theirs)}), but this model takes {len(mine)} ({', '.join(l.name for l in mine)})")]
    for a, b in zip(theirs, mine):
        if (a.op, a.input, a.output, a.params, a.args.get("bias"), a.args.get("affine")) != (b.op, b.input, b.output, b.params, b.args.get("bias"), b.args.get("affine")):
            return [Diagnostic(transfer.span, f"cannot copy {a.name} of '{source.name}' into {b.name}: it is {_describe(a)}, but here it is {_describe(b)}")]
    return []


def regressor_shape(guided: tuple[int, ...], hint: tuple[int, ...], kind: str) -> tuple[int, int] | str:
    """The FitNets regressor r for guided -> hint: (kernel size, output channels) of a conv,
    (inputs, outputs) of a dense layer; or why it cannot be built."""
    if kind == "dense":
        return math.prod(guided), math.prod(hint)
    if len(guided) != len(hint) or len(guided) not in (2, 3):
        return f"a conv regressor needs the guided layer {_show(guided)} and the hint {_show(hint)} to be both sequences or both images; use 'regressor dense'"
    if guided[1:] != hint[1:] and len(set(g - h for g, h in zip(guided[1:], hint[1:]))) != 1:
        return f"a conv regressor cannot map {_show(guided)} to {_show(hint)} with a square kernel; use 'regressor dense'"
    k = guided[1] - hint[1] + 1
    if k < 1:
        return f"the guided layer {_show(guided)} is smaller than the hint {_show(hint)}; a conv regressor cannot grow it; use 'regressor dense'"
    return k, hint[0]


def check_distill(plan: ir.TrainingPlan, graph: ir.ModelGraph, teacher: ir.ModelGraph) -> list[Diagnostic]:
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
        errors.append(Diagnostic(distill.span, f"the teacher's output {_show(teacher.output)} and the student's {_show(graph.output)} differ"))
    return errors


def cross_check(spec, plan: ir.TrainingPlan, graph: ir.ModelGraph) -> list[Diagnostic]:
    """Transfer and distillation checks against the imported specs' networks."""
    errors: list[Diagnostic] = []
    for alias, check in ((plan.transfer and plan.transfer.source, check_transfer), (plan.distill and plan.distill.teacher, check_distill)):
        other = spec.imports.get(alias) if alias else None
        if other is None:
            continue
        other_graph, _, other_errors = lower(other)
        if other_graph is not None and not other_errors:
            errors += check(plan, graph, other_graph)
    return errors
