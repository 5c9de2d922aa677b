"""Argument schemas: the types, ranges, defaults and docs of every clause's arguments.

A `ClauseSchema` says what a clause accepts; a `Registry` holds the clauses of one kind
(layers, augmentations, data sources, ...). The checker, the language reference and the
"did you mean" suggestions all read these, so a clause is described in exactly one place.
Converting an AST value checks its type and range and returns the plain Python value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..dsl import ast
from ..dsl.show import show_value


class Invalid(Exception):
    """A value does not fit its type; `message` says what was expected and what was found."""

    def __init__(self, message: str, suggestion: str | None = None):
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


def show(value: ast.Value) -> str:
    """A value as the user wrote it, for messages: the formatter's spelling, on one line."""
    return show_value(value)


def found(value: ast.Value) -> str:
    """A value for 'found ...' in a message: names quoted, everything else as written."""
    return f"'{show(value)}'" if isinstance(value, ast.Ref) else show(value)


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _bounds(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_fmt(high)}"
    return ""


class Type:
    """A value type: `convert` checks an AST value and returns its Python value."""

    def describe(self) -> str:  # "an integer >= 1"
        raise NotImplementedError

    def convert(self, value: ast.Value) -> Any:
        raise NotImplementedError

    def mismatch(self, value: ast.Value) -> Invalid:
        return Invalid(f"expected {self.describe()}, found {found(value)}")


