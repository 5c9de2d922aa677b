"""`--set block.clause=value` and `--set block.clause.option=value`: edits of a spec's AST.

Any block but `model`, whose lines are layers rather than settings (a clause named there would
be a new layer), so `--set model....` is refused with a message saying what --set can change.

An override is parsed as .trick text and merged into the program before checking, so it is
checked exactly like the spec itself, and its errors point at the override.
"""

from __future__ import annotations

import dataclasses
import re

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, Span, TrickCheckError, TrickError
from ..dsl.parser import parse_text

# The model's lines are layers, not settings: `model.dropout=0.5` would add a layer after the
# output and `model.dense.units=4` cannot say which dense. The model is changed in the spec.
MODEL_REFUSED = (
    "--set cannot change the model block ('{setting}'): its lines are layers, not settings, so there is no clause to set; "
    "edit the spec to change the network. --set changes the clauses of the other blocks, e.g. --set train.epochs=5 or --set data.validation=0.2"
)

_SETTING = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?=(.+)$", re.DOTALL)


def parse_setting(setting: str, index: int) -> tuple[str, str, str | None, ast.Clause, str]:
    """(block, clause, option, the parsed clause, its text) of one `--set` argument."""
    name = f"--set #{index + 1}"
    match = _SETTING.match(setting.strip())
    if not match:
        raise TrickCheckError(
            Diagnostic(Span.point(name, 1, 1), f"expected block.clause=VALUE or block.clause.option=VALUE, found '{setting}'", source_line=setting)
        )
    block, clause, option, value = match.groups()
    if block == "model":
        at = setting.index("model") + 1
        raise TrickCheckError(Diagnostic(Span(name, 1, at, 1, at + len("model")), MODEL_REFUSED.format(setting=setting.strip()), source_line=setting))
    text = f"{block} {{ {clause} {option}={value} }}" if option else f"{block} {{ {clause} {value} }}"
    try:
        program = parse_text(text, name)
    except TrickError as err:
        raise TrickCheckError(err.diagnostics) from None
    lines = [i for i in program.items if isinstance(i, ast.Line)]
    body = lines[0].chain[0].body if lines else None
    if len(lines) != 1 or not body or len(body) != 1 or not isinstance(body[0], ast.Line) or len(body[0].chain) != 1:
        raise TrickCheckError(Diagnostic(Span.point(name, 1, 1), f"'{setting}' sets more than one clause", source_line=text))
    return block, clause, option, body[0].chain[0], text


def apply(program: ast.Program, settings: list[str]) -> tuple[ast.Program, dict[str, str]]:
    """The program with the settings applied, and the text of each setting by display name."""
    sources: dict[str, str] = {}
    items = list(program.items)
    for index, setting in enumerate(settings):
        block_name, clause_name, option, new, text = parse_setting(setting, index)
        sources[new.span.file] = text
        position = next((i for i, item in enumerate(items) if _is_block(item, block_name)), None)
        if position is None:
            block = ast.Clause(block_name, body=(ast.Line((new,), span=new.span),), span=new.span, name_span=new.span)
            items.append(ast.Line((block,), span=new.span))
            continue
        block = items[position].chain[0]
        body = list(block.body or ())
        at = next((i for i, s in enumerate(body) if isinstance(s, ast.Line) and len(s.chain) == 1 and s.chain[0].name == clause_name), None)
        if at is None:
            body.append(ast.Line((new,), span=new.span))
        elif option:
            old = body[at].chain[0]
            options = [o for o in old.options if o.name != option] + list(new.options)
            body[at] = dataclasses.replace(body[at], chain=(dataclasses.replace(old, options=tuple(options)),))
        else:
            body[at] = dataclasses.replace(body[at], chain=(new,))
        items[position] = dataclasses.replace(items[position], chain=(dataclasses.replace(block, body=tuple(body)),))
    return dataclasses.replace(program, items=tuple(items)), sources


def _is_block(item, name: str) -> bool:
    return isinstance(item, ast.Line) and len(item.chain) == 1 and item.chain[0].name == name and item.chain[0].body is not None
