"""The front end: grammar, AST, parser, imports, formatter and diagnostics (no torch, no numpy)."""

from . import startup  # noqa: F401  (first of all: see its docstring)
from .diagnostics import Diagnostic, Span, TrickCheckError, TrickError, TrickImportError, TrickSyntaxError
from .parser import parse_text, read_source

__all__ = [
    "Diagnostic",
    "Span",
    "TrickCheckError",
    "TrickError",
    "TrickImportError",
    "TrickSyntaxError",
    "parse_text",
    "read_source",
]
