"""Text -> AST: reading a spec file, and parsing it with every syntax error reported.

`parse_text` reports every independent syntax error of a file: after an error it blanks the
offending line (keeping its braces, so that blocks still nest) and parses again, so one
typo does not hide the next. Parse errors never escape as Lark exceptions; they become a
`TrickSyntaxError` whose messages say what was expected in words.

The parts: `grammar` (the Lark parser and its postlexer), `syntax_errors` (errors in words,
and the repairs to parse on), `transform` (Lark tree -> AST).
"""

from __future__ import annotations

import os
from pathlib import Path

from lark.exceptions import UnexpectedInput, VisitError

from . import ast
from .diagnostics import Diagnostic, SourceLines, Span, TrickSyntaxError
from .grammar import lark
from .syntax_errors import MAX_NESTING, TERMINAL_WORDS, describe, nesting_error
from .transform import ERROR_PLACEHOLDER, MAX_EXPR_DEPTH, RESERVED_WORDS, ToAst, token_span

__all__ = [
    "ERROR_PLACEHOLDER",
    "MAX_BYTES",
    "MAX_ERRORS",
    "MAX_EXPR_DEPTH",
    "MAX_NESTING",
    "RESERVED_WORDS",
    "TERMINAL_WORDS",
    "decode_source",
    "parse_text",
    "read_source",
]

MAX_BYTES = 4 * 1024 * 1024  # a spec is a page of text; this is far beyond any real one
MAX_ERRORS = 20


# ---- reading ------------------------------------------------------------------------------


def read_source(path: str | os.PathLike) -> str:
    """The text of a spec file, or a TrickSyntaxError saying why it cannot be one."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise TrickSyntaxError(Diagnostic(Span.point(name, 1, 1), f"cannot read the file: {err.strerror or err}"))
    except ValueError:  # a NUL or an unencodable character in the name
        raise TrickSyntaxError(Diagnostic(Span.point(name, 1, 1), "cannot read the file: not a usable file name"))
    return decode_source(data, name)


def decode_source(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise TrickSyntaxError(
            Diagnostic(Span.point(name, 1, 1), f"the file is too large ({len(data):,} bytes; a spec may have at most {MAX_BYTES:,})")
        )
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise TrickSyntaxError(Diagnostic(Span.point(name, line, 1), "this is a binary file, not a .trick spec (it contains NUL bytes)"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise TrickSyntaxError(
            Diagnostic(Span.point(name, line, column), f"the file is not valid UTF-8 (byte 0x{data[err.start]:02x})")
        )
    return text


# ---- parsing ------------------------------------------------------------------------------


def parse_text(text: str, file: str = "<string>") -> ast.Program:
    """Parse the text of one file; raise TrickSyntaxError listing every syntax error."""
    if len(text) > MAX_BYTES:
        raise TrickSyntaxError(Diagnostic(Span.point(file, 1, 1), f"the text is too large ({len(text):,} characters; a spec may have at most {MAX_BYTES:,})"))
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise TrickSyntaxError(Diagnostic(Span.point(file, line, 1), "this is binary data, not a .trick spec (it contains NUL characters)"))
    lines = SourceLines()
    lines.add(file, text)
    nesting = nesting_error(text, file)
    if nesting:
        raise TrickSyntaxError(lines.attach(nesting))

    errors: list[Diagnostic] = []
    current = text
    while True:
        try:
            tree = lark().parse(current)
        except UnexpectedInput as err:
            diagnostic, repair = describe(err, current, file, text)
            errors.append(lines.attach(diagnostic))
            if repair is None or len(errors) >= MAX_ERRORS:
                break
            repaired = repair(current)
            if repaired == current:
                break
            current = repaired
            continue
        if errors:
            break
        try:
            program = ToAst(file).transform(tree)
        except VisitError as err:
            if isinstance(err.orig_exc, TrickSyntaxError):
                raise TrickSyntaxError([lines.attach(d) for d in err.orig_exc.diagnostics]) from None
            raise
        return ast.Program(program.items, file, _comments(text, file), text)
    if len(errors) >= MAX_ERRORS:
        last = errors[-1]
        errors.append(Diagnostic(last.span, "too many errors; stopping here", "error", None, last.source_line))
    raise TrickSyntaxError(errors)


def _comments(text: str, file: str) -> tuple[ast.Comment, ...]:
    """The comments of a file that parsed, found with the lexer so '#' in strings is not one."""
    found = []
    for token in lark().lex(text, dont_ignore=True):
        if token.type == "COMMENT":
            found.append(ast.Comment(token.value.rstrip("\r"), token_span(token, file)))
    return tuple(found)
