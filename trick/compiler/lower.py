"""Lowering a checked spec to the IR, with shape inference (no torch).

Each layer's registry entry (clauses/layers.py) has its shape rule: input shape and arguments
in, output shape and parameter count out, or a `ShapeError` whose message states the shapes.
Rules never import torch, so `trickc check` runs them too. The plan is lowered in plan.py.
"""

from __future__ import annotations

import dataclasses
import keyword
import math

from ..dsl.diagnostics import Diagnostic, Span
from . import ir
from .check import Bound, CheckedSpec, ModelItem
from .ir import show_shape as _show
from .memory import check_memory
from .plan import PlanLowering, expr_json
from .shapes import ShapeError

Shape = tuple[int, ...]

# Attribute names a submodule must not take (they would shadow nn.Module's own).
RESERVED_NAMES = frozenset(
    ["T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "heads", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad"]
)


def safe_name(label: str) -> str:
    """A label as a submodule name: Python keywords and nn.Module's own names get a '_'."""
    if label.startswith("_"):
        return "layer" + label
    return label + "_" if keyword.iskeyword(label) or label in RESERVED_NAMES else label


# ---- lowering -------------------------------------------------------------------------------------------


class _Lowering(PlanLowering):
    def __init__(self, spec: CheckedSpec):
        self.spec = spec
        self.errors: list[Diagnostic] = []
        self.taken: set[str] = set()
        self.counters: dict[str, int] = {}

    def error(self, span: Span, message: str) -> None:
        self.errors.append(Diagnostic(span, message))

    def warning(self, span: Span, message: str) -> None:
        self.errors.append(Diagnostic(span, message, "warning"))

    def check_single_value_norm(self, bound: Bound, shape: Shape) -> None:
        """A warning where a layer norm would normalize a single value: x − mean is 0, so its
        output is its bias whatever the input. `layernorm` normalizes the whole sample (over
        [1] or [1, 1], a single value; over [1, L], L values). The layer-normalized GRU and
        LSTM normalize summed inputs over 2·hidden, 4·hidden and hidden values (never the
        input's projection alone), so only `hidden` 1 leaves a single value."""
        if bound.name == "layernorm" and math.prod(shape) == 1:
            self.warning(
                bound.clause.name_span,
                f"layernorm on {_show(shape)} normalizes a single value: its output is the same for every input (x − mean is 0); "
                "normalize over more features, or remove it",
            )
        elif bound.name in ("gru", "lstm") and bound.values.get("norm") == "layer" and bound.values.get("hidden") == 1:
            part = "candidate" if bound.name == "gru" else "cell state"
            self.warning(
                bound.span_of("hidden"),
                f"{bound.name} 1 norm=layer normalizes its {part} over a single value: it is the same for every input (x − mean is 0); "
                "use more hidden units, or norm=none",
            )

    # -- names ---------------------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        """The first free name `base1`, `base2`, ... (never a label of the spec)."""
        n = self.counters.get(base, 0)
        while True:
            n += 1
            name = f"{base}{n}"
            if name not in self.taken and name not in self.labels:
                self.counters[base] = n
                self.taken.add(name)
                return name

    def line_names(self, ops: list[str], label: str | None) -> list[str]:
        """Submodule names for one line: `conv1, relu1`, or from its label: `block2_conv, ...`."""
        if label is None:
            return [self.fresh(op) for op in ops]
        base = safe_name(label)
        wanted = [base] if len(ops) == 1 else []
        if not wanted:
            seen: dict[str, int] = {}
            for op in ops:
                seen[op] = seen.get(op, 0) + 1
                wanted.append(f"{base}_{op}" + (str(seen[op]) if seen[op] > 1 else ""))
        names = []
        for name in wanted:
            if name in self.taken:
                name = self.fresh(name + "_")
            self.taken.add(name)
            names.append(name)
        return names

    # -- the model -------------------------------------------------------------------------------------

    def model(self) -> ir.ModelGraph | None:
        spec = self.spec
        self.labels = set(spec.labels())
        block = spec.program.block("model")
        items = spec.model
        if not items or items[0].bound.name != "input":
            return None
        shape = tuple(items[0].bound.values["shape"])
        self.check_data_shape(shape, items[0].bound)
        trunk_items = [i for i in items[1:] if i.bound.name != "head"]
        layers, out = self.sequence(trunk_items, shape)
        heads = []
        if out is not None:
            for item in (i for i in items if i.bound.name == "head"):
                head = self.head(item, out)
                if head is not None:
                    heads.append(head)
            if not any(i.bound.name == "head" for i in items):
                self.check_output(out, layers[-1] if layers else None)
        if out is None:
            return None
        return ir.ModelGraph(spec.program.name or "model", shape, tuple(layers), tuple(heads), out, block.span)

    def sequence(self, items: list[ModelItem], shape: Shape) -> tuple[list[ir.Layer], Shape | None]:
        """Lower items in order from `shape`; the output shape, or None after an error."""
        layers: list[ir.Layer] = []
        previous: str | None = None
        for line_items, label in _group_lines(items):
            first = line_items[0].bound
            if first.name == "repeat":
                for _ in range(first.values["times"]):
                    inner, shape = self.sequence(line_items[0].body or [], shape)
                    layers += inner
                    if shape is None:
                        return layers, None
                if label is not None and layers:
                    layers[-1] = dataclasses.replace(layers[-1], label=label)
                previous = layers[-1].op if layers else previous
                continue
            names = self.line_names([i.bound.name for i in line_items], label)
            for index, (item, name) in enumerate(zip(line_items, names)):
                bound = item.bound
                layer_label = label if index == len(line_items) - 1 else None
                if bound.name == "residual":
                    inner, out = self.sequence(item.body or [], shape)
                    if out is None:
                        return layers, None
                    if out != shape:
                        self.error(bound.clause.name_span, f"residual block changes the shape {_show(shape)} -> {_show(out)}")
                        return layers, None
                    layers.append(ir.Layer("residual", name, {}, shape, out, sum(l.params for l in inner), bound.span, layer_label, tuple(inner), role="structure"))
                    previous = "residual"
                    continue
                try:
                    out, params = bound.schema.shape(shape, bound.values, previous)
                except ShapeError as err:
                    self.error(bound.clause.name_span, str(err))
                    return layers, None
                self.check_single_value_norm(bound, shape)
                layers.append(ir.Layer(bound.name, name, ir.plain(dict(bound.values)), shape, out, params, bound.span, layer_label, role=bound.schema.role))
                shape, previous = out, bound.name
        return layers, shape

    def head(self, item: ModelItem, trunk: Shape) -> ir.Head | None:
        values = item.bound.values
        layers, out = self.sequence(item.body or [], trunk)
        if out is None:
            return None
        target = values["target"]
        classes = self.target_classes(target)
        if values["loss"] == "cross_entropy":
            if len(out) != 1:
                self.error(item.bound.clause.name_span, f"head {target} must end in a vector of class scores (its output is {_show(out)})")
                return None
            if classes is not None and out[0] != classes:
                span = layers[-1].span if layers else item.bound.clause.name_span
                self.error(span, f"head {target} has {out[0]} outputs, but '{target}' has {classes} classes")
                return None
        smoothing = values["smoothing"]
        if smoothing is None:
            loss = self.spec.clause("train", "loss")
            smoothing = loss.values.get("smoothing", 0.0) if loss is not None and loss.kind == "cross_entropy" else 0.0
        return ir.Head(target, tuple(layers), values["loss"], float(values["weight"]), float(smoothing), out[0] if len(out) == 1 else None, item.bound.span)

    def check_output(self, out: Shape, last: ir.Layer | None) -> None:
        loss = self.spec.clause("train", "loss")
        if loss is not None and loss.kind != "cross_entropy":
            return
        classes = self.target_classes("label")
        span = last.span if last is not None else self.spec.program.block("model").name_span
        if len(out) != 1:
            fix = "flatten or avgpool global, then a dense layer" if len(out) > 1 else ""
            self.error(span, f"the model must end in a vector of class scores, but its output is {_show(out)}; add {fix}")
        elif classes is not None and out[0] != classes:
            self.error(span, f"the model has {out[0]} outputs, but the data has {classes} classes")

    def check_monitor(self, graph: ir.ModelGraph, plan: ir.TrainingPlan) -> None:
        """early_stop watches a metric this model records: accuracy for a classifier, mse, mae
        and r2 for a regressor (the names themselves are checked in checks.py)."""
        early = self.spec.clause("train", "early_stop")
        if early is None:
            return
        split, _, metric = early.values["monitor"].partition(".")
        recorded = ir.recorded_metrics(graph, plan.loss.kind)
        if metric not in recorded and split in ("train", "val"):
            what = "a regressor" if plan.data.regression and not graph.heads else "this model"
            valid = ", ".join(f"{split}.{m}" for m in recorded)
            self.error(early.span_of("monitor"), f"{what} records no '{early.values['monitor']}'; it records {valid}")

    # -- data ------------------------------------------------------------------------------------------

    def source(self) -> Bound | None:
        return self.spec.clause("data", "source")

    def check_data_shape(self, shape: Shape, input_bound: Bound) -> None:
        source = self.source()
        known = source.schema.kind.get(source.kind).sample if source is not None else None
        if known is None:
            return
        sample = known(source.values)[0]
        if math.prod(sample) != math.prod(shape):
            self.error(
                input_bound.span_of("shape"),
                f"the input {_show(shape)} has {math.prod(shape)} values, but {source.kind} samples are {_show(sample)} ({math.prod(sample)} values)",
            )

    def target_classes(self, target: str) -> int | None:
        """Number of classes of `label` or a derived target, when the data says so."""
        source = self.source()
        known = source.schema.kind.get(source.kind).sample if source is not None else None
        if known is None:
            return None
        classes = self.spec.clause("data", "classes")
        count = len(classes.values["labels"]) if classes is not None else known(source.values)[1]
        if target == "label":
            return count
        values = {"label": [float(i) for i in range(count)]}  # in float64, as the runtime computes them
        for t in self.spec.targets:
            try:
                tree = _real(expr_json(t.expr))
                values[t.name] = [ir.evaluate_expr(tree, {k: v[i] for k, v in values.items()}) for i in range(count)]
            except (ArithmeticError, KeyError):
                return None
            overflow = next((i for i, v in enumerate(values[t.name]) if not math.isfinite(v)), None)
            if overflow is not None:
                self.error(t.span, f"target {t.name} = {ir.expr_text(expr_json(t.expr))} overflows for label {overflow}: its value is beyond the 64-bit float range (about 1.8e308)")
                return None
            if t.name == target:
                result = values[t.name]
                if all(float(v).is_integer() and v >= 0 for v in result):
                    return int(max(result)) + 1
                return None
        return None

    def augment(self, shape: Shape) -> tuple[ir.Step, ...]:
        """The augmentation steps, checked at their clauses against the samples they get.

        The sample's shape is followed through the steps (`crop` and `scale` give SIZE x SIZE
        images), since what the last one leaves is what the model takes. The sizes of the
        `evaluate` block's `scales` are checked here too: they resize test images the same way.
        """
        steps = []
        current, resized_by = shape, None  # the sample as the steps so far leave it; who resized it
        too_large = False  # a resize already reported: the size it leaves is not checked again
        for bound in self.spec.blocks.get("augment", ()):
            entry = bound.schema
            if entry.rank is not None and len(shape) != entry.rank[0]:
                self.error(bound.clause.name_span, f"{bound.name} needs {entry.rank[1]}, the data is {_show(shape)}")
                continue
            values = entry.plan_args(bound.values) if entry.plan_args else dict(bound.values)
            problems = list(entry.check(current, values)) if entry.check else []
            for param, message in problems:
                self.error(bound.span_of(param), message)
            if entry.resize is not None:
                too_large = too_large or (bool(problems) and bound.name == "crop")
                current, resized_by = entry.resize(current, values), bound
            steps.append(ir.Step(bound.name, ir.plain(values), bound.span))
        if resized_by is not None and not too_large and current != shape:
            size = resized_by.values["size"]
            self.error(resized_by.span_of("size"), f"{resized_by.name} {size} makes {_show(current)} images, but the model's input is {_show(shape)}")
        scales = self.spec.clause("evaluate", "scales")
        if scales is not None and len(shape) == 3:
            small = [s for s in scales.values["sizes"] if s < min(shape[1:])]
            if small:
                self.error(
                    scales.span_of("sizes"),
                    f"scale {small[0]} is smaller than the images' short side {min(shape[1:])}; the test views are crops of the model's input {_show(shape)}",
                )
        return tuple(steps)


