"""Text -> AST: the Lark LALR parser, error messages in words, and error recovery.

`parse_text` reports every independent syntax error of a file: after an error it blanks the
offending line (keeping its braces, so that blocks still nest) and parses again, so one
typo does not hide the next. Parse errors never escape as Lark exceptions; they become a
`TrickSyntaxError` whose messages say what was expected in words.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, SourceLines, Span, TrickSyntaxError

MAX_BYTES = 4 * 1024 * 1024  # a spec is a page of text; this is far beyond any real one
MAX_NESTING = 50  # braces, brackets and parentheses
MAX_EXPR_DEPTH = 100
MAX_ERRORS = 20
ERROR_PLACEHOLDER = "__error__"
RESERVED_WORDS = frozenset({"spec", "import", "as", "target", "true", "false"})

# What each terminal is, in words, for "expected ..." messages.
TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "MINUS": "a number",
    "STRING": "a string",
    "TRUE": "a value",
    "FALSE": "a value",
    "LSQB": "a value",
    "_NL": "a new line",
    "SEMICOLON": "';'",
    "$END": "the end of the file",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "COLON": "':'",
    "DOT": "'.'",
    "ARROW": "'->'",
    "DOTDOT": "'..'",
    "PLUS": "an operator",
    "STAR": "an operator",
    "SLASH": "an operator",
    "PERCENT": "an operator",
    "COMPARE": "an operator",
    "SPEC": "'spec'",
    "IMPORT": "'import'",
    "AS": "'as'",
    "TARGET": "'target'",
}
# Terminals that only ever continue something already well-formed; listing them in
# "expected ..." would bury the useful alternatives.
_CONTINUATIONS = {"ARROW", "DOTDOT", "DOT", "LBRACE", "EQUAL", "COLON", "PLUS", "STAR", "SLASH", "PERCENT", "COMPARE", "MINUS"}
_KEYWORDS = {"SPEC", "IMPORT", "AS", "TARGET", "TRUE", "FALSE"}
_VALUE_TERMINALS = {"NAME", "INT", "FLOAT", "MINUS", "STRING", "TRUE", "FALSE", "LSQB"}
_WORD_ORDER = ["a name", "a value", "a number", "a string", "an operator", "'as'", "'='", "','", "']'", "')'", "'}'", "a new line", "';'", "the end of the file"]


class _Postlex:
    """Drops newlines inside [ ] and ( ) where a list or expression obviously goes on, and
    remembers the last tokens, to say what came before an error."""

    always_accept = ("_NL",)
    _OPENERS = {"LSQB", "LPAR"}
    _CLOSERS = {"RSQB", "RPAR"}
    _CONTINUED = {"LSQB", "LPAR", "COMMA", "PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "COMPARE"}

    def __init__(self) -> None:
        self._local = threading.local()

    def before(self, token: Token) -> Token | None:
        """The token the parser saw before `token` (which may not have reached it)."""
        local = self._local
        last = getattr(local, "last", None)
        if last is not None and last.start_pos == token.start_pos and last.type == token.type:
            return getattr(local, "previous", None)
        return last

    def _emit(self, token: Token) -> Token:
        self._local.previous = self._local.last
        self._local.last = token
        return token

    def process(self, stream):
        depth = 0
        self._local.previous = self._local.last = None
        pending_newline = None  # a newline inside brackets, kept only if the list ends there
        for token in stream:
            if token.type == "_NL" and depth:
                last = self._local.last
                if last is None or last.type not in self._CONTINUED:
                    pending_newline = pending_newline or token
                continue
            if pending_newline is not None:
                if token.type not in self._CLOSERS and token.type not in self._CONTINUED:
                    yield self._emit(pending_newline)
                pending_newline = None
            if token.type in self._OPENERS:
                depth += 1
            elif token.type in self._CLOSERS:
                depth = max(depth - 1, 0)
            yield self._emit(token)
        if pending_newline is not None:
            yield self._emit(pending_newline)


_POSTLEX = _Postlex()


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark.open_from_package(
        "trick.dsl",
        "trick.lark",
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        postlex=_POSTLEX,
    )


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
    nesting = _nesting_error(text, file)
    if nesting:
        raise TrickSyntaxError(lines.attach(nesting))

    errors: list[Diagnostic] = []
    current = text
    while True:
        try:
            tree = _lark().parse(current)
        except UnexpectedInput as err:
            diagnostic, repair = _describe(err, current, file)
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
            program = _ToAst(file).transform(tree)
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
    for token in _lark().lex(text, dont_ignore=True):
        if token.type == "COMMENT":
            found.append(ast.Comment(token.value.rstrip("\r"), _token_span(token, file)))
    return tuple(found)


def _nesting_error(text: str, file: str) -> Diagnostic | None:
    """Deep nesting is refused before parsing, so no later stage can run out of stack."""
    depth = 0
    line, column = 1, 0
    in_string = in_comment = False
    escaped = False
    for char in text:
        column += 1
        if char == "\n":
            line, column = line + 1, 0
            in_string = in_comment = False
            continue
        if in_comment:
            continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == "#":
            in_comment = True
        elif char == '"':
            in_string = True
        elif char in "{[(":
            depth += 1
            if depth > MAX_NESTING:
                return Diagnostic(Span.point(file, line, column), f"blocks, lists and parentheses are nested too deeply (more than {MAX_NESTING} levels)")
        elif char in "}])":
            depth = max(depth - 1, 0)
    return None


def _blank_line(text: str, line: int) -> str:
    """Replace one line by placeholders that keep its braces balanced, to parse on."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return text
    original = lines[line - 1]
    parts: list[str] = []
    in_string = False
    for i, char in enumerate(original):
        if in_string:
            if char == '"' and original[i - 1] != "\\":
                in_string = False
            continue
        if char == "#":
            break
        if char == '"':
            in_string = True
        elif char == "{":
            parts.append(f"; {ERROR_PLACEHOLDER} {{")
        elif char == "}":
            parts.append("; }")
    lines[line - 1] = " ".join(parts)
    return "\n".join(lines)


