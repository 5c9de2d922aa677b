"""The sweep block: a hyperparameter search over the spec (`trickc sweep`).

The block changes nothing about a run of the spec: lowering ignores it, and the content hash
leaves its text out (`sweep_free_text`), so `trickc run` trains the same with or without it.
What each `vary` may name is checked against the rest of the spec in compiler/sweep.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...dsl import ast
from ..schema import POSITIVE_INT, REQUIRED, Choice, ClauseSchema, Ident, Invalid, Param, Registry, Type, show

C = ClauseSchema
P = Param


@dataclass(frozen=True)
class VaryValues(Type):
    """The values a `vary` draws from: a range `low..high` or a list `[a, b, c]` (kept as
    written: they are checked against the varied argument's own type by compiler/sweep.py)."""

    def describe(self) -> str:
        return "a range low..high or a list of values"

    def convert(self, value: ast.Value) -> Any:
        if isinstance(value, ast.Range):
            return value
        if isinstance(value, ast.List):
            if not value.items:
                raise Invalid("expected a range low..high or a list of values, found an empty list []")
            return value
        raise Invalid(f"expected a range low..high or a list of values, found {show(value)}")


SWEEP = Registry("sweep clause", "What a hyperparameter sweep tries and how it scores a trial.")
for schema in [
    C("trials", "How many trials the study runs in all (pruned ones count; failed ones are retried).", (P("n", POSITIVE_INT, 20, "trials", positional=True),), example="trials 20"),
    C(
        "metric",
        "The validation metric a trial is scored by, at the epoch whose weights the run keeps (the best one under `early_stop restore=best`, else the last); "
        "it is also what median pruning compares after every epoch.",
        (
            P("name", Ident("a validation metric such as val.accuracy or val.loss", dotted=True), "val.loss", "`val.loss`, `val.accuracy`, `val.mse`, `val.mae`, `val.r2`, or `val.HEAD.METRIC` of a head", positional=True),
            P("mode", Choice(("auto", "min", "max")), "auto", "whether lower or higher is better; `auto`: lower for a loss, mse and mae, higher for accuracy and r2"),
        ),
        example="metric val.accuracy",
    ),
    C(
        "vary",
        "One argument to search over, named by its `--set` path (`train.optimizer.lr`, `train.batch`, `model.LABEL.LAYER[.OPTION]`): "
        "a range `low..high` drawn uniformly (integers for an integer argument), `log low..high` drawn log-uniformly (low > 0), "
        "or a list of values to choose from. Every value must be one the argument accepts.",
        (
            P("path", Ident("a --set path such as train.optimizer.lr", dotted=True), REQUIRED, "the argument: BLOCK.CLAUSE, BLOCK.CLAUSE.OPTION, or MODEL.LABEL.LAYER[.OPTION] for a layer on a labelled line", positional=True),
            P("values", VaryValues(), REQUIRED, "`low..high`, `log low..high` or `[a, b, ...]`", positional=True),
        ),
        repeatable=True,
        connectives=("log",),
        example="vary train.optimizer.lr log 1e-4..1e-1",
    ),
]:
    SWEEP.add(schema)