def _real(expr):
    """A target expression with its numbers as floats (the runtime's float64 arithmetic)."""
    if isinstance(expr, list):
        return [expr[0], *map(_real, expr[1:])]
    return expr if isinstance(expr, str) else float(expr)


def _group_lines(items: list[ModelItem]) -> list[tuple[list[ModelItem], str | None]]:
    """Model items grouped by the line they came from (a label names the line's output)."""
    groups: list[tuple[list[ModelItem], str | None]] = []
    last_line = None
    for item in items:
        key = (item.bound.span.file, _line_of(item))
        if groups and key == last_line and item.bound.name not in ("repeat", "residual"):
            groups[-1][0].append(item)
        else:
            groups.append(([item], None))
        last_line = key
        if item.label is not None:
            groups[-1] = (groups[-1][0], item.label)
    return groups


def _line_of(item: ModelItem) -> int:
    return item.bound.clause.span.line


def lower(spec: CheckedSpec) -> tuple[ir.ModelGraph | None, ir.TrainingPlan | None, list[Diagnostic]]:
    """The IR of a checked spec, and the shape errors found while building it (and the
    memory it would need beyond the limit: memory.py)."""
    lowering = _Lowering(spec)
    graph = lowering.model()
    plan = lowering.plan(graph)
    if graph is not None and plan is not None:
        lowering.check_monitor(graph, plan)
    return graph, plan, lowering.errors + check_memory(spec, graph, plan)
