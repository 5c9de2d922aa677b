"""The Lark LALR parser of trick.lark, and its postlexer.

The postlexer drops newlines inside [ ] and ( ) where a list or expression obviously goes
on, and remembers the last tokens, so that an error message can say what came before.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from lark import Lark, Token


class Postlex:
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

    def last(self) -> Token | None:
        """The last token this thread's parse saw."""
        return getattr(self._local, "last", None)

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


POSTLEX = Postlex()


@lru_cache(maxsize=1)
def lark() -> Lark:
    """The parser, built once: LALR with the contextual lexer and positions on every node.

    Lark's cache keeps the analysed tables in a file of the temporary folder, named by a hash
    of the grammar, the options and Lark's version (so a changed grammar is analysed anew);
    a missing or damaged file is simply rebuilt. Building the tables was most of what
    `trickc check` spent at every start."""
    return Lark.open_from_package(
        "trick.dsl",
        "trick.lark",
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        postlex=POSTLEX,
        cache=True,
    )
