"""Lark tree -> AST: one node per grammar rule, each with the span it came from.

Lines the error recovery blanked (statements named `ERROR_PLACEHOLDER`) are dropped here,
and the few limits the grammar cannot state (reserved words as clause names, the depth of
a target expression) are checked, as `TrickSyntaxError`s.
"""

from __future__ import annotations

from lark import Token, Transformer_NonRecursive, v_args

from . import ast
from .diagnostics import Diagnostic, Span, TrickSyntaxError

MAX_EXPR_DEPTH = 100
ERROR_PLACEHOLDER = "__error__"
RESERVED_WORDS = frozenset({"spec", "import", "as", "target", "true", "false"})


def token_span(token: Token, file: str) -> Span:
    end_line = token.end_line if token.end_line is not None else token.line
    end_column = token.end_column if token.end_column is not None else token.column + max(len(token.value), 1)
    if token.type == "_NL":  # point at the end of the line, not the start of the next
        end_line, end_column = token.line, token.column + 1
    return Span(file, token.line, token.column, end_line, end_column)


class _Body(tuple):
    """The statements of a `{ }`, told apart from argument values while building a clause."""


def _without_blanked(statements):
    """The statements, less the placeholders of lines the error recovery blanked."""
    return (s for s in statements if not (isinstance(s, ast.Line) and s.chain[0].name == ERROR_PLACEHOLDER))


ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}  # the escapes a string may hold
ESCAPES_TEXT = "\\\", \\\\, \\n and \\t"
LARGEST_FLOAT = 1.7976931348623157e308  # a number literal must be a finite 64-bit float
_MAX_DIGITS = 310  # more digits than any integer below LARGEST_FLOAT has: never converted


class BadEscape(ValueError):
    """A backslash before a character that has no escape; `index` is its offset in the literal."""

    def __init__(self, index: int, char: str):
        super().__init__(f"unknown escape '\\{char}'")
        self.index, self.char = index, char


def unquote(literal: str) -> str:
    """The text of a STRING token: `\\n`, `\\t`, `\\"` and `\\\\` are a newline, a tab, a quote and
    a backslash; a backslash before any other character raises BadEscape."""
    out = []
    body = literal[1:-1]
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1 : index + 2]
            if escaped not in ESCAPES:
                raise BadEscape(index + 1, escaped)
            out.append(ESCAPES[escaped])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, meta) -> Span:
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, token: Token) -> Span:
        return token_span(token, self.file)

    def start(self, meta, items):
        return ast.Program(tuple(_without_blanked(items)), self.file)

    def spec_decl(self, meta, children):
        (name,) = children
        return ast.SpecDecl(str(name), self._span(meta), self._tok(name))

    def import_decl(self, meta, children):
        path, alias = children
        return ast.Import(self._unquote(path), str(alias), self._span(meta), self._tok(path), self._tok(alias))

    def line(self, meta, children):
        label = label_span = None
        if isinstance(children[0], Token):
            label, label_span = str(children[0]), self._tok(children[0])
            children = children[1:]
        chain = tuple(c for c in children if isinstance(c, ast.Clause))
        return ast.Line(chain, label, self._span(meta), label_span)

    def clause(self, meta, children):
        name, rest = children[0], children[1:]
        if str(name) in RESERVED_WORDS:  # the lexer lets some through right after '{'
            raise TrickSyntaxError(Diagnostic(self._tok(name), f"'{name}' is a reserved word and cannot name a clause here"))
        args, options, body = [], [], None
        for child in rest:
            if isinstance(child, _Body):
                body = tuple(child)
            elif isinstance(child, ast.Option):
                options.append(child)
            else:
                args.append(child)
        return ast.Clause(str(name), tuple(args), tuple(options), body, self._span(meta), self._tok(name))

    def body(self, meta, statements):
        return _Body(_without_blanked(statements))

    def target_decl(self, meta, children):
        name, expr = children
        if expr_depth(expr) > MAX_EXPR_DEPTH:
            raise TrickSyntaxError(Diagnostic(self._span(meta), f"this expression is too long (more than {MAX_EXPR_DEPTH} operations deep)"))
        return ast.Target(str(name), expr, self._span(meta), self._tok(name))

    def option(self, meta, children):
        name, value = children
        return ast.Option(str(name), value, self._span(meta), self._tok(name))

    def number(self, meta, tokens):
        text = "".join(str(t) for t in tokens)
        value = self._literal(tokens[-1])
        if len(tokens) == 2:
            value = -value
        return ast.Number(value, self._span(meta), text)

    def _literal(self, token: Token) -> int | float:
        """The value of an INT or FLOAT token; a number beyond the 64-bit float range is an error."""
        literal = str(token)
        if token.type == "INT":
            digits = literal.lstrip("0") or "0"
            value: int | float | None = int(digits) if len(digits) <= _MAX_DIGITS else None
            too_large = value is None or value > LARGEST_FLOAT
        else:
            value = float(literal)
            too_large = value == float("inf")
        if too_large:
            shown = literal if len(literal) <= 24 else f"{literal[:12]}... ({len(literal):,} characters)"
            raise TrickSyntaxError(Diagnostic(self._tok(token), f"the number {shown} is too large; numbers in a spec are at most about 1.8e308 (the largest 64-bit float)"))
        return value

    def _unquote(self, token: Token) -> str:
        try:
            return unquote(str(token))
        except BadEscape as err:
            column = token.column + err.index
            span = Span(self.file, token.line, column, token.line, column + 1 + len(err.char))
            raise TrickSyntaxError(Diagnostic(span, f"unknown escape '\\{err.char}' in a string; the escapes are {ESCAPES_TEXT} (write \\\\ for a backslash)")) from None

    def string(self, meta, children):
        return ast.String(self._unquote(children[0]), self._span(meta))

    def true(self, meta, children):
        return ast.Bool(True, self._span(meta))

    def false(self, meta, children):
        return ast.Bool(False, self._span(meta))

    def ref(self, meta, names):
        return ast.Ref(tuple(str(n) for n in names), self._span(meta))

    def list(self, meta, items):
        return ast.List(tuple(items), self._span(meta))

    def range(self, meta, children):
        low, _, high = children
        return ast.Range(low, high, self._span(meta))

    # target expressions
    def compare(self, meta, children):
        left, op, right = children
        return ast.BinOp(str(op), left, right, self._span(meta))

    def _binop(op):  # noqa: N805 - a factory used in the class body
        def build(self, meta, children):
            left, right = children
            return ast.BinOp(op, left, right, self._span(meta))

        return build

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    div = _binop("/")
    mod = _binop("%")

    def neg(self, meta, children):
        return ast.Neg(children[0], self._span(meta))

    def int_atom(self, meta, children):
        return ast.Number(self._literal(children[0]), self._span(meta), str(children[0]))

    def float_atom(self, meta, children):
        return ast.Number(self._literal(children[0]), self._span(meta), str(children[0]))

    def name_atom(self, meta, children):
        return ast.Name(str(children[0]), self._span(meta))


def expr_depth(expr) -> int:
    """Depth of an expression tree, without recursion (the tree may be very deep)."""
    deepest, stack = 0, [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, ast.BinOp):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, ast.Neg):
            stack.append((node.operand, depth + 1))
    return deepest