def _open_brace(text: str) -> tuple[int, int] | None:
    """(line, column) of the innermost '{' that is never closed, if any."""
    stack: list[tuple[int, int]] = []
    for token in _safe_tokens(text):
        if token.type == "LBRACE":
            stack.append((token.line, token.column))
        elif token.type == "RBRACE" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _safe_tokens(text: str):
    try:
        yield from _lark().lex(text)
    except UnexpectedInput:
        return


def _describe(err: UnexpectedInput, text: str, file: str):
    """A Lark error as a diagnostic in words, and how to repair the text to parse on."""
    blank = lambda line: (lambda t: _blank_line(t, line))  # noqa: E731
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        span = Span.point(file, err.line, err.column)
        if char == '"':
            message = "this string is never closed; expected '\"' before the end of the line"
        elif char == "\t" or char.isspace():
            message = f"unexpected whitespace character {char!r}"
        elif char.isprintable():
            message = f"unexpected character '{char}'"
        else:
            message = f"unexpected character {char!r}"
        if char in "-." and err.pos_in_stream + 1 < len(text) and text[err.pos_in_stream + 1] in "-.":
            message = f"unexpected '{text[err.pos_in_stream:err.pos_in_stream + 2]}'"
        return Diagnostic(span, message), blank(err.line)

    assert isinstance(err, (UnexpectedToken, UnexpectedEOF))
    token = err.token if isinstance(err, UnexpectedToken) else Token("$END", "")
    expected_set = _expected_by_parser(err)
    at_end = token.type == "$END"
    if at_end:
        opened = _open_brace(text)
        if opened:
            span = Span.point(file, *opened)
            return Diagnostic(span, "this '{' is never closed; expected '}' before the end of the file"), None
        last_line = text.rstrip().count("\n") + 1
        last_column = len(text.rstrip().split("\n")[-1]) + 1
        span = Span.point(file, last_line, last_column)
    else:
        span = _token_span(token, file)
    found = _found(token)
    previous = _POSTLEX.before(token) if not at_end else getattr(_POSTLEX._local, "last", None)
    # LALR merges states, so the parser may list '}' outside any block or the end of the
    # file inside one; the braces seen so far tell which is real.
    inside_block = _open_brace(text[: _offset(text, token)]) is not None
    expected_set.discard("$END" if inside_block else "RBRACE")
    if token.type == "RBRACE" and "RBRACE" not in expected_set and _open_brace(text[: _offset(text, token)]) is None:
        offset = _offset(text, token)
        unmatched = Diagnostic(span, "unmatched '}': there is no block to close here")
        return unmatched, lambda t: t[:offset] + " " + t[offset + 1 :]
    elif previous is not None and previous.type == "EQUAL" and not expected_set.isdisjoint(_VALUE_TERMINALS):
        name = _name_before(text, previous)
        message = f"expected a value after '{name}=', found {found}"
    elif token.type in ("IMPORT", "SPEC") and inside_block:
        message = f"'{token.value}' goes at the top of the file, not inside a block"
    elif token.type == "COLON" and previous is not None and previous.type in _KEYWORDS:
        message = f"'{previous.value}' is a reserved word and cannot be a label"
    elif token.type == "EQUAL" and previous is not None and previous.type == "NAME":
        rest = text[_offset(text, token) + 1 :].split("\n")[0].split("#")[0].strip() or "VALUE"
        message = f"unexpected '=' after '{previous.value}': a clause takes its arguments without '='; write '{previous.value} {rest}'"
    elif previous is not None and previous.type == "ARROW":
        message = f"expected a layer after '->', found {found}"
    elif previous is not None and previous.type == "COLON" and "NAME" in expected_set:
        message = f"expected a layer after the label '{_name_before(text, previous)}:', found {found}"
    elif previous is not None and previous.type == "DOTDOT":
        message = f"expected a number after '..', found {found}"
    elif token.type in ("INT", "FLOAT", "STRING") and "NAME" in expected_set and "INT" not in expected_set:
        message = f"expected a clause name, found {found}"
    else:
        message = f"expected {_expected_words(expected_set)}, found {found}"
    return Diagnostic(span, message), (None if at_end else blank(token.line))