# Integers that size or count something (units, channels, epochs, batch, ...) are at most
# MAX_INT unless their type says otherwise; no integer argument reaches 2**63 (torch's int64),
# and no number is beyond the 64-bit float range (the parser refuses those).
MAX_INT = 1_000_000
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Num(Type):
    """An integer or a real number, optionally bounded.

    `cap` is an upper bound that `describe` leaves unsaid (the language reference states it
    once for all sizes and counts, in its limits); the error for a value above it names it.
    An integer argument is always below 2**63."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    cap: int | None = None

    def describe(self) -> str:
        noun = "an integer" if self.integer else "a number"
        bounds = _bounds(self.low, self.high, self.low_open, self.high_open)
        return f"{noun} {bounds}".strip()

    def convert(self, value: ast.Value) -> int | float:
        if not isinstance(value, ast.Number) or (self.integer and not value.is_int):
            raise self.mismatch(value)
        x = value.value
        if isinstance(x, float) and not math.isfinite(x):
            raise Invalid(f"expected {self.describe()}, found {show(value)}")
        if (
            (self.low is not None and (x < self.low or (self.low_open and x == self.low)))
            or (self.high is not None and (x > self.high or (self.high_open and x == self.high)))
        ):
            raise Invalid(f"{show(value)} is out of range; expected {self.describe()}")
        cap = self.cap if self.cap is not None else (INT64_MAX if isinstance(x, int) and self.high is None else None)
        if cap is not None and x > cap:
            noun = "an integer" if self.integer else "a number"
            raise Invalid(f"{show(value)} is out of range; expected {noun} {_bounds(self.low, cap, self.low_open, False)}")
        if isinstance(x, int) and x < -INT64_MAX:
            raise Invalid(f"{show(value)} is out of range; expected {self.describe()} (and above -2**63)")
        return x


POSITIVE_INT = Num(True, 1, cap=MAX_INT)
NONNEGATIVE_INT = Num(True, 0, cap=MAX_INT)
SEED = Num(True, 0, cap=INT64_MAX)  # torch's and numpy's seeds are 64-bit
POSITIVE = Num(False, 0.0, None, low_open=True)
NONNEGATIVE = Num(False, 0.0)
PROBABILITY = Num(False, 0.0, 1.0, False, True)  # a drop probability in [0, 1)
FRACTION = Num(False, 0.0, 1.0, True, True)  # a split fraction in (0, 1)
WEIGHT = Num(False, 0.0, 1.0)  # a mixing weight in [0, 1]


@dataclass(frozen=True)
class Bool(Type):
    def describe(self) -> str:
        return "true or false"

    def convert(self, value: ast.Value) -> bool:
        if not isinstance(value, ast.Bool):
            raise self.mismatch(value)
        return value.value


@dataclass(frozen=True)
class Str(Type):
    what: str = "a string"

    def describe(self) -> str:
        return self.what

    def convert(self, value: ast.Value) -> str:
        if not isinstance(value, ast.String):
            raise self.mismatch(value)
        return value.value


@dataclass(frozen=True)
class Choice(Type):
    """One identifier out of a fixed set; a near miss gets a suggestion."""

    options: tuple[str, ...]

    def describe(self) -> str:
        quoted = [f"'{o}'" for o in self.options]
        return "one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]

    def convert(self, value: ast.Value) -> str:
        from ..dsl.diagnostics import did_you_mean

        if not isinstance(value, ast.Ref) or value.name not in self.options:
            hint, best = did_you_mean(show(value), self.options) if isinstance(value, (ast.Ref, ast.String)) else ("", None)
            raise Invalid(f"expected {self.describe()}, found {found(value)}{hint}", best)
        return value.name


@dataclass(frozen=True)
class Ident(Type):
    """A name that refers to something else in the spec (a label, an import, a metric)."""

    what: str = "a name"
    dotted: bool = False

    def describe(self) -> str:
        return self.what

    def convert(self, value: ast.Value) -> str:
        if not isinstance(value, ast.Ref) or (len(value.parts) > 1 and not self.dotted):
            raise self.mismatch(value)
        return value.name


@dataclass(frozen=True)
class Column(Type):
    """A column of a data file: a bare name (`y=species`), a quoted one (`y="sepal length"`),
    or, with `many`, a list of them (`x=[a, b, c]`, given as a list of names)."""

    many: bool = False

    def describe(self) -> str:
        return "a column name or a list of column names" if self.many else "a column name"

    def _one(self, value: ast.Value) -> str:
        if isinstance(value, ast.String):
            return value.value
        if isinstance(value, ast.Ref):
            return value.name  # a dotted name (`a.b`) is the column "a.b"
        raise self.mismatch(value)

    def convert(self, value: ast.Value) -> str | list[str]:
        if self.many and isinstance(value, ast.List):
            if not value.items:
                raise Invalid(f"expected {self.describe()}, found an empty list")
            return [self._one(item) for item in value.items]
        return self._one(value)


@dataclass(frozen=True)
class ListOf(Type):
    item: Type
    min_len: int = 0
    max_len: int | None = None
    what: str | None = None

    def describe(self) -> str:
        if self.what:
            return self.what
        item = self.item.describe()
        for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a name", "names"), ("a label", "labels"), ("a string", "strings")):
            if item.startswith(one):
                item = many + item[len(one):]
        return f"a list of {item}"

    def convert(self, value: ast.Value) -> list:
        if not isinstance(value, ast.List):
            raise self.mismatch(value)
        if len(value.items) < self.min_len or (self.max_len is not None and len(value.items) > self.max_len):
            raise Invalid(f"expected {self.describe()}, found {show(value)}")
        out = []
        for item in value.items:
            try:
                out.append(self.item.convert(item))
            except Invalid as err:
                raise Invalid(f"in {show(value)}: {err.message}", err.suggestion) from None
        return out


@dataclass(frozen=True)
class RangeOf(Type):
    """`low..high` with low <= high, both of `bound`'s type and range."""

    bound: Num

    def describe(self) -> str:
        return f"a range low..high of {self.bound.describe().replace('an integer', 'integers').replace('a number', 'numbers')}"

    def convert(self, value: ast.Value) -> tuple:
        if not isinstance(value, ast.Range):
            raise self.mismatch(value)
        low, high = self.bound.convert(value.low), self.bound.convert(value.high)
        if low > high:
            raise Invalid(f"the range {show(value)} is empty; its low end must not exceed its high end")
        return (low, high)


