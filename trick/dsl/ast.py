"""The abstract syntax tree of a .trick file.

One frozen dataclass per grammar rule. Every node carries the `Span` it came from; spans
(and the original spelling of numbers) take no part in equality, so two parses of the same
program laid out differently compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .diagnostics import Span

_span = lambda: field(default=None, compare=False, repr=False)  # noqa: E731


# ---- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span = _span()
    text: str = field(default="", compare=False, repr=False)

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)


@dataclass(frozen=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class Ref:
    """An identifier, possibly dotted: `relu`, `val.loss`, `teacher.block2`."""

    parts: tuple[str, ...]
    span: Span = _span()

    @property
    def name(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class List:
    items: tuple["Value", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Range:
    low: Number
    high: Number
    span: Span = _span()


Value = Union[Number, String, Bool, Ref, List, Range]


# ---- target expressions ------------------------------------------------------------------


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / % < <= > >= == !=
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    name: str
    span: Span = _span()


Expr = Union[BinOp, Neg, Name, Number]


# ---- statements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """`name=value`."""

    name: str
    value: Value
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class Clause:
    """`name positional... option=value... [{ body } option=value...]`.

    Blocks (`model { ... }`), layers (`conv 32 k=5`), `repeat 4 { ... }` and heads are all
    clauses; the checker decides which names belong where.
    """

    name: str
    args: tuple[Value, ...] = ()
    options: tuple[Option, ...] = ()
    body: tuple["Statement", ...] | None = None
    span: Span = _span()
    name_span: Span = _span()

    def option(self, name: str) -> Option | None:
        for option in self.options:
            if option.name == name:
                return option
        return None


@dataclass(frozen=True)
class Line:
    """`[label:] clause -> clause -> ...`: one line of a block."""

    chain: tuple[Clause, ...]
    label: str | None = None
    span: Span = _span()
    label_span: Span | None = _span()


@dataclass(frozen=True)
class Target:
    """`target NAME = expression`: a derived target computed from the label."""

    name: str
    expr: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class SpecDecl:
    name: str
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class Import:
    path: str
    alias: str
    span: Span = _span()
    path_span: Span = _span()
    alias_span: Span = _span()


Statement = Union[Line, Target]
TopLevel = Union[SpecDecl, Import, Line, Target]


@dataclass(frozen=True)
class Comment:
    text: str  # with the leading '#'
    span: Span


@dataclass(frozen=True)
class Program:
    """A parsed .trick file: its statements in source order."""

    items: tuple[TopLevel, ...]
    file: str = field(default="<string>", compare=False)
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    text: str = field(default="", compare=False, repr=False)

    @property
    def spec(self) -> SpecDecl | None:
        return next((i for i in self.items if isinstance(i, SpecDecl)), None)

    @property
    def name(self) -> str | None:
        spec = self.spec
        return spec.name if spec else None

    @property
    def imports(self) -> tuple[Import, ...]:
        return tuple(i for i in self.items if isinstance(i, Import))

    @property
    def blocks(self) -> tuple[Clause, ...]:
        """Top-level clauses that have a body: `data { }`, `model { }`, ..."""
        return tuple(
            i.chain[0]
            for i in self.items
            if isinstance(i, Line) and len(i.chain) == 1 and i.label is None and i.chain[0].body is not None
        )

    def block(self, kind: str) -> Clause | None:
        return next((b for b in self.blocks if b.name == kind), None)
