"""The front end: grammar, AST, parser, imports, formatter and diagnostics (no torch, no numpy)."""

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
