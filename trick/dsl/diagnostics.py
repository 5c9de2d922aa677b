"""Diagnostics: where an error is, what it says, and how it is shown.

Every error a user can cause is a `TrickError`. It carries one or more `Diagnostic`s, each
with a `Span`, and renders as

    path:line:col: error: message
        the source line
        ^~~~~~

The compiler and the runtime raise subclasses of the same root, so that the command line
turns all of them into the same output and exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NoReturn, Sequence


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns count from 1, `end_column` is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def point(file: str, line: int, column: int) -> "Span":
        return Span(file, line, column, line, column + 1)

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }

    @staticmethod
    def from_json(data: dict) -> "Span":
        return Span(data["file"], data["line"], data["column"], data["end_line"], data["end_column"])


@dataclass(frozen=True)
class Diagnostic:
    """One message about one place in a spec, as data (`trick.check` returns a list of them)."""

    span: Span
    message: str
    severity: str = "error"  # "error" or "warning"
    suggestion: str | None = None  # the name a "did you mean" proposes
    source_line: str | None = field(default=None, compare=False)  # the text of span.line

    @property
    def path(self) -> str:
        return self.span.file

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    def render(self) -> str:
        head = f"{self.span.file}:{self.span.line}:{self.span.column}: {self.severity}: {self.message}"
        if self.source_line is None:
            return head
        text = self.source_line.rstrip("\r\n")
        start = max(self.span.column - 1, 0)
        if len(text) > MAX_SHOWN:  # a window of a long line around the column, marked as cut
            left = max(0, min(start - MAX_SHOWN // 2, len(text) - MAX_SHOWN))
            text = ("…" if left else "") + text[left : left + MAX_SHOWN] + ("…" if left + MAX_SHOWN < len(text) else "")
            start = start - left + (1 if left else 0)
        if self.span.end_line == self.span.line:
            width = max(self.span.end_column - self.span.column, 1)
        else:
            width = max(len(text) - start, 1)
        # Keep the tabs of the source line, so that the caret lines up in any terminal.
        prefix = "".join(c if c == "\t" else " " for c in text[:start])
        marker = "^" + "~" * (min(width, max(len(text) - start, 1)) - 1)
        return f"{head}\n    {text}\n    {prefix}{marker}"

    def to_json(self) -> dict:
        return {
            "path": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "severity": self.severity,
            "message": self.message,
            "suggestion": self.suggestion,
        }


MAX_SHOWN = 160  # characters of a source line shown under a message


class TrickError(Exception):
    """The root of every error a user can cause; holds diagnostics sorted by position."""

    def __init__(self, diagnostics: Sequence[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = sorted(
            diagnostics, key=lambda d: (d.span.file, d.span.line, d.span.column)
        )
        super().__init__(self.render())

    def __reduce__(self):
        # Pickled as its diagnostics (Exception's default would call __init__ with the text),
        # so that an error raised in a worker process reaches its parent whole.
        return type(self), (self.diagnostics,)

    @property
    def diagnostic(self) -> Diagnostic:
        return self.diagnostics[0]

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render()


class TrickUsageError(TrickError):
    """A problem with how trickc or trick.run was called, not with a spec: it has no position."""

    def __init__(self, message: str):
        self.message = message
        self.diagnostics = []
        Exception.__init__(self, message)

    def __reduce__(self):
        return type(self), (self.message,)

    def render(self) -> str:
        return f"error: {self.message}"


class TrickSyntaxError(TrickError):
    """The text is not a well-formed .trick file (or cannot be read as one)."""


class TrickImportError(TrickError):
    """An import names a file that is missing, unreadable, or part of a cycle."""


class TrickCheckError(TrickError):
    """The file parses but means something invalid: unknown names, wrong types or ranges."""


class TrickRuntimeError(TrickError):
    """Training cannot go on (a non-finite loss, a bad checkpoint); points at the spec."""


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a misspelled one, if any is close enough."""
    import difflib  # here: only a misspelling needs it

    known = list(known)
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not matches:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            return lowered[name.lower()]
        return None
    return matches[0]


def did_you_mean(name: str, known: Iterable[str]) -> tuple[str, str | None]:
    """'; did you mean 'x'?' (or '') and the suggested name, for an unknown-name message."""
    best = suggest(name, known)
    return (f"; did you mean '{best}'?" if best else ""), best


class SourceLines:
    """The lines of the files diagnostics point into, so that each can show its line."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def add(self, path: str, text: str) -> None:
        self._lines[path] = text.split("\n")

    def attach(self, diagnostic: Diagnostic) -> Diagnostic:
        lines = self._lines.get(diagnostic.span.file)
        if lines is None or not 1 <= diagnostic.span.line <= len(lines):
            return diagnostic
        line = lines[diagnostic.span.line - 1]
        return Diagnostic(diagnostic.span, diagnostic.message, diagnostic.severity, diagnostic.suggestion, line)


def fail(message: str, span: Span, cls: type[TrickError] = TrickCheckError, suggestion: str | None = None) -> NoReturn:
    """Raise a one-diagnostic error at `span` (the stages' shared `fail`)."""
    raise cls(Diagnostic(span, message, "error", suggestion))