@dataclass(frozen=True)
class Either(Type):
    """The first of several types that accepts the value."""

    types: tuple[Type, ...]

    def describe(self) -> str:
        parts = [t.describe() for t in self.types]
        return ", ".join(parts[:-1]) + " or " + parts[-1]

    def convert(self, value: ast.Value) -> Any:
        errors = []
        for t in self.types:
            try:
                return t.convert(value)
            except Invalid as err:
                errors.append(err)
        # A value of the right kind but the wrong range says so, rather than listing all.
        for t, err in zip(self.types, errors):
            if "out of range" in err.message or "is empty" in err.message or err.suggestion:
                return t.convert(value)
        raise self.mismatch(value)


@dataclass(frozen=True)
class IntChoice(Type):
    """One integer out of a fixed set (`crops=5`)."""

    options: tuple[int, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.options[:-1])) + " or " + str(self.options[-1])

    def convert(self, value: ast.Value) -> int:
        if not isinstance(value, ast.Number) or not value.is_int or value.value not in self.options:
            raise self.mismatch(value)
        return value.value


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Param:
    """One argument: given by position (if `positional`) or as `name=value`."""

    name: str
    type: Type
    default: Any = REQUIRED
    doc: str = ""
    positional: bool = False
    trick: bool = False  # an option that switches one of the lecture's tricks on (dropconnect=, smoothing=); its default is off

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class ClauseSchema:
    """What one clause accepts.

    `kind` names a registry whose entry is chosen by the first positional argument
    (`optimizer adamw lr=...`): that entry's params follow the clause's own.
    `variadic` takes any number of further positional values (`plot curves weights`).
    `body` says what a `{ }` after the clause holds: None (no body), or a block kind.
    The fields after `connectives` are what the compiler and runtime need of the clause
    (its shape rule, constructor, role, ...): a clause is defined in this one entry.
    """

    name: str
    doc: str
    params: tuple[Param, ...] = ()
    kind: Registry | None = None
    kind_default: str | None = None
    variadic: Param | None = None
    body: str | None = None
    body_required: bool = False
    repeatable: bool = False
    example: str = ""
    usage: str | None = None  # how to write it, where the arguments do not say (`target`)
    chain: bool = False  # takes `-> NAME` after its arguments (`hint teacher.block2 -> guided`)
    connectives: tuple[str, ...] = ()  # words read for flow and skipped (`score loss of scorer`)
    # What the later stages know of the clause, read from this entry only:
    role: str | None = None  # layers: weights, norm, activation, noise, reshape, structure
    shape: Callable | None = field(default=None, compare=False)  # layers: (input shape, args, previous op) -> (output shape, parameters)
    build: Callable | None = field(default=None, compare=False)  # layers: ir.Layer -> Ctor, the torch constructor as plain data
    rank: tuple[int, str] | None = None  # augmentations: the rank of sample they need, and its name
    resize: Callable | None = field(default=None, compare=False)  # augmentations: (sample shape, args) -> the shape they leave
    check: Callable | None = field(default=None, compare=False)  # augmentations: (sample shape, args) -> [(param or None, message)]
    plan_args: Callable | None = field(default=None, compare=False)  # the plan's arguments from the bound values (default: as bound)
    sample: Callable | None = field(default=None, compare=False)  # data sources: args -> (sample shape, classes), when known before loading
    data_bytes: Callable | None = field(default=None, compare=False)  # data sources: args -> (bytes they generate, how that is counted), for the memory check
    runtime: str | None = None  # the key of its runtime implementation (default: the name)

    @property
    def implementation(self) -> str:
        """The name the runtime's dispatch table knows this entry by."""
        return self.runtime or self.name

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass
class Registry:
    """The clauses of one kind, by name."""

    kind: str  # "layer", "augmentation", ...: the word used in messages
    doc: str
    entries: dict[str, ClauseSchema] = field(default_factory=dict)

    def add(self, schema: ClauseSchema) -> ClauseSchema:
        assert schema.name not in self.entries, schema.name
        self.entries[schema.name] = schema
        return schema

    def get(self, name: str) -> ClauseSchema | None:
        return self.entries.get(name)

    def names(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[ClauseSchema]:
        return iter(self.entries.values())
