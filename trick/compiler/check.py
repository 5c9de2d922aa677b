"""Semantic checks that need no torch: names, types, ranges, references.

The Checker binds one loaded spec (the pipeline, pipeline.py, runs it on each file once).
The checker binds each clause's arguments against its entry in `clauses`, so the values
later stages read are already converted, range-checked and completed with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, Span, did_you_mean
from ..dsl.imports import Loaded
from . import clauses as R
from .checks import CHECKS
from .schema import ClauseSchema, Invalid, Registry


@dataclass
class Bound:
    """A clause whose arguments have been checked against its schema."""

    schema: ClauseSchema
    clause: ast.Clause
    kind: str | None = None  # the entry chosen from schema.kind (`adamw` in `optimizer adamw`)
    values: dict[str, Any] = field(default_factory=dict)  # every parameter, defaults filled
    given: set[str] = field(default_factory=set)  # parameters the spec wrote
    spans: dict[str, Span] = field(default_factory=dict)  # where each given value is
    extra: list[Any] = field(default_factory=list)  # variadic values
    arrow: str | None = None  # the name after '->' (`hint a -> b`)

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def span(self) -> Span:
        return self.clause.span

    def span_of(self, param: str) -> Span:
        return self.spans.get(param, self.clause.name_span)


@dataclass
class ModelItem:
    """One element of the model: a layer, or a `repeat`/`residual`/`head` with a body."""

    bound: Bound
    label: str | None = None
    body: list[ModelItem] | None = None
    label_span: Span | None = None


@dataclass
class CheckedSpec:
    """A spec after checking: its clauses bound by block, and its checked imports."""

    program: ast.Program
    loaded: Loaded
    blocks: dict[str, list[Bound]] = field(default_factory=dict)
    model: list[ModelItem] = field(default_factory=list)
    targets: list[ast.Target] = field(default_factory=list)
    imports: dict[str, CheckedSpec | None] = field(default_factory=dict)

    def clause(self, block: str, name: str) -> Bound | None:
        return next((b for b in self.blocks.get(block, ()) if b.name == name), None)

    def labels(self) -> dict[str, ModelItem]:
        found: dict[str, ModelItem] = {}

        def walk(items: list[ModelItem]) -> None:
            for item in items:
                if item.label:
                    found.setdefault(item.label, item)
                if item.body:
                    walk(item.body)

        walk(self.model)
        return found

    def heads(self) -> list[ModelItem]:
        return [i for i in self.model if i.bound.name == "head"]


class Checker:
    def __init__(self, loaded: Loaded):
        self.loaded = loaded
        self.program = loaded.program
        self.file = loaded.program.file
        self.diagnostics: list[Diagnostic] = []
        self.spec = CheckedSpec(loaded.program, loaded)

    # -- reporting ------------------------------------------------------------------------------

    def error(self, span: Span, message: str, suggestion: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(span, message, "error", suggestion))

    def warning(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, message, "warning"))

    # -- the file -------------------------------------------------------------------------------

    def run(self, checked_imports: dict[str, CheckedSpec | None]) -> CheckedSpec:
        self.spec.imports = checked_imports
        items = self.program.items
        start = Span.point(self.file, 1, 1)
        specs = [i for i in items if isinstance(i, ast.SpecDecl)]
        if not specs:
            self.error(start, "a spec starts with 'spec NAME'; this file has no spec line")
        else:
            if items[0] is not specs[0]:
                self.error(specs[0].span, "'spec NAME' must be the first line of the file")
            for extra in specs[1:]:
                self.error(extra.span, f"a file holds one spec; 'spec {specs[0].name}' is already at line {specs[0].span.line}")
        seen_block = False
        aliases: dict[str, ast.Import] = {}
        blocks: dict[str, ast.Clause] = {}
        for item in items:
            if isinstance(item, ast.Import):
                if seen_block:
                    self.error(item.span, "imports go before the blocks")
                if item.alias in aliases:
                    self.error(item.alias_span, f"'{item.alias}' is already imported at line {aliases[item.alias].span.line}")
                aliases[item.alias] = item
            elif isinstance(item, ast.Target):
                self.error(item.span, "'target' belongs inside the data block")
            elif isinstance(item, ast.Line):
                seen_block = True
                self.top_level_line(item, blocks)
        for name in R.REQUIRED_BLOCKS:
            if name not in blocks and specs:
                self.error(specs[0].span, f"the spec has no '{name}' block")
        self.troubled: set[str] = set()  # blocks with errors inside: no "missing clause" on top
        for name, clause in blocks.items():
            before = len(self.diagnostics)
            self.block(name, clause)
            if len(self.diagnostics) > before:
                self.troubled.add(name)
        self.cross_checks(aliases)
        return self.spec

    def top_level_line(self, line: ast.Line, blocks: dict[str, ast.Clause]) -> None:
        clause = line.chain[0]
        if line.label is not None:
            self.error(line.label_span, "labels go on lines inside the model block")
            return
        if len(line.chain) > 1:
            self.error(line.chain[1].name_span, "'->' chains go inside the model block")
            return
        if clause.body is None:
            home = self.home_block(clause.name)
            if clause.name in R.BLOCKS:
                self.error(clause.name_span, f"the {clause.name} block needs braces: {clause.name} {{ ... }}")
            elif home:
                self.error(clause.name_span, f"'{clause.name}' must be inside a block; it belongs in '{home}'")
            else:
                hint, best = did_you_mean(clause.name, R.BLOCKS.names())
                self.error(clause.name_span, f"expected a block such as 'model {{ ... }}', found '{clause.name}'{hint}", best)
            return
        if clause.name not in R.BLOCKS:
            hint, best = did_you_mean(clause.name, R.BLOCKS.names())
            self.error(clause.name_span, f"unknown block '{clause.name}'{hint}", best)
            return
        if clause.name in blocks:
            self.error(clause.name_span, f"duplicate block '{clause.name}' (the first is at line {blocks[clause.name].span.line})")
            return
        if clause.args or clause.options:
            first = (list(clause.args) + [o.value for o in clause.options])[0]
            self.error(getattr(first, "span", clause.name_span), f"the {clause.name} block takes no arguments")
        blocks[clause.name] = clause

    @staticmethod
    def home_block(name: str) -> str | None:
        for block, registries in R.BLOCK_CLAUSES.items():
            if any(name in r for r in registries):
                return block
        return None

    # -- blocks -----------------------------------------------------------------------------------

    def block(self, name: str, clause: ast.Clause) -> None:
        if name == "model":
            self.spec.model = self.model_body(clause.body or (), top=True)
            return
        registries = R.BLOCK_CLAUSES[name]
        bound: list[Bound] = []
        for statement in clause.body or ():
            if isinstance(statement, ast.Target):
                if name != "data":
                    self.error(statement.span, "'target' belongs inside the data block")
                else:
                    self.spec.targets.append(statement)
                continue
            if statement.label is not None:
                self.error(statement.label_span, "labels go on lines inside the model block")
            head = statement.chain[0]
            schema = self.lookup(head, name, registries)
            if schema is None:
                continue
            result = self.bind(head, schema)
            if result is None:
                continue
            if len(statement.chain) > 1:
                self.arrow(statement, result)
            elif schema.chain:
                self.error(head.span, f"'{schema.name}' needs '-> LABEL' after its argument: {schema.example}")
            bound.append(result)
        self.duplicates(bound, name)
        self.spec.blocks[name] = bound
        if name == "data":
            self.check_targets()

    def arrow(self, statement: ast.Line, result: Bound) -> None:
        chain = statement.chain
        if not result.schema.chain:
            self.error(chain[1].name_span, "'->' chains go inside the model block")
            return
        target = chain[1]
        if len(chain) > 2 or target.args or target.options or target.body is not None:
            self.error(target.span, f"expected one label after '->': {result.schema.example}")
            return
        result.arrow = target.name
        result.spans["->"] = target.name_span

    def lookup(self, clause: ast.Clause, block: str, registries: tuple[Registry, ...]) -> ClauseSchema | None:
        for reg in registries:
            schema = reg.get(clause.name)
            if schema is not None:
                return schema
        home = self.home_block(clause.name)
        if home is not None and home != block:
            self.error(clause.name_span, f"'{clause.name}' belongs in the '{home}' block, not in '{block}'")
            return None
        names = [n for reg in registries for n in reg.names()]
        hint, best = did_you_mean(clause.name, names)
        kind = "layer" if block == "model" else registries[0].kind
        if clause.name in R.BLOCKS:
            self.error(clause.name_span, f"the {clause.name} block goes at the top level, not inside '{block}'")
        else:
            self.error(clause.name_span, f"unknown {kind} '{clause.name}'{hint}", best)
        return None

    def duplicates(self, bound: list[Bound], block: str) -> None:
        seen: dict[tuple[str, str | None], Bound] = {}
        for b in bound:
            key = (b.name, b.kind if b.schema.repeatable else None)
            if b.schema.repeatable and b.schema.kind is None:
                continue
            if key in seen:
                what = f"'{b.name} {b.kind}'" if b.schema.repeatable else f"'{b.name}'"
                self.error(b.clause.name_span, f"{what} is given twice in {block} (first at line {seen[key].clause.span.line})")
            else:
                seen[key] = b

    # -- binding arguments -------------------------------------------------------------------------

    def bind(self, clause: ast.Clause, schema: ClauseSchema) -> Bound | None:
        """Check a clause's arguments against its schema; None if it cannot be used."""
        result = Bound(schema, clause)
        ok = True
        args = [a for a in clause.args if not (isinstance(a, ast.Ref) and a.name in schema.connectives)]
        params = list(schema.params)
        if schema.kind is not None:
            kinds = schema.kind
            if args and isinstance(args[0], ast.Ref) and len(args[0].parts) == 1 and args[0].name in kinds:
                result.kind = args[0].name
                result.spans["kind"] = args[0].span
                args = args[1:]
            elif args and isinstance(args[0], ast.Ref):
                hint, best = did_you_mean(args[0].name, kinds.names())
                self.error(args[0].span, f"unknown {kinds.kind} '{args[0].name}'{hint}", best)
                return None
            elif schema.kind_default is not None:
                result.kind = schema.kind_default
            else:
                self.error(clause.name_span, f"'{schema.name}' needs {_article(kinds.kind)}: {_or_list(kinds.names())}")
                return None
            entry = kinds.get(result.kind)
            assert entry is not None
            params = params + list(entry.params)
        by_name = {p.name: p for p in params}
        positional = [p for p in params if p.positional]
        for index, value in enumerate(args):
            if index < len(positional):
                param = positional[index]
                if self.set_value(result, param, value, value.span, schema.name):
                    result.given.add(param.name)
                else:
                    ok = False
            elif schema.variadic is not None:
                try:
                    result.extra.append(schema.variadic.type.convert(value))
                except Invalid as err:
                    self.error(value.span, f"{schema.variadic.name}: {err.message}", err.suggestion)
                    ok = False
            else:
                what = f"'{schema.name} {result.kind}'" if result.kind else f"'{schema.name}'"
                if positional:
                    names = ", ".join(p.name for p in positional)
                    self.error(value.span, f"too many arguments: {what} takes {len(positional)} positional argument{'s' if len(positional) > 1 else ''} ({names})")
                elif by_name:
                    self.error(value.span, f"{what} takes only named options such as {next(iter(by_name))}=...; found {_describe_value(value)}")
                else:
                    self.error(value.span, f"{what} takes no arguments")
                ok = False
        for option in clause.options:
            param = by_name.get(option.name)
            if param is None:
                what = f"'{schema.name} {result.kind}'" if result.kind else f"'{schema.name}'"
                if not by_name:
                    self.error(option.name_span, f"{what} takes no options")
                else:
                    hint, best = did_you_mean(option.name, by_name)
                    self.error(option.name_span, f"unknown option '{option.name}' for {what}{hint}", best)
                ok = False
                continue
            if param.name in result.given:
                self.error(option.name_span, f"'{param.name}' is given twice")
                ok = False
                continue
            if self.set_value(result, param, option.value, option.value.span):
                result.given.add(param.name)
            else:
                ok = False
        for param in params:
            if param.name not in result.given:
                if param.required:
                    if ok:
                        what = f"'{schema.name} {result.kind}'" if result.kind else f"'{schema.name}'"
                        how = f"{param.name}" if param.positional else f"{param.name}=..."
                        self.error(clause.name_span, f"{what} needs {param.name} ({param.type.describe()}): {schema.name}{' ' + result.kind if result.kind else ''} {how.upper() if param.positional else how}")
                    ok = False
                else:
                    result.values[param.name] = param.default
        if schema.body is None and clause.body is not None:
            self.error(clause.name_span, f"'{schema.name}' takes no {{ }} block")
            ok = False
        elif schema.body_required and clause.body is None:
            self.error(clause.name_span, f"'{schema.name}' needs a {{ }} block: {schema.example}")
            ok = False
        return result if ok else None

    def set_value(self, result: Bound, param, value: ast.Value, span: Span, what: str | None = None) -> bool:
        """Convert one argument; `what` names it in errors (the clause, for positional ones)."""
        try:
            result.values[param.name] = param.type.convert(value)
        except Invalid as err:
            self.error(span, f"{what or param.name}: {err.message}", err.suggestion)
            return False
        result.spans[param.name] = span
        return True

    # -- the model ---------------------------------------------------------------------------------

    def model_body(self, statements, top: bool) -> list[ModelItem]:
        items: list[ModelItem] = []
        for statement in statements:
            if isinstance(statement, ast.Target):
                self.error(statement.span, "'target' belongs inside the data block")
                continue
            for position, clause in enumerate(statement.chain):
                schema = self.lookup(clause, "model", R.BLOCK_CLAUSES["model"])
                if schema is None:
                    continue
                bound = self.bind(clause, schema)
                if bound is None:
                    continue
                if schema.name in R.MODEL and len(statement.chain) > 1:
                    self.error(clause.name_span, f"'{schema.name}' stands on a line of its own, not in a '->' chain")
                    continue
                last = position == len(statement.chain) - 1
                body = self.model_body(clause.body, top=False) if clause.body is not None and schema.body else None
                items.append(ModelItem(bound, statement.label if last else None, body, statement.label_span if last else None))
        if top:
            self.check_model(items)
        return items

    def check_model(self, items: list[ModelItem]) -> None:
        inputs = [i for i in items if i.bound.name == "input"]
        if not inputs and "input" not in self.program_clause_names("model"):
            self.error(self.program.block("model").name_span, "the model needs an input shape first: input [...]")
        elif inputs and items[0] is not inputs[0]:
            self.error(inputs[0].bound.clause.name_span, "'input' must be the first line of the model")
        for extra in inputs[1:]:
            self.error(extra.bound.clause.name_span, f"the model has one input (already given at line {inputs[0].bound.span.line})")

        labels: dict[str, Span] = {}

        def walk(items: list[ModelItem], inside: str | None) -> None:
            for item in items:
                if item.bound.name in ("input", "head") and inside is not None:
                    self.error(item.bound.clause.name_span, f"'{item.bound.name}' cannot go inside '{inside}'")
                if item.label is not None:
                    span = item.label_span or item.bound.clause.name_span
                    if item.label in labels:
                        self.error(span, f"duplicate label '{item.label}' (first at line {labels[item.label].line})")
                    elif inside == "repeat":
                        self.error(span, "a label inside 'repeat' would name every copy; label the repeat's line instead")
                    elif inside is not None:
                        self.error(span, f"labels name lines of the model itself, not inside '{inside}'; label the {inside}'s line instead")
                    labels.setdefault(item.label, span)
                if item.body is not None:
                    walk(item.body, item.bound.name)

        walk(items, None)
        heads = [i for i in items if i.bound.name == "head"]
        if heads:
            last_layer = max((n for n, i in enumerate(items) if i.bound.name != "head"), default=-1)
            for item in heads:
                if items.index(item) < last_layer:
                    self.error(item.bound.clause.name_span, "heads go at the end of the model, after the shared layers")
            seen: dict[str, ModelItem] = {}
            for item in heads:
                target = item.bound.values["target"]
                if target in seen:
                    self.error(item.bound.span_of("target"), f"duplicate head '{target}' (first at line {seen[target].bound.span.line})")
                seen.setdefault(target, item)

    # -- derived targets ---------------------------------------------------------------------------

    def check_targets(self) -> None:
        known = {"label"}
        for target in self.spec.targets:
            if target.name in known:
                what = "'label' is the data's own target" if target.name == "label" else f"the target '{target.name}' is already defined"
                self.error(target.name_span, f"{what}; choose another name")
            for name in _expr_names(target.expr):
                if name.name not in known:
                    hint, best = did_you_mean(name.name, known)
                    self.error(name.span, f"unknown name '{name.name}' in the expression; it can use 'label' and earlier targets{hint}", best)
            known.add(target.name)

    # -- references across blocks ------------------------------------------------------------------

    def cross_checks(self, aliases: dict[str, ast.Import]) -> None:
        """The registered cross-field checks (checks.py), then unused imports."""
        self.aliases, self.used = aliases, set()
        for check in CHECKS:
            check(self)
        for alias, imp in aliases.items():
            if alias not in self.used and self.spec.imports.get(alias) is not None:
                self.warning(imp.alias_span, f"'{alias}' is imported but never used")

    def import_ref(self, bound: Bound, param: str) -> CheckedSpec | None:
        """The checked import a clause's argument names (`teacher NAME`), or None, reporting
        an alias that is not imported."""
        alias = bound.values.get(param)
        if alias is None:
            return None
        alias = alias.split(".")[0]
        if alias not in self.aliases:
            hint, best = did_you_mean(alias, self.aliases)
            have = f" (imported: {', '.join(self.aliases)})" if self.aliases and not hint else ""
            self.error(bound.span_of(param), f"'{alias}' is not imported; add: import \"FILE.trick\" as {alias}{hint}{have}", best)
            return None
        self.used.add(alias)
        return self.spec.imports.get(alias)

    def program_clause_names(self, block: str) -> set[str]:
        clause = self.program.block(block)
        return {c.name for c in _clauses(clause)} if clause is not None else set()


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _or_list(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _describe_value(value: ast.Value) -> str:
    from .schema import show

    return f"'{show(value)}'"


def _clauses(block: ast.Clause):
    for statement in block.body or ():
        if isinstance(statement, ast.Line):
            yield from statement.chain


def _expr_names(expr) -> list[ast.Name]:
    found, stack = [], [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            found.append(node)
        elif isinstance(node, ast.BinOp):
            stack += [node.right, node.left]
        elif isinstance(node, ast.Neg):
            stack.append(node.operand)
    return found
