"""Syntax errors in words, and the repairs that let the parser go on after one.

`describe` turns a Lark error into a `Diagnostic` that says what was expected in words
("expected a value after 'lr=', found the end of the line") and says how to repair the
text so that parsing can go on: blank the offending line, keeping its braces so that
blocks still nest. `nesting_error` refuses nesting too deep for later stages.
"""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .diagnostics import Diagnostic, Span
from .grammar import POSTLEX, lark
from .transform import ERROR_PLACEHOLDER, token_span

MAX_NESTING = 50  # braces, brackets and parentheses
# The top-level blocks (the front end does not read the registries; a test keeps this in step
# with compiler/clauses BLOCKS): a block keyword inside an open block means a missing '}'.
BLOCK_NAMES = frozenset({"data", "augment", "model", "train", "evaluate", "transfer", "distill", "curriculum", "report", "sweep"})

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


def nesting_error(text: str, file: str) -> Diagnostic | None:
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


_STRING_AT = re.compile(r'"([^"\\\n]|\\[^\n])*"')  # the grammar's STRING


def _code_braces(line: str, unclosed_quote_is_code: bool = True) -> list[tuple[int, str]]:
    """(index, brace) of the braces of one line outside strings and comments. A quote that is
    never closed on the line opens no string (unless `unclosed_quote_is_code` is false): what
    follows it is read as code, so that the braces of `data { source file "x.csv }` nest."""
    found: list[tuple[int, str]] = []
    in_string = escaped = unclosed = False
    for i, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == "#":
            break
        if char == '"':
            if not unclosed_quote_is_code:
                in_string = True
            elif not unclosed:  # once a quote is never closed, no later one is (the same scan goes on)
                in_string = _STRING_AT.match(line, i) is not None
                unclosed = not in_string
        elif char in "{}":
            found.append((i, char))
    return found


def _blank_line(text: str, line: int, unclosed_quote_is_code: bool = True) -> str:
    """Replace one line by placeholders that keep its braces balanced, to parse on."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return text
    parts = [f"; {ERROR_PLACEHOLDER} {{" if char == "{" else "; }" for _, char in _code_braces(lines[line - 1], unclosed_quote_is_code)]
    lines[line - 1] = " ".join(parts)
    return "\n".join(lines)


def _blank_unclosed_string(text: str, line: int) -> str:
    """Blank a line whose string is never closed: the braces after its quote are code or part
    of the string, whichever leaves the file's braces balanced (`data { source file "x.csv }`
    on one line, or `source file "x.csv }` with the block's '}' on the next)."""
    as_code = _blank_line(text, line, True)
    return as_code if _balanced(as_code) or not _balanced(_blank_line(text, line, False)) else _blank_line(text, line, False)


def _balanced(text: str) -> bool:
    depth = 0
    for row in text.split("\n"):
        for _, char in _code_braces(row):
            depth += 1 if char == "{" else -1
            if depth < 0:
                return False
    return depth == 0


def _original_column(original: str | None, current: str, line: int, column: int) -> int:
    """The column in the text as written of a '{' that the repairs moved (they rewrite a line
    as placeholders holding its braces, in order)."""
    if original is None:
        return column
    before, now = original.split("\n"), current.split("\n")
    if not 1 <= line <= min(len(before), len(now)) or before[line - 1] == now[line - 1]:
        return column
    k = now[line - 1][: column - 1].count("{")
    opening = [i for i, char in _code_braces(before[line - 1]) if char == "{"]
    return opening[k] + 1 if k < len(opening) else column


def _block_left_open(text: str, file: str) -> Diagnostic | None:
    """Where a block keyword stands inside a block that was never closed (`model {` ... then
    `train {`): the '}' missing before it is the likely error, not the end of the file."""
    stack: list[tuple[Token, str | None]] = []  # each open '{' and the name before it
    tokens = list(_safe_tokens(text))
    for index, token in enumerate(tokens):
        if token.type == "LBRACE":
            name = tokens[index - 1] if index and tokens[index - 1].type == "NAME" else None
            stack.append((token, str(name) if name is not None else None))
        elif token.type == "RBRACE" and stack:
            stack.pop()
        elif (
            token.type == "NAME"
            and str(token) in BLOCK_NAMES
            and stack
            and index + 1 < len(tokens)
            and tokens[index + 1].type == "LBRACE"
            and tokens[index - 1].type in ("LBRACE", "RBRACE", "_NL", "SEMICOLON")
        ):
            opener, owner = stack[0]
            what = f"the {owner} block" if owner in BLOCK_NAMES else f"the '{{' at line {opener.line}"
            return Diagnostic(
                token_span(token, file),
                f"expected '}}' before '{token}': {what} (line {opener.line}) is never closed, and a {token} block cannot go inside it",
            )
    return None


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
        yield from lark().lex(text)
    except UnexpectedInput:
        return


def describe(err: UnexpectedInput, text: str, file: str, original: str | None = None):
    """A Lark error as a diagnostic in words, and how to repair the text to parse on.
    `text` is what was parsed; `original`, the text as written (before earlier repairs)."""
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
        if char == '"':
            return Diagnostic(span, message), lambda t: _blank_unclosed_string(t, err.line)
        return Diagnostic(span, message), blank(err.line)

    assert isinstance(err, (UnexpectedToken, UnexpectedEOF))
    token = err.token if isinstance(err, UnexpectedToken) else Token("$END", "")
    expected_set = _expected_by_parser(err)
    at_end = token.type == "$END"
    if at_end:
        opened = _open_brace(text)
        if opened:
            left_open = _block_left_open(text, file)
            if left_open is not None and left_open.span.line != opened[0]:
                return left_open, None
            line, column = opened
            span = Span.point(file, line, _original_column(original, text, line, column))
            return Diagnostic(span, "this '{' is never closed; expected '}' before the end of the file"), None
        last_line = text.rstrip().count("\n") + 1
        last_column = len(text.rstrip().split("\n")[-1]) + 1
        span = Span.point(file, last_line, last_column)
    else:
        span = token_span(token, file)
    found = _found(token)
    previous = POSTLEX.before(token) if not at_end else POSTLEX.last()
    # LALR merges states, so the parser may list '}' outside any block or the end of the
    # file inside one; the braces seen so far tell which is real.
    offset = _offset(text, token)
    inside_block = _open_brace(text[:offset]) is not None
    expected_set.discard("$END" if inside_block else "RBRACE")
    if token.type == "RBRACE" and "RBRACE" not in expected_set and not inside_block:
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
        rest = text[offset + 1 :].split("\n")[0].split("#")[0].strip() or "VALUE"
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
