"""`--set block.clause=value` and `--set block.clause.option=value`: edits of a spec's AST.

Any block but `model`, whose lines are layers rather than settings (a clause named there would
be a new layer), so `--set model....` is refused with a message saying what --set can change;
a layer on a labelled line is the exception, since the label says which one:
`--set model.LABEL.LAYER=value` and `--set model.LABEL.LAYER.option=value` (the paths that a
sweep's `vary` names too).

An override is parsed as .trick text and merged into the program before checking, so it is
checked exactly like the spec itself, and its errors point at the override.
"""

from __future__ import annotations

import dataclasses
import re

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, Span, TrickCheckError, TrickError, did_you_mean
from ..dsl.parser import parse_text

# The model's lines are layers, not settings: `model.dropout=0.5` would add a layer after the
# output and `model.dense.units=4` cannot say which dense. The model is changed in the spec.
MODEL_REFUSED = (
    "--set cannot change the model block ('{setting}'): its lines are layers, not settings, so there is no clause to set; "
    "edit the spec to change the network. --set changes the clauses of the other blocks, e.g. --set train.epochs=5 or --set data.validation=0.2"
)

_LAYER_SETTING = re.compile(r"^model\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?=(.+)$", re.DOTALL)
_SETTING = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?=(.+)$", re.DOTALL)


def parse_setting(setting: str, index: int) -> tuple[str, str, str | None, ast.Clause, str]:
    """(block, clause, option, the parsed clause, its text) of one `--set` argument."""
    name = f"--set #{index + 1}"
    layer = _LAYER_SETTING.match(setting.strip())
    match = layer or _SETTING.match(setting.strip())
    if not match:
        raise TrickCheckError(
            Diagnostic(Span.point(name, 1, 1), f"expected block.clause=VALUE or block.clause.option=VALUE, found '{setting}'", source_line=setting)
        )
    if layer is not None:  # model.LABEL.LAYER[.OPTION]=VALUE
        label, clause, option, value = layer.groups()
        block = f"model.{label}"
    else:
        block, clause, option, value = match.groups()
        if block == "model":
            raise TrickCheckError(_refused(setting, name))
    text = f"{block.split('.')[0]} {{ {clause} {option}={value} }}" if option else f"{block.split('.')[0]} {{ {clause} {value} }}"
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
        if block_name.startswith("model."):
            items = _set_layer(items, block_name.split(".", 1)[1], clause_name, option, new, setting, index)
            continue
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
            body[at] = dataclasses.replace(body[at], chain=(_with_option(body[at].chain[0], new),))
        else:
            body[at] = dataclasses.replace(body[at], chain=(new,))
        items[position] = dataclasses.replace(items[position], chain=(dataclasses.replace(block, body=tuple(body)),))
    return dataclasses.replace(program, items=tuple(items)), sources


def _is_block(item, name: str) -> bool:
    return isinstance(item, ast.Line) and len(item.chain) == 1 and item.chain[0].name == name and item.chain[0].body is not None


def _with_option(old: ast.Clause, new: ast.Clause) -> ast.Clause:
    """`old` with the option of `new` set: in its place when `old` has it, else last."""
    option = new.options[0]
    if old.option(option.name) is None:
        return dataclasses.replace(old, options=old.options + (option,))
    return dataclasses.replace(old, options=tuple(option if o.name == option.name else o for o in old.options))


def _refused(setting: str, name: str, message: str | None = None) -> Diagnostic:
    at = setting.index("model") + 1
    return Diagnostic(Span(name, 1, at, 1, at + len("model")), message or MODEL_REFUSED.format(setting=setting.strip()), source_line=setting)


def _set_layer(items: list, label: str, layer: str, option: str | None, new: ast.Clause, setting: str, index: int) -> list:
    """The items with the layer `layer` of the model line labelled `label` replaced by `new`
    (or, with `option`, given that option of `new`)."""
    name = f"--set #{index + 1}"
    position = next((i for i, item in enumerate(items) if _is_block(item, "model")), None)
    body = list(items[position].chain[0].body or ()) if position is not None else []
    labels = [s.label for s in body if isinstance(s, ast.Line) and s.label]
    at = next((i for i, s in enumerate(body) if isinstance(s, ast.Line) and s.label == label), None)
    if at is None:
        hint, best = did_you_mean(label, labels)
        if not hint:  # not a label at all (`model.dense.units=4`): the model's lines are not settings
            raise TrickCheckError(_refused(setting, name))
        raise TrickCheckError(Diagnostic(Span.point(name, 1, 7), f"the model has no line labelled '{label}'{hint} (--set model.LABEL.LAYER=VALUE changes a layer on a labelled line)", suggestion=best, source_line=setting))
    chain = body[at].chain
    found = [i for i, c in enumerate(chain) if c.name == layer]
    if len(found) != 1:
        names = [c.name for c in chain]
        if found:
            why = f"the line labelled '{label}' has {len(found)} '{layer}' layers; --set cannot say which (label a line of its own for it)"
        else:
            hint, _ = did_you_mean(layer, names)
            why = f"the line labelled '{label}' has no '{layer}' layer{hint} (it has {', '.join(names)})"
        raise TrickCheckError(Diagnostic(Span.point(name, 1, 8 + len(label)), why, source_line=setting))
    old = chain[found[0]]
    changed = _with_option(old, new) if option else (new if new.body is not None else dataclasses.replace(new, body=old.body))  # `repeat 3` keeps its body
    body[at] = dataclasses.replace(body[at], chain=chain[: found[0]] + (changed,) + chain[found[0] + 1 :])
    block = items[position].chain[0]
    items[position] = dataclasses.replace(items[position], chain=(dataclasses.replace(block, body=tuple(body)),))
    return items
