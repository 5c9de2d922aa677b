"""The lookup every runtime dispatch table goes through.

Each kind of clause (optimizers, schedules, losses, regularizers, attacks, scorers, pacings,
normalizations, augmentations, data sources) has one table in the runtime, keyed by the
registry's names (tests/runtime/test_dispatch*.py keep both sides equal). An unknown kind is
an error at its clause, never a default.
"""

from __future__ import annotations

from typing import Any

from ..dsl.diagnostics import Diagnostic, Span, TrickRuntimeError, TrickUsageError, did_you_mean


def implementation(table: dict[str, Any], kind: str, what: str, span: Span | None) -> Any:
    """The runtime implementation of `kind` in one of the dispatch tables; `what` is the
    registry's word for the kind ("optimizer", "loss", ...). Without a span (a direct call,
    not from a plan) the error has no position."""
    try:
        return table[kind]
    except KeyError:
        hint, _ = did_you_mean(str(kind), table)
        message = f"no runtime implementation of the {what} '{kind}'{hint}"
        if span is None:
            raise TrickUsageError(message) from None
        raise TrickRuntimeError(Diagnostic(span, message)) from None
