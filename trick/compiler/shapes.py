"""What shape rules share: the error they raise and the input checks they make (no torch)."""

from __future__ import annotations

from .ir import Shape, show_shape


class ShapeError(Exception):
    """A layer cannot take its input; the message states the shapes."""


def vector(op: str, shape: Shape, previous: str | None) -> int:
    """The width of a vector input, or why `op` cannot take `shape`."""
    if len(shape) != 1:
        after = f" after {previous}" if previous else ""
        fix = "flatten or last" if previous in ("gru", "lstm") else "flatten"
        raise ShapeError(f"{op}{after} needs {fix} (input is {show_shape(shape)})")
    return shape[0]


def spatial(op: str, shape: Shape, what: str = "a sequence [C, L] or an image [C, H, W]") -> None:
    if len(shape) not in (2, 3):
        raise ShapeError(f"{op} needs {what} (input is {show_shape(shape)})")
