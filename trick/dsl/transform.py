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


def unquote(literal: str) -> str:
    """The text of a STRING token: `\\n` and `\\t` are a newline and a tab, `\\x` any other character x."""
    out = []
    chars = iter(literal[1:-1])
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            out.append({"n": "\n", "t": "\t"}.get(escaped, escaped))
        else:
            out.append(char)
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
        return ast.Import(unquote(str(path)), str(alias), self._span(meta), self._tok(path), self._tok(alias))

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
        literal = str(tokens[-1])
        value: int | float = int(literal) if tokens[-1].type == "INT" else float(literal)
        if len(tokens) == 2:
            value = -value
        return ast.Number(value, self._span(meta), text)

    def string(self, meta, children):
        return ast.String(unquote(str(children[0])), self._span(meta))

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
        return ast.Number(int(children[0]), self._span(meta), str(children[0]))

    def float_atom(self, meta, children):
        return ast.Number(float(children[0]), self._span(meta), str(children[0]))

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