def _expected_by_parser(err: UnexpectedInput) -> set[str]:
    """The terminals the parser state accepts (the lexer's own list also has newlines)."""
    state = getattr(err, "state", None)
    try:
        accepted = state.parse_conf.parse_table.states[state.position].keys()
        return {name for name in accepted if name.isupper() or name == "$END"}
    except AttributeError:
        return set(err.expected or ())


def _offset(text: str, token: Token) -> int:
    return token.start_pos if token.start_pos is not None else len(text)


def _name_before(text: str, token: Token) -> str:
    """The identifier just before `token` (the option name before '=', the label before ':')."""
    end = _offset(text, token)
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return text[start:end] or "?"


def _found(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    if token.type == "_NL":
        return "the end of the line"
    if token.type == "STRING":
        return f"the string {token.value}"
    if token.type in ("INT", "FLOAT"):
        return f"the number {token.value}"
    if token.type == "NAME":
        return f"'{token.value}'"
    return f"'{token.value}'"


def _expected_words(expected: set[str]) -> str:
    useful = {t for t in expected if t not in _CONTINUATIONS} or set(expected)
    words = {TERMINAL_WORDS.get(t, t.lower()) for t in useful}
    if "a name" in words and "a value" in words:
        words.discard("a name")
    if "a number" in words and "a value" in words:
        words.discard("a number")
    if "a string" in words and "a value" in words:
        words.discard("a string")
    if "a new line" in words and "';'" in words:
        words.discard("';'")
    ordered = sorted(words, key=lambda w: (_WORD_ORDER.index(w) if w in _WORD_ORDER else len(_WORD_ORDER), w))
    if not ordered:
        return "nothing more"
    if len(ordered) == 1:
        return ordered[0]
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]


def _token_span(token: Token, file: str) -> Span:
    end_line = token.end_line if token.end_line is not None else token.line
    end_column = token.end_column if token.end_column is not None else token.column + max(len(token.value), 1)
    if token.type == "_NL":  # point at the end of the line, not the start of the next
        end_line, end_column = token.line, token.column + 1
    return Span(file, token.line, token.column, end_line, end_column)


# ---- Lark tree -> AST ---------------------------------------------------------------------


class _Body(tuple):
    """The statements of a `{ }`, told apart from argument values while building a clause."""


def _meta_span(meta, file: str) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _unquote(literal: str) -> str:
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
class _ToAst(Transformer_NonRecursive):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, meta) -> Span:
        return _meta_span(meta, self.file)

    def _tok(self, token: Token) -> Span:
        return _token_span(token, self.file)

    def start(self, meta, items):
        kept = tuple(i for i in items if not (isinstance(i, ast.Line) and i.chain[0].name == ERROR_PLACEHOLDER))
        return ast.Program(kept, self.file)

    def spec_decl(self, meta, children):
        (name,) = children
        return ast.SpecDecl(str(name), self._span(meta), self._tok(name))

    def import_decl(self, meta, children):
        path, alias = children
        return ast.Import(_unquote(str(path)), str(alias), self._span(meta), self._tok(path), self._tok(alias))

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
        return _Body(s for s in statements if not (isinstance(s, ast.Line) and s.chain[0].name == ERROR_PLACEHOLDER))

    def target_decl(self, meta, children):
        name, expr = children
        if _expr_depth(expr) > MAX_EXPR_DEPTH:
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
        return ast.String(_unquote(str(children[0])), self._span(meta))

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


def _expr_depth(expr) -> int:
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
