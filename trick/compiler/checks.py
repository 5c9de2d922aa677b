"""Cross-field checks: small registered functions, each with a one-line docstring.

Each takes the checker (`ctx`), which offers the checked spec (`ctx.spec`), the parsed program
(`ctx.program`), `ctx.error(span, message, suggestion)`, `ctx.warning(span, message)` and
`ctx.import_ref(bound, param)` (the checked import a clause names, reporting a missing one).
They run in the order they are registered, after every clause's arguments are bound.
`trickc check` runs them: no torch, no numpy.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..dsl import ast
from ..dsl.diagnostics import did_you_mean
from . import clauses as R

METRIC_NAMES = ("loss", "accuracy", "mse", "mae", "r2")
SPLITS = ("train", "val")

CHECKS: list[Callable] = []


def register(fn: Callable) -> Callable:
    """Add a cross-field check (it must say what it checks in its docstring's first line)."""
    assert fn.__doc__ and fn.__doc__.strip(), fn.__name__
    CHECKS.append(fn)
    return fn


# ---- model ----------------------------------------------------------------------------------------


@register
def heads_name_targets(ctx) -> None:
    """A head's target is `label` or a target defined in data."""
    targets = ["label"] + [t.name for t in ctx.spec.targets]
    for head in ctx.spec.heads():
        name = head.bound.values["target"]
        if name not in targets:
            hint, best = did_you_mean(name, targets)
            ctx.error(head.bound.span_of("target"), f"no target named '{name}'; define it in data with 'target {name} = ...'{hint}", best)


MAX_LAYERS = 100_000  # layers of a model once every repeat is expanded


@register
def model_is_not_too_large(ctx) -> None:
    """The model has at most MAX_LAYERS layers with every repeat expanded (counted, not expanded)."""
    total = 0
    for item in ctx.spec.model:
        if item.bound.name == "input":
            continue
        size = _expanded_size(item)
        if size > MAX_LAYERS:
            what = f"this {item.bound.name}" if item.body is not None else "this line"
            ctx.error(item.bound.clause.name_span, f"{what} expands to {_count(size)} layers; a model may have at most {MAX_LAYERS:,}")
            return
        total += size
        if total > MAX_LAYERS:
            ctx.error(item.bound.clause.name_span, f"the model has more than {MAX_LAYERS:,} layers by here ({total:,} with every repeat expanded)")
            return


@register
def residual_has_a_body(ctx) -> None:
    """A residual block holds at least one layer (an empty one would double its input)."""

    def walk(items) -> None:
        for item in items:
            if item.bound.name == "residual" and not item.bound.clause.body:
                ctx.error(item.bound.clause.name_span, "this residual block is empty: it would add its input to itself; put layers inside { }, or remove it")
            if item.body:
                walk(item.body)

    walk(ctx.spec.model)


def _expanded_size(item) -> int:
    """The layers an item becomes: one, or its body's times `times` for a repeat (an exact integer,
    computed without expanding anything, so that nesting cannot make it slow)."""
    if item.body is None:
        return 1
    inner = sum(_expanded_size(i) for i in item.body)
    if item.bound.name == "repeat":
        return item.bound.values["times"] * inner
    return inner + (item.bound.name == "residual")


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


# ---- data -----------------------------------------------------------------------------------------


@register
def data_has_a_source(ctx) -> None:
    """The data block names a source."""
    block = _lacks(ctx, "data", "source")
    if block is not None and "data" not in ctx.troubled:
        ctx.error(block.name_span, "the data block needs a source: source mnist1d, source digits, ...")


@register
def test_split_only_where_the_source_has_none(ctx) -> None:
    """`test` holds out a test split only for sources without one of their own."""
    source, test = ctx.spec.clause("data", "source"), ctx.spec.clause("data", "test")
    if source is not None and test is not None and source.kind in R.SOURCES_WITH_TEST_SPLIT:
        ctx.error(test.clause.name_span, f"{source.kind} has a test split of its own; remove 'test'")


@register
def data_file_exists(ctx) -> None:
    """`source file` names an existing .npz, .npy or .csv file and `source folder` a folder, relative to the spec."""
    source = ctx.spec.clause("data", "source")
    if source is None or source.kind not in ("file", "folder"):
        return
    path = source.values["path"]
    base = os.path.dirname(ctx.loaded.path) if ctx.loaded.path is not None else os.getcwd()
    if source.kind == "folder":
        full = os.path.join(base, path)
        if not _exists(full):
            ctx.error(source.span_of("path"), f"cannot find the image folder '{path}' ({_shown(full)})")
        elif not os.path.isdir(full):
            ctx.error(source.span_of("path"), f"'{path}' is a file, not a folder ({_shown(full)}); `source folder` reads PATH/<class>/*.png")
        return
    lower = path.lower()
    if not lower.endswith((".npz", ".csv", ".npy")):
        ctx.error(source.span_of("path"), f"'{path}' is not a .npz, .npy or .csv file")
        return
    _data_file(ctx, source.span_of("path"), path, os.path.join(base, path))
    labels = source.values.get("y")
    if lower.endswith(".npy"):
        if not isinstance(labels, str) or not labels.lower().endswith(".npy"):
            ctx.error(source.span_of("y"), "a .npy file holds the inputs only; name the labels' .npy file with y=\"labels.npy\"")
        else:
            _data_file(ctx, source.span_of("y"), labels, os.path.join(base, labels))
    if source.values.get("split") is not None and not lower.endswith(".csv"):
        ctx.error(source.span_of("split"), "a split column comes from a .csv file")
    if isinstance(source.values.get("x"), list) and not lower.endswith(".csv"):
        ctx.error(source.span_of("x"), "a list of input columns comes from a .csv file; a .npz names one array")


def _exists(path: str) -> bool:
    try:
        return os.path.exists(path)
    except ValueError:  # a NUL in the name
        return False


def _data_file(ctx, span, path: str, full: str) -> None:
    if _exists(full) and os.path.isdir(full):
        ctx.error(span, f"the data file '{path}' is a directory ({_shown(full)}); name a .npz, .npy or .csv file")
    elif _exists(full) and not os.path.isfile(full):
        ctx.error(span, f"the data file '{path}' is not a regular file ({_shown(full)})")
    elif not _exists(full):
        ctx.error(span, f"cannot find the data file '{path}' ({_shown(full)})")


@register
def split_column_decides_the_splits(ctx) -> None:
    """With a split column, the file says which rows are test rows: no `test` fraction."""
    source, test = ctx.spec.clause("data", "source"), ctx.spec.clause("data", "test")
    if source is not None and test is not None and source.kind == "file" and source.values.get("split") is not None:
        ctx.error(test.clause.name_span, f"the column '{source.values['split']}' says which rows are test rows; remove 'test' (or the split column)")


@register
def classes_are_distinct(ctx) -> None:
    """`classes [...]` lists each class once."""
    classes = ctx.spec.clause("data", "classes")
    if classes is not None:
        labels = classes.values["labels"]
        if len(set(labels)) != len(labels):
            ctx.error(classes.span_of("labels"), "classes: a class is listed twice")


# ---- train ----------------------------------------------------------------------------------------


@register
def early_stop_watches_a_metric(ctx) -> None:
    """early_stop monitors a metric the run records."""
    early = ctx.spec.clause("train", "early_stop")
    if early is None:
        return
    metric = early.values["monitor"]
    valid = [f"{s}.{m}" for s in SPLITS for m in METRIC_NAMES]
    valid += [f"{s}.{h.bound.values['target']}.{m}" for h in ctx.spec.heads() for s in SPLITS for m in METRIC_NAMES]
    if metric not in valid:
        hint, best = did_you_mean(metric, valid)
        ctx.error(early.span_of("monitor"), f"unknown metric '{metric}'{hint or '; expected one of ' + ', '.join(valid[:4]) + ', ...'}", best)


@register
def nesterov_needs_momentum(ctx) -> None:
    """sgd's nesterov=true needs momentum > 0."""
    optimizer = ctx.spec.clause("train", "optimizer")
    if optimizer is not None and optimizer.kind == "sgd" and optimizer.values["nesterov"] and optimizer.values["momentum"] == 0:
        ctx.error(optimizer.span_of("nesterov"), "nesterov=true needs momentum > 0")


@register
def loss_beside_heads(ctx) -> None:
    """A train loss beside heads applies only to heads without loss= (a warning)."""
    loss = ctx.spec.clause("train", "loss")
    if loss is not None and ctx.spec.heads() and "loss" in ctx.program_clause_names("train"):
        ctx.warning(loss.clause.name_span, "the model has heads, each with its own loss; this loss applies to heads without loss=")


@register
def warmup_is_shorter_than_training(ctx) -> None:
    """The schedule's warm-up is shorter than the epochs (a warning: the rate would never leave the warm-up)."""
    schedule, epochs = ctx.spec.clause("train", "schedule"), ctx.spec.clause("train", "epochs")
    n = epochs.values["n"] if epochs is not None else _default("train", "epochs", "n")
    if schedule is not None and schedule.values["warmup"] >= n:
        ctx.warning(
            schedule.span_of("warmup"),
            f"warmup={schedule.values['warmup']} is not shorter than the {n} epoch{'s' * (n != 1)}: the learning rate never leaves the warm-up (it never reaches the schedule's rate)",
        )


# ---- transfer -------------------------------------------------------------------------------------


@register
def transfer_names_its_layers(ctx) -> None:
    """transfer copies from an import, by layers=K or labels=[...], which both specs have."""
    spec = ctx.spec
    transfer_from = spec.clause("transfer", "from")
    block = _lacks(ctx, "transfer", "from")
    if block is not None:
        ctx.error(block.name_span, "the transfer block needs 'from NAME layers=K'")
    if transfer_from is None:
        return
    other = ctx.import_ref(transfer_from, "model")
    has_layers, has_labels = transfer_from.values["layers"] is not None, transfer_from.values["labels"] is not None
    if has_layers == has_labels:
        ctx.error(transfer_from.clause.name_span, "say which layers to copy: layers=K or labels=[...], one of the two")
    if other is not None and has_labels:
        theirs, mine = other.labels(), spec.labels()
        for label, span in zip(transfer_from.values["labels"], _list_spans(transfer_from, "labels")):
            if label not in theirs:
                hint, best = did_you_mean(label, theirs)
                ctx.error(span, f"'{other.program.name}' has no layer labelled '{label}'{hint}", best)
            elif label not in mine:
                ctx.error(span, f"this model has no layer labelled '{label}' to copy into")
    if other is not None and has_layers:
        count = _count_parameterized(other.model)
        if transfer_from.values["layers"] > count:
            ctx.error(transfer_from.span_of("layers"), f"'{other.program.name}' has only {count} layers with weights ({', '.join(R.WEIGHT_LAYERS)})")


@register
def frozen_layers_take_no_lr_scale(ctx) -> None:
    """`freeze true` and `lr_scale` exclude each other."""
    freeze, lr_scale = ctx.spec.clause("transfer", "freeze"), ctx.spec.clause("transfer", "lr_scale")
    if freeze is not None and lr_scale is not None and freeze.values["value"]:
        ctx.error(lr_scale.clause.name_span, "frozen layers do not train; use 'freeze true' or 'lr_scale', not both")


# ---- distill --------------------------------------------------------------------------------------


@register
def distill_hints_name_labels(ctx) -> None:
    """distill names an imported teacher, and each hint a teacher label and a student label."""
    spec = ctx.spec
    teacher_clause = spec.clause("distill", "teacher")
    block = _lacks(ctx, "distill", "teacher")
    if block is not None:
        ctx.error(block.name_span, "the distill block needs 'teacher NAME'")
    teacher = ctx.import_ref(teacher_clause, "model") if teacher_clause is not None else None
    for hint_clause in (b for b in spec.blocks.get("distill", ()) if b.name == "hint"):
        ref = hint_clause.values["hint"]
        parts = ref.split(".")
        if len(parts) != 2:
            ctx.error(hint_clause.span_of("hint"), f"expected TEACHER.LABEL, found '{ref}'")
        elif teacher_clause is not None and parts[0] != teacher_clause.values["model"]:
            ctx.error(hint_clause.span_of("hint"), f"the hint comes from the teacher '{teacher_clause.values['model']}', not '{parts[0]}'")
        elif teacher is not None and parts[1] not in teacher.labels():
            hint, best = did_you_mean(parts[1], teacher.labels())
            ctx.error(hint_clause.span_of("hint"), f"the teacher '{teacher.program.name}' has no layer labelled '{parts[1]}'{hint}", best)
        if hint_clause.arrow is not None and hint_clause.arrow not in spec.labels():
            hint, best = did_you_mean(hint_clause.arrow, spec.labels())
            ctx.error(hint_clause.spans["->"], f"this model has no layer labelled '{hint_clause.arrow}'{hint}", best)


# ---- curriculum -----------------------------------------------------------------------------------


@register
def curriculum_has_a_score(ctx) -> None:
    """curriculum scores by an imported model's loss, its own loss, or a file's column."""
    score = ctx.spec.clause("curriculum", "score")
    source = ctx.spec.clause("data", "source")
    if score is not None and score.kind == "loss":
        ctx.import_ref(score, "model")
    if score is not None and score.kind == "column" and source is not None and source.kind != "file":
        ctx.error(score.span_of("name"), f"a difficulty column comes from a file source (source file \"data.npz\"), not {source.kind}")
    block = _lacks(ctx, "curriculum", "score")
    if block is not None:
        ctx.error(block.name_span, "the curriculum block needs 'score loss of NAME', 'score self' or 'score column \"NAME\"'")


# ---- sweep ----------------------------------------------------------------------------------------


@register
def sweep_varies_arguments_of_this_spec(ctx) -> None:
    """The sweep's metric is one a run records, and each `vary` names an argument of the spec with values it accepts (compiler/sweep.py)."""
    if ctx.program.block("sweep") is None:
        return  # compiler/sweep.py is imported only for a spec that has a sweep block (trickc check starts faster)
    from .sweep import check_sweep

    check_sweep(ctx)


# ---- report ---------------------------------------------------------------------------------------


@register
def decision_boundary_needs_points(ctx) -> None:
    """The decision_boundary plot needs an input [2]."""
    plot = ctx.spec.clause("report", "plot")
    inputs = [i for i in ctx.spec.model if i.bound.name == "input"]
    shape = inputs[0].bound.values.get("shape") if inputs else None
    if plot is not None and "decision_boundary" in plot.extra and isinstance(shape, list) and shape != [2]:
        where = next((a.span for a in plot.clause.args if isinstance(a, ast.Ref) and a.name == "decision_boundary"), plot.clause.name_span)
        ctx.error(where, f"decision_boundary needs points in the plane (input [2]); this model's input is [{', '.join(map(str, shape))}]")


# ---- helpers --------------------------------------------------------------------------------------


def _lacks(ctx, block: str, clause: str):
    """The block's clause in the program when the spec has the block but never writes the
    clause in it (not even one with errors, which are reported already), else None."""
    at = ctx.program.block(block)
    if at is None or ctx.spec.clause(block, clause) is not None or clause in ctx.program_clause_names(block):
        return None
    return at


def _shown(path: str) -> str:
    """A path as messages show it: relative to the working directory (absolute on another drive)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def _default(block: str, clause: str, param: str):
    """The default of a clause's argument, as its registry entry gives it."""
    schema = next(r.get(clause) for r in R.BLOCK_CLAUSES[block] if clause in r)
    return schema.param(param).default


def _list_spans(bound, param: str):
    option = bound.clause.option(param)
    if option is not None and isinstance(option.value, ast.List):
        return [item.span for item in option.value.items]
    return [bound.span_of(param)] * len(bound.values[param])


def _count_parameterized(items) -> int:
    count = 0
    for item in items:
        if item.bound.name in R.WEIGHT_LAYERS:
            count += 1
        elif item.body is not None:
            inner = _count_parameterized(item.body)
            count += inner * (item.bound.values.get("times", 1) if item.bound.name == "repeat" else 1)
    return count
