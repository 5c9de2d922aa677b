"""A value of the AST as text: the one printer for `trickc fmt` and for messages.

`show_value` spells a value exactly as the formatter writes it, and as the parser reads it
back: `parse(show_value(v)) == v` for every value the language can write. Numbers keep the
spelling they were written with (a number built in code, without one, is written as Python's
`repr` of it). A string is quoted, with a backslash, a quote, a newline and a tab written as
the escapes `\\\\`, `\\"`, `\\n` and `\\t`, so that it stays on one line: `transform.unquote`
reads these four back, and refuses a backslash before any other character (an unknown escape
is a syntax error naming the four). Other characters, a carriage return among them, have no escape in the
language and are written as they are (only NUL cannot be in a spec at all).
"""

from __future__ import annotations

from . import ast

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"})


def show_value(value: ast.Value) -> str:
    """`value` as .trick source text."""
    if isinstance(value, ast.Number):
        return value.text or repr(value.value)
    if isinstance(value, ast.String):
        return '"' + value.value.translate(_ESCAPES) + '"'
    if isinstance(value, ast.Bool):
        return "true" if value.value else "false"
    if isinstance(value, ast.Ref):
        return value.name
    if isinstance(value, ast.List):
        return "[" + ", ".join(show_value(v) for v in value.items) + "]"
    if isinstance(value, ast.Range):
        return f"{show_value(value.low)}..{show_value(value.high)}"
    raise TypeError(f"not a value: {value!r}")
