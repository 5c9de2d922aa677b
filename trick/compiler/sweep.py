"""What a `sweep { }` block means: the metric, the trials, and what each `vary` changes.

A `vary` names an argument by its `--set` path (compiler/overrides.py): `BLOCK.CLAUSE` (the
clause's first positional argument, or its kind), `BLOCK.CLAUSE.OPTION`, and for a layer on
a labelled model line `model.LABEL.LAYER[.OPTION]`. `check_sweep` (a registered check) binds
each path to the argument's schema, so that every value a trial can draw is one the argument
accepts; `settings` turns a trial's values into `--set` settings, which `trick.study` writes
into the spec. Nothing here imports torch or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..dsl import ast
from ..dsl.diagnostics import Span, did_you_mean
from . import clauses as R
from .schema import Either, Invalid, Num, Param, show

METRICS = ("loss", "accuracy", "mse", "mae", "r2")  # what a run records per epoch for each split (and head)
LOWER_IS_BETTER = ("loss", "mse", "mae")


@dataclass(frozen=True)
class Dimension:
    """One `vary`: a float or integer range (`log` or uniform), or a list of choices.

    `choices` are the values Optuna sees (numbers, booleans and names as such, anything else as
    its text); `texts` how each is written into the spec."""

    path: str
    kind: str  # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    texts: tuple[str, ...] = ()
    span: Span | None = None

    def text(self, value: Any) -> str:
        """`value` as .trick text (a choice as written in the list)."""
        if self.kind == "choice":
            return self.texts[self.choices.index(value)]
        if self.kind == "int":
            return str(int(value))
        return number_text(value, self.low, self.high)


@dataclass(frozen=True)
class Target:
    """The argument a path names: its clause in the spec, and how the spec gives it."""

    path: str
    setting: str  # the --set path of the clause (`train.optimizer`, `model.features.dropout`)
    clause: ast.Clause
    param: Param | None  # None: the clause's kind (`vary train.optimizer [adam, sgd]`)
    kinds: tuple[str, ...] = ()
    position: int | None = None  # the index in clause.args where the spec gives the argument by position


@dataclass(frozen=True)
class Sweep:
    trials: int
    metric: str
    direction: str  # "minimize" or "maximize"
    dimensions: tuple[Dimension, ...]
    targets: tuple[Target, ...]


def number_text(value: float, low: float | None = None, high: float | None = None) -> str:
    """A drawn real number as a spec writes it: 4 significant digits, more where fewer would
    leave [low, high] (a run uses what the spec says, so the text is the value)."""
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if (low is None or float(text) >= low) and (high is None or float(text) <= high):
            break
    return text if any(c in text for c in ".en") else text + ".0"


# ---- paths ----------------------------------------------------------------------------------------------


def _params(bound) -> list[Param]:
    params = list(bound.schema.params)
    if bound.schema.kind is not None and bound.kind is not None:
        params += list(bound.schema.kind.get(bound.kind).params)
    return params


def _model_lines(spec) -> dict[str, ast.Line]:
    block = spec.program.block("model")
    return {s.label: s for s in (block.body or ()) if isinstance(s, ast.Line) and s.label} if block is not None else {}


def _bound_of(items, clause: ast.Clause):
    for item in items:
        if item.bound.clause is clause:
            return item.bound
    return None


def paths(spec) -> list[str]:
    """Every path a `vary` may name in this spec (for "did you mean")."""
    found = []
    for block, bounds in spec.blocks.items():
        if block == "sweep":
            continue
        for bound in bounds:
            found.append(f"{block}.{bound.name}")
            found += [f"{block}.{bound.name}.{p.name}" for p in _params(bound)]
    for label, line in _model_lines(spec).items():
        for clause in line.chain:
            bound = _bound_of(spec.model, clause)
            if bound is not None:
                found.append(f"model.{label}.{clause.name}")
                found += [f"model.{label}.{clause.name}.{p.name}" for p in _params(bound)]
    return found


def resolve(spec, path: str) -> tuple[Target | None, str | None]:
    """The argument `path` names in the checked spec, or why it names none."""
    parts = path.split(".")
    hint = did_you_mean(path, paths(spec))[0]
    if parts[0] == "sweep":
        return None, "a sweep cannot vary its own clauses"
    if parts[0] not in R.BLOCKS:
        return None, f"unknown path '{path}': '{parts[0]}' is not a block{hint or '; a path starts with a block: train.optimizer.lr, data.validation, model.LABEL.LAYER'}"
    if len(parts) < 2:
        return None, f"'{path}' names a block; name a clause in it, e.g. {parts[0]}.CLAUSE or {parts[0]}.CLAUSE.OPTION"
    if parts[0] == "model":
        return _resolve_layer(spec, path, parts, hint)
    if len(parts) > 3:
        return None, f"unknown path '{path}': expected BLOCK.CLAUSE or BLOCK.CLAUSE.OPTION{hint}"
    block, name = parts[0], parts[1]
    if spec.program.block(block) is None:
        return None, f"the spec has no {block} block, so there is nothing at '{path}' to vary; add the block with its '{name}' first"
    bounds = [b for b in spec.blocks.get(block, ()) if b.name == name]
    if not bounds:
        known = any(name in r for r in R.BLOCK_CLAUSES[block])
        if known:
            return None, f"the spec's {block} block has no '{name}' clause, so there is nothing at '{path}' to vary; write '{name} ...' in {block} first"
        return None, f"unknown path '{path}': the {block} block has no clause '{name}'{hint}"
    if len(bounds) > 1:
        return None, f"the {block} block has {len(bounds)} '{name}' clauses; '{path}' cannot say which"
    return _target(bounds[0], path, f"{block}.{name}", parts[2] if len(parts) == 3 else None, hint)


def _resolve_layer(spec, path: str, parts: list[str], hint: str) -> tuple[Target | None, str | None]:
    if len(parts) not in (3, 4):
        return None, f"unknown path '{path}': a layer is named model.LABEL.LAYER or model.LABEL.LAYER.OPTION, by the label of its line{hint}"
    lines = _model_lines(spec)
    label, layer = parts[1], parts[2]
    if label not in lines:
        near, _ = did_you_mean(label, lines)
        have = f" (the labelled lines: {', '.join(lines)})" if lines and not near else ""
        how = "" if lines else "; label the line first (`features: dense 128 -> relu -> dropout 0.5`)"
        return None, f"the model has no line labelled '{label}'{near}{have}{how}"
    chain = [c for c in lines[label].chain if c.name == layer]
    names = [c.name for c in lines[label].chain]
    if not chain:
        near, _ = did_you_mean(layer, names)
        return None, f"the line labelled '{label}' has no '{layer}' layer{near} (it has {', '.join(names)})"
    if len(chain) > 1:
        return None, f"the line labelled '{label}' has {len(chain)} '{layer}' layers; '{path}' cannot say which"
    bound = _bound_of(spec.model, chain[0])
    if bound is None:  # its arguments had errors, reported already
        return None, None
    return _target(bound, path, f"model.{label}.{layer}", parts[3] if len(parts) == 4 else None, hint)


def _target(bound, path: str, setting: str, option: str | None, hint: str) -> tuple[Target | None, str | None]:
    params = _params(bound)
    what = f"'{bound.name} {bound.kind}'" if bound.kind else f"'{bound.name}'"
    if option is not None:
        param = next((p for p in params if p.name == option), None)
        if param is None:
            near, _ = did_you_mean(option, [p.name for p in params])
            takes = f" (it takes {', '.join(p.name for p in params)})" if params and not near else ""
            return None, f"{what} has no option '{option}'{near or hint}{takes}"
        return Target(path, setting, bound.clause, param, position=_position(bound, param)), None
    if bound.schema.kind is not None:
        at = bound.spans.get("kind")
        return Target(path, setting, bound.clause, None, tuple(bound.schema.kind.names()), _index(bound.clause, at)), None
    positional = [p for p in params if p.positional]
    if not positional:
        options = ", ".join(f"{setting}.{p.name}" for p in params) or "none"
        return None, f"{what} takes no value of its own to vary; vary one of its options ({options})"
    return Target(path, setting, bound.clause, positional[0], position=_position(bound, positional[0])), None


def _position(bound, param: Param) -> int | None:
    """Where in the clause's arguments the spec gives `param` by position, or None."""
    if param.name not in bound.given or bound.clause.option(param.name) is not None:
        return None
    return _index(bound.clause, bound.spans.get(param.name))


