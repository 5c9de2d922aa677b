"""The tricks of a spec, found by the registry's marks, and the spec without some of them.

A trick is a layer whose entry has the role `norm` or `noise` (batchnorm, groupnorm, dropout,
noise, ...), an option marked `trick` that the spec sets away from its default (dropconnect=,
smoothing=), a clause with the role `trick` (regularize, weight_noise, early_stop, schedule,
adversarial, every augmentation step, tta, scales), or a whole block with that role
(transfer, distill, curriculum). The occurrences of one trick (every batchnorm, say) form one
group, removed together.

Removing is an edit of the AST: a layer leaves its `->` chain (a line left empty goes, and a
repeat, residual or head left empty), an option leaves its clause, a clause its block (a
block left empty goes), a block the file; an import nothing uses any more goes too, as do
the comments on the lines that went. The result is written by the canonical formatter.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..compiler import clauses as R
from ..compiler.schema import Invalid, Param
from ..dsl import ast
from ..dsl.show import show_value

LAYER_TRICK_ROLES = ("norm", "noise")
BODY_CLAUSES = ("repeat", "residual", "head")  # model clauses whose body holds layers


@dataclass(frozen=True)
class Occurrence:
    """One place a trick is written: a clause, or an option of a clause."""

    clause: ast.Clause
    option: str | None
    text: str  # as written, e.g. "dropout 0.5" or "smoothing=0.1"
    line: int


@dataclass(frozen=True)
class Trick:
    """A group of occurrences of one trick, e.g. every `batchnorm` of the model."""

    key: str  # "batchnorm", "dropconnect", "regularize l2", "augment shift", "distill"
    occurrences: tuple[Occurrence, ...]

    @property
    def slug(self) -> str:
        return slug(self.key)

    def describe(self) -> str:
        """`dropout 0.5` (line 20); `batchnorm` (lines 18, 19)."""
        texts = sorted({o.text for o in self.occurrences}, key=[o.text for o in self.occurrences].index)
        lines = sorted({o.line for o in self.occurrences})
        where = f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"
        return f"{'; '.join(f'`{t}`' for t in texts)} ({where})"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def clause_text(clause: ast.Clause) -> str:
    """A clause without its body, on one line, as the formatter writes it."""
    parts = [clause.name] + [show_value(a) for a in clause.args] + [f"{o.name}={show_value(o.value)}" for o in clause.options]
    return " ".join(parts)


def _kind_params(schema, clause: ast.Clause) -> list[Param]:
    params = list(schema.params)
    if schema.kind is not None:
        kind = next((a.name for a in clause.args if isinstance(a, ast.Ref) and a.name in schema.kind), schema.kind_default)
        entry = schema.kind.get(kind) if kind else None
        params += list(entry.params) if entry else []
    return params


def _trick_options(schema, clause: ast.Clause) -> list[tuple[str, Occurrence]]:
    """The options of `clause` marked as tricks that the spec sets away from their default."""
    found = []
    for param in _kind_params(schema, clause):
        option = clause.option(param.name)
        if not param.trick or option is None:
            continue
        try:
            if param.type.convert(option.value) == param.default or param.type.convert(option.value) == 0:
                continue  # `dropconnect=0` is no trick
        except Invalid:
            continue
        found.append((param.name, Occurrence(clause, param.name, f"{clause.name} … {param.name}={show_value(option.value)}", option.span.line if option.span else clause.span.line)))
    return found


def find_tricks(program: ast.Program) -> list[Trick]:
    """The tricks of a spec (that checks clean), grouped, in the order they first appear."""
    groups: dict[str, list[Occurrence]] = {}

    def add(key: str, occurrence: Occurrence) -> None:
        groups.setdefault(key, []).append(occurrence)

    def model(statements) -> None:
        for statement in statements:
            if not isinstance(statement, ast.Line):
                continue
            for clause in statement.chain:
                schema = R.LAYERS.get(clause.name) or R.MODEL.get(clause.name)
                if schema is None:
                    continue
                if schema.role in LAYER_TRICK_ROLES:
                    add(clause.name, Occurrence(clause, None, clause_text(clause), clause.span.line))
                for key, occurrence in _trick_options(schema, clause):
                    add(key, occurrence)
                if clause.body is not None:
                    model(clause.body)

    for block in program.blocks:
        entry = R.BLOCKS.get(block.name)
        if entry is None or block.name == "sweep":
            continue
        if entry.role == "trick":
            add(block.name, Occurrence(block, None, f"{block.name} {{ … }}", block.span.line))
            continue
        if block.name == "model":
            model(block.body or ())
            continue
        for statement in block.body or ():
            if not isinstance(statement, ast.Line):
                continue
            clause = statement.chain[0]
            schema = next((r.get(clause.name) for r in R.BLOCK_CLAUSES[block.name] if clause.name in r), None)
            if schema is None:
                continue
            if schema.role == "trick":
                key = f"augment {clause.name}" if block.name == "augment" else clause.name
                if schema.repeatable and schema.kind is not None and clause.args and isinstance(clause.args[0], ast.Ref):
                    key = f"{clause.name} {clause.args[0].name}"
                add(key, Occurrence(clause, None, clause_text(clause), clause.span.line))
            for key, occurrence in _trick_options(schema, clause):
                add(key, occurrence)
    return [Trick(key, tuple(found)) for key, found in groups.items()]


# ---- removing --------------------------------------------------------------------------------------------


def without(program: ast.Program, tricks: list[Trick]) -> ast.Program:
    """The program with every occurrence of `tricks` removed (see the module's docstring)."""
    clauses = {id(o.clause) for t in tricks for o in t.occurrences if o.option is None}
    options = {(id(o.clause), o.option) for t in tricks for o in t.occurrences if o.option is not None}
    gone: list[tuple[int, int]] = []  # line ranges of removed statements: their comments go too

    def fix_clause(clause: ast.Clause) -> ast.Clause | None:
        if id(clause) in clauses:
            return None
        kept = tuple(o for o in clause.options if (id(clause), o.name) not in options)
        body = clause.body
        if body is not None:
            body = fix_body(body)
            if not body and clause.body and (clause.name in BODY_CLAUSES or clause.name in R.BLOCKS):
                return None  # a repeat, residual, head or block left empty
        if kept == clause.options and body is clause.body:
            return clause
        return dataclasses.replace(clause, options=kept, body=body)

    def fix_body(statements) -> tuple:
        out = []
        changed = False
        for statement in statements:
            if not isinstance(statement, ast.Line):
                out.append(statement)
                continue
            chain = tuple(c for c in (fix_clause(c) for c in statement.chain) if c is not None)
            if not chain:
                gone.append((statement.span.line, statement.span.end_line))
                changed = True
                continue
            if chain != statement.chain or any(a is not b for a, b in zip(chain, statement.chain)):
                statement = dataclasses.replace(statement, chain=chain)
                changed = True
            out.append(statement)
        return tuple(out) if changed else tuple(statements)

    items = []
    for item in program.items:
        if isinstance(item, ast.Line):
            chain = tuple(c for c in (fix_clause(c) for c in item.chain) if c is not None)
            if not chain:
                gone.append((item.span.line, item.span.end_line))
                continue
            item = dataclasses.replace(item, chain=chain) if chain != item.chain else item
        items.append(item)
    result = dataclasses.replace(program, items=tuple(items), comments=_comments_kept(program, gone))
    return drop_unused_imports(result, program)


def _comments_kept(program: ast.Program, gone: list[tuple[int, int]]) -> tuple:
    return tuple(c for c in program.comments if not any(first <= c.span.line <= last for first, last in gone))


def _refs(node) -> set[str]:
    """The first part of every name the statements refer to (import aliases among them)."""
    found: set[str] = set()

    def value(v) -> None:
        if isinstance(v, ast.Ref):
            found.add(v.parts[0])
        elif isinstance(v, ast.List):
            for item in v.items:
                value(item)

    def clause(c: ast.Clause) -> None:
        for a in c.args:
            value(a)
        for o in c.options:
            value(o.value)
        for s in c.body or ():
            if isinstance(s, ast.Line):
                for inner in s.chain:
                    clause(inner)

    for item in node.items:
        if isinstance(item, ast.Line):
            for c in item.chain:
                clause(c)
    return found


def drop_unused_imports(program: ast.Program, original: ast.Program) -> ast.Program:
    """`program` without the imports that `original` used and it no longer does."""
    before, after = _refs(original), _refs(program)
    unused = {i.alias for i in program.imports if i.alias in before and i.alias not in after}
    if not unused:
        return program
    gone = [(i.span.line, i.span.end_line) for i in program.imports if i.alias in unused]
    items = tuple(i for i in program.items if not (isinstance(i, ast.Import) and i.alias in unused))
    return dataclasses.replace(program, items=items, comments=_comments_kept(program, gone))


def without_sweep(program: ast.Program) -> ast.Program:
    """The program without its sweep block (a variant is a plain run of the spec)."""
    block = program.block("sweep")
    if block is None:
        return program
    items = tuple(i for i in program.items if not (isinstance(i, ast.Line) and i.chain[0] is block))
    return dataclasses.replace(program, items=items, comments=_comments_kept(program, [(block.span.line, block.span.end_line)]))


# ---- moving a spec ---------------------------------------------------------------------------------------

_PATH_KINDS = ("file", "folder")  # data sources that read a path relative to the spec


def relocated(program: ast.Program, spec_dir: Path, out_dir: Path) -> ast.Program:
    """The program with its relative paths (imports, a data file or folder) rewritten so that
    a copy of it in `out_dir` reads the same files as the original in `spec_dir`."""
    spec_dir, out_dir = Path(spec_dir).resolve(), Path(out_dir).resolve()
    if spec_dir == out_dir:
        return program

    def moved(path: str) -> str:
        if os.path.isabs(path):
            return path
        return Path(os.path.relpath(spec_dir / path, out_dir)).as_posix()

    items = []
    for item in program.items:
        if isinstance(item, ast.Import):
            item = dataclasses.replace(item, path=moved(item.path))
        elif isinstance(item, ast.Line) and item.chain[0].name == "data" and item.chain[0].body is not None:
            block = item.chain[0]
            body = tuple(_moved_source(s, moved) for s in block.body)
            item = dataclasses.replace(item, chain=(dataclasses.replace(block, body=body),))
        items.append(item)
    return dataclasses.replace(program, items=tuple(items))


def _moved_source(statement, moved):
    if not isinstance(statement, ast.Line) or statement.chain[0].name != "source":
        return statement
    clause = statement.chain[0]
    args = list(clause.args)
    if not args or not isinstance(args[0], ast.Ref) or args[0].name not in _PATH_KINDS:
        return statement
    args = [dataclasses.replace(a, value=moved(a.value)) if i == 1 and isinstance(a, ast.String) else a for i, a in enumerate(args)]
    options = [
        dataclasses.replace(o, value=dataclasses.replace(o.value, value=moved(o.value.value)))
        if isinstance(o.value, ast.String) and (o.name == "path" or o.name == "y" and o.value.value.lower().endswith(".npy"))
        else o
        for o in clause.options
    ]
    return dataclasses.replace(statement, chain=(dataclasses.replace(clause, args=tuple(args), options=tuple(options)),))
