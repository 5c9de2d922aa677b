"""The language server: `trickc lsp` speaks the Language Server Protocol on stdio (pygls).

- diagnostics as the user types: exactly those of `trickc check` (the same checker, the same
  messages), at 0-based lines and UTF-16 columns as the protocol counts them;
- hover: the registry's documentation of the block, clause, layer, kind or option under the
  cursor, with its usage and arguments (the text `docs/language.md` is generated from);
- completion of block, clause, layer, kind and option names, and of the values an option
  takes from a fixed set;
- formatting: `trickc fmt`'s canonical layout, as one edit.

The documents are checked as text, with their file's folder as the base of imports, so an
unsaved buffer is checked as it stands. Hover and completion come from trick/compiler/assist.py.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from .compiler.assist import Completion, completions, hover_markdown, scan  # noqa: F401 (scan: for the tests)
from .dsl.diagnostics import Diagnostic, TrickError

def utf16(text: str) -> int:
    """The length of `text` in UTF-16 code units, as LSP counts columns."""
    return len(text.encode("utf-16-le")) // 2


def from_utf16(text: str, units: int) -> int:
    """The code point index that is `units` UTF-16 code units into `text`."""
    count = 0
    for index, ch in enumerate(text):
        if count >= units:
            return index
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def lsp_range(lines: list[str], line: int, column: int, end_line: int, end_column: int) -> tuple[int, int, int, int]:
    """A Span's 1-based (line, column, end_line, end_column) in code points as 0-based LSP
    positions in UTF-16 units."""

    def at(l: int, c: int) -> tuple[int, int]:
        l = min(max(l - 1, 0), max(len(lines) - 1, 0))
        text = lines[l] if lines else ""
        return l, utf16(text[: max(c - 1, 0)])

    a, b = at(line, column), at(end_line, end_column)
    return (*a, *b)


def path_of(uri: str) -> str | None:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def display_name(uri: str) -> str:
    """The name diagnostics are reported under: the path as `trickc check` would show it."""
    path = path_of(uri)
    if path is None:
        return uri
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def check_document(text: str, uri: str) -> list[tuple[tuple[int, int, int, int], Diagnostic]]:
    """`trickc check`'s diagnostics of an open document, each with its LSP range. An error in
    an imported file is shown at the top of this one, with its own place in the message."""
    from .compiler.pipeline import check_source

    name = display_name(uri)
    lines = text.split("\n")
    found = []
    source = text if "\n" in text else text + "\n"  # always text: one line naming a file is not that file
    for d in check_source(source, name, origin=path_of(uri)).diagnostics:
        if d.span.file == name:
            found.append((lsp_range(lines, d.span.line, d.span.column, d.span.end_line, d.span.end_column), d))
        else:
            moved = Diagnostic(d.span, f"{d.span.file}:{d.span.line}:{d.span.column}: {d.message}", d.severity, d.suggestion)
            found.append(((0, 0, 0, utf16(lines[0]) if lines else 0), moved))
    return found


def formatted(text: str, uri: str) -> str | None:
    """The document in the canonical layout, or None when it does not parse."""
    from .dsl.format import format_program
    from .dsl.parser import parse_text

    try:
        return format_program(parse_text(text, display_name(uri)))
    except TrickError:
        return None


# ---- the server ---------------------------------------------------------------------------------------


def _leaf_messages(error: BaseException | None) -> list[str]:
    """The messages of the innermost exceptions of an exception group (cattrs's validation
    errors): `Position.line should be in range [0:2147483647], but was -1.`"""
    if error is None:
        return []
    inner = getattr(error, "exceptions", None)
    if inner:
        return [m for e in inner for m in _leaf_messages(e)]
    if error.__cause__ is not None or error.__context__ is not None:
        deeper = _leaf_messages(error.__cause__ or error.__context__)
        if deeper:
            return deeper
    return [str(error)]


def make_server():
    from lsprotocol import types as T
    from pygls.exceptions import JsonRpcException
    from pygls.lsp.server import LanguageServer
    from pygls.protocol import LanguageServerProtocol

    from . import __version__

    ignored = object()  # a message already answered while it was read

    class Protocol(LanguageServerProtocol):
        """pygls's protocol, except that a request whose parameters do not fit the protocol
        (a negative position, a missing field) gets the error response the specification
        asks for (InvalidParams), where pygls would drop it and leave the client waiting."""

        def structure_message(self, data):
            try:
                return super().structure_message(data)
            except JsonRpcException as err:
                if isinstance(data, dict) and "id" in data and "method" in data and isinstance(data["id"], (int, str)):
                    why = "; ".join(dict.fromkeys(_leaf_messages(err.__cause__))) or err.message
                    self._send_response(data["id"], error=T.ResponseError(code=err.code, message=f"invalid parameters for {data['method']}: {why}"))
                return ignored

        def handle_message(self, message):
            if message is not ignored:
                super().handle_message(message)

    server = LanguageServer("trickc", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Full, protocol_cls=Protocol)
    kinds = {
        "block": T.CompletionItemKind.Module,
        "clause": T.CompletionItemKind.Keyword,
        "layer": T.CompletionItemKind.Function,
        "kind": T.CompletionItemKind.EnumMember,
        "option": T.CompletionItemKind.Property,
        "value": T.CompletionItemKind.Value,
        "keyword": T.CompletionItemKind.Keyword,
    }

    def position(p: tuple[int, int]) -> T.Position:
        return T.Position(line=p[0], character=p[1])

    def opened(ls, uri: str):
        """The open document at `uri`, or None: a request about a document the client never
        opened (or closed) gets an empty answer, never the file read from disk."""
        return ls.workspace.text_documents.get(unquote(uri))

    def publish(ls, uri: str) -> None:
        document = opened(ls, uri)
        if document is None:
            return
        diagnostics = [
            T.Diagnostic(
                range=T.Range(start=position(r[:2]), end=position(r[2:])),
                message=d.message,
                severity=T.DiagnosticSeverity.Error if d.severity == "error" else T.DiagnosticSeverity.Warning,
                source="trick",
                data={"suggestion": d.suggestion} if d.suggestion else None,
            )
            for r, d in check_document(document.source, uri)
        ]
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=document.version))

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: T.DidOpenTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: T.DidChangeTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls, params: T.DidSaveTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)  # the files it imports may have changed

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: T.DidCloseTextDocumentParams) -> None:
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    def cursor(ls, params) -> tuple[str, int, int] | None:
        document = opened(ls, params.text_document.uri)
        if document is None:
            return None
        lines = document.source.split("\n")
        line = params.position.line
        character = from_utf16(lines[line], params.position.character) if 0 <= line < len(lines) else 0
        return document.source, line, character

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: T.HoverParams) -> T.Hover | None:
        where = cursor(ls, params)
        if where is None:
            return None
        text, line, character = where
        found = hover_markdown(text, line, character)
        if found is None:
            return None
        markdown, start, stop = found
        row = text.split("\n")[line]
        span = T.Range(start=T.Position(line=line, character=utf16(row[:start])), end=T.Position(line=line, character=utf16(row[:stop])))
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=markdown), range=span)

    @server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["=", ">", "{"]))
    def completion(ls, params: T.CompletionParams) -> T.CompletionList:
        where = cursor(ls, params)
        if where is None:
            return T.CompletionList(is_incomplete=False, items=[])
        text, line, character = where
        items = [
            T.CompletionItem(
                label=c.label,
                kind=kinds[c.kind],
                detail=c.detail,
                documentation=T.MarkupContent(kind=T.MarkupKind.Markdown, value=c.documentation),
                insert_text=c.insert,
            )
            for c in completions(text, line, character)
        ]
        return T.CompletionList(is_incomplete=False, items=items)

    @server.feature(T.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
        document = opened(ls, params.text_document.uri)
        if document is None:
            return None
        text = document.source
        result = formatted(text, params.text_document.uri)
        if result is None:
            return None  # it does not parse; the diagnostics say why
        if result == text:
            return []
        lines = text.split("\n")
        end = T.Position(line=len(lines) - 1, character=utf16(lines[-1]))
        return [T.TextEdit(range=T.Range(start=T.Position(line=0, character=0), end=end), new_text=result)]

    return server


def serve() -> None:
    """Serve on standard input and output until the client says exit."""
    make_server().start_io()