def _index(clause: ast.Clause, span: Span | None) -> int | None:
    return next((i for i, a in enumerate(clause.args) if span is not None and a.span == span), None)


# ---- values ---------------------------------------------------------------------------------------------


def _number_type(param: Param) -> Num | None:
    if isinstance(param.type, Num):
        return param.type
    if isinstance(param.type, Either):
        return next((t for t in param.type.types if isinstance(t, Num)), None)
    return None


def dimension(target: Target, values: ast.Value, log: bool) -> tuple[Dimension | None, list[tuple[Span, str]]]:
    """The search dimension of one `vary`, or the errors of its values (each at its value)."""
    path = target.path
    if isinstance(values, ast.Range):
        span = values.span
        if target.param is None or _number_type(target.param) is None:
            what = f"one of {len(target.kinds)} kinds" if target.param is None else target.param.type.describe()
            return None, [(span, f"vary {path}: a range needs a number argument, and this one is {what}; give a list of values [a, b, ...]")]
        number = _number_type(target.param)
        errors = []
        ends = []
        for end in (values.low, values.high):
            try:
                ends.append(number.convert(end))
            except Invalid as err:
                errors.append((end.span, f"vary {path}: {err.message}"))
        if errors:
            return None, errors
        low, high = ends
        if low > high:
            return None, [(span, f"vary {path}: the range {show(values)} is empty; its low end must be below its high end")]
        if low == high:
            return None, [(span, f"vary {path}: the range {show(values)} holds one value; write it in the spec, or give two different ends")]
        if log and low <= 0:
            return None, [(span, f"vary {path}: a log range must lie above 0, and {show(values)} includes {'0' if low == 0 else 'values <= 0'}; use a low end > 0, or drop 'log'")]
        kind = "int" if number.integer else "float"
        return Dimension(path, kind, low, high, log, span=span), []
    if log:
        return None, [(values.span, f"vary {path}: 'log' applies to a range low..high, not to a list")]
    choices, texts, errors = [], [], []
    for item in values.items:
        if target.param is None:
            if not isinstance(item, ast.Ref) or item.name not in target.kinds:
                near, _ = did_you_mean(show(item), target.kinds)
                errors.append((item.span, f"vary {path}: expected one of {', '.join(target.kinds)}, found {show(item)}{near}"))
                continue
            converted = item.name
            kept = {p.name for p in _kind_params(target, item.name)}
            stray = [o.name for o in target.clause.options if o.name not in kept]
            if stray:
                errors.append((item.span, f"vary {path}: '{target.clause.name} {item.name}' takes no option '{stray[0]}', which the spec gives at line {target.clause.span.line}"))
                continue
        else:
            try:
                converted = target.param.type.convert(item)
            except Invalid as err:
                errors.append((item.span, f"vary {path}: {err.message}"))
                continue
        text = show(item)
        if text in texts:
            errors.append((item.span, f"vary {path}: {text} is listed twice"))
            continue
        simple = isinstance(converted, (bool, int, float, str)) and not isinstance(item, ast.String)
        choices.append(converted if simple else text)
        texts.append(text)
    if errors:
        return None, errors
    if len(choices) < 2:
        return None, [(values.span, f"vary {path}: a list of one value leaves nothing to choose; write it in the spec, or list two or more")]
    return Dimension(path, "choice", choices=tuple(choices), texts=tuple(texts), span=values.span), []


def _kind_params(target: Target, kind: str) -> list[Param]:
    schema = next(s for reg in R.BLOCK_CLAUSES.values() for r in reg for s in r if s.name == target.clause.name and s.kind is not None)
    return list(schema.params) + list(schema.kind.get(kind).params)


# ---- the check ------------------------------------------------------------------------------------------


def metrics(spec) -> list[str]:
    """The validation metrics a run of this spec records."""
    heads = [h.bound.values["target"] for h in spec.heads()]
    return [f"val.{m}" for m in METRICS] + [f"val.{h}.{m}" for h in heads for m in METRICS]


def direction(metric: str, mode: str) -> str:
    if mode != "auto":
        return "minimize" if mode == "min" else "maximize"
    return "minimize" if metric.split(".")[-1] in LOWER_IS_BETTER else "maximize"


def has_validation(spec) -> bool:
    """Whether a run of the spec may record val.* metrics: a `validation` fraction, an
    early_stop on a val.* metric (which holds 10% out), or a file or folder source (whose
    split column or val/ folder may give one)."""
    if spec.clause("data", "validation") is not None:
        return True
    early = spec.clause("train", "early_stop")
    if early is not None and str(early.values["monitor"]).startswith("val."):
        return True
    source = spec.clause("data", "source")
    return source is None or source.kind in ("file", "folder")


def check_sweep(ctx) -> None:
    """The sweep block's metric is one a run records, and each `vary` names an argument of
    this spec with values the argument accepts."""
    block = ctx.program.block("sweep")
    if block is None or "sweep" in ctx.troubled:
        return
    spec = ctx.spec
    metric = spec.clause("sweep", "metric")
    if metric is not None:
        name = metric.values["name"]
        known = metrics(spec)
        if name.split(".")[0] in ("test", "train"):
            ctx.error(metric.span_of("name"), f"a sweep scores its trials by a validation metric (val.…), so that the test split stays unseen; found '{name}'; use e.g. val.{name.split('.', 1)[-1]}")
        elif name not in known:
            hint, best = did_you_mean(name, known)
            ctx.error(metric.span_of("name"), f"unknown metric '{name}'{hint or '; expected one of ' + ', '.join(known[:5])}", best)
        elif not has_validation(spec):
            ctx.error(metric.span_of("name"), f"the metric '{name}' needs a validation split, and the spec holds none out; add 'validation 0.1' to the data block")
    elif not has_validation(spec):
        ctx.error(block.name_span, "a sweep scores trials by a validation metric (val.loss unless 'metric' says), and the spec holds no validation split out; add 'validation 0.1' to the data block")
    varies = [b for b in spec.blocks.get("sweep", ()) if b.name == "vary"]
    if not varies and "vary" not in ctx.program_clause_names("sweep"):
        ctx.error(block.name_span, "the sweep block varies nothing; add what to search over, e.g. vary train.optimizer.lr log 1e-4..1e-1")
    seen: dict[str, int] = {}
    for vary in varies:
        path = vary.values["path"]
        if path in seen:
            ctx.error(vary.span_of("path"), f"'{path}' is varied twice (first at line {seen[path]})")
            continue
        seen[path] = vary.span.line
        target, why = resolve(spec, path)
        if target is None:
            if why:
                suggestion = did_you_mean(path, paths(spec))[1]
                ctx.error(vary.span_of("path"), why, suggestion)
            continue
        _, errors = dimension(target, vary.values["values"], _is_log(vary.clause))
        for span, message in errors:
            ctx.error(span, message)


def _is_log(clause: ast.Clause) -> bool:
    return any(isinstance(a, ast.Ref) and a.name == "log" for a in clause.args)


def sweep_of(spec) -> Sweep | None:
    """The sweep of a checked spec without errors (None when it has no sweep block)."""
    if spec.program.block("sweep") is None:
        return None
    trials = spec.clause("sweep", "trials")
    metric = spec.clause("sweep", "metric")
    name = metric.values["name"] if metric is not None else "val.loss"
    mode = metric.values["mode"] if metric is not None else "auto"
    dimensions, targets = [], []
    for vary in (b for b in spec.blocks.get("sweep", ()) if b.name == "vary"):
        target, _ = resolve(spec, vary.values["path"])
        found, _ = dimension(target, vary.values["values"], _is_log(vary.clause))
        dimensions.append(found)
        targets.append(target)
    n = trials.values["n"] if trials is not None else R.SWEEP.get("trials").param("n").default
    return Sweep(n, name, direction(name, mode), tuple(dimensions), tuple(targets))


# ---- a trial's settings ------------------------------------------------------------------------------


def settings(sweep: Sweep, values: dict[str, Any]) -> list[str]:
    """The `--set` settings that give each varied argument its value in `values` (by path).

    An argument the spec gives by position is set by rewriting its clause in place (`dropout
    0.5` -> `dropout 0.3`, its options kept); one given by name, or left at its default, as an
    option (`train.optimizer.lr=0.003`); a kind by replacing the kind's word."""
    out = []
    for dim, target in zip(sweep.dimensions, sweep.targets):
        text = dim.text(values[dim.path])
        clause = target.clause
        if target.position is not None:
            out.append(f"{target.setting}={_clause_text(clause, {target.position: text})}")
        elif target.param is None:  # a default kind the spec does not write: it goes first
            out.append(f"{target.setting}={' '.join([text] + [show(a) for a in clause.args] + [f'{o.name}={show(o.value)}' for o in clause.options])}")
        else:
            out.append(f"{target.setting}.{target.param.name}={text}")
    return out


def _clause_text(clause: ast.Clause, replace: dict[int, str]) -> str:
    """The clause's arguments and options as text, with the arguments at `replace` rewritten."""
    args = [replace.get(i, show(a)) for i, a in enumerate(clause.args)]
    return " ".join(args + [f"{o.name}={show(o.value)}" for o in clause.options])


# ---- the run's identity ---------------------------------------------------------------------------------


def sweep_free_text(program: ast.Program) -> str:
    """The spec's text without its sweep block (and the blank line it leaves): what a run's
    content hash is taken of, so that a sweep block changes no run."""
    block = program.block("sweep")
    if block is None or block.span is None:
        return program.text
    lines = program.text.split("\n")
    first, last = block.span.line, block.span.end_line
    whole = lines[first - 1][: block.span.column - 1].strip() == "" and lines[last - 1][block.span.end_column - 1 :].split("#")[0].strip() == ""
    if not whole:  # shares a line with other code: cut the characters
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line) + 1)
        start = offsets[first - 1] + block.span.column - 1
        end = offsets[last - 1] + block.span.end_column - 1
        return program.text[:start] + program.text[end:]
    del lines[first - 1 : last]
    if 2 <= first <= len(lines) and not lines[first - 2].strip() and not lines[first - 1].strip():
        del lines[first - 1]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"
