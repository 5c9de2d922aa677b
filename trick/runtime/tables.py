"""CSV files as users have them: a header row, then rows of numbers and names.

`parse_csv` keeps every cell as text; `numbers` converts the columns a role needs (inputs,
numeric targets), reporting the first bad cell as `file:row:column` (1-based, the header is
row 1) and quoting only that cell, never a row of the data; `labels` reads a label column as
class indices (integers 0, 1, 2, ...) or class names (any text: sorted, numbered 0..k-1, and
kept), or, for a regression target, as numbers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_CLASS = 2**24  # a larger label is a mistake (a model would need as many outputs)


class TableError(ValueError):
    """A problem with a table's data (sources.py turns it into an error at the clause)."""


def clip(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def cell(text: str) -> str:
    """A cell of a data file as a message quotes it: in quotes, escaped, at most 40 characters."""
    return repr(clip(text))


class Table(NamedTuple):
    """A parsed .csv file: its column names, its cells [rows][columns] as text, and the row of
    the file each came from (1-based; the header is row 1)."""

    written: str
    names: list[str]
    cells: list[list[str]]
    rows: list[int]

    def at(self, i: int, j: int) -> str:
        """`file:row:column` of cells[i][j]."""
        return f"{self.written}:{self.rows[i]}:{j + 1}"

    def column(self, j: int) -> list[str]:
        return [row[j].strip() for row in self.cells]


def parse_csv(path: Path, written: str) -> Table:
    """A header row of column names, then rows as wide as the header. Blank rows are skipped."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TableError(f"cannot read '{written}': {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        row = data[: e.start].count(b"\n") + 1
        raise TableError(f"cannot read '{written}' as a .csv file: it is not UTF-8 text (byte {data[e.start]:#04x} in row {row})") from None
    names: list[str] | None = None
    cells: list[list[str]] = []
    rows: list[int] = []
    row = 0
    try:
        for line in csv.reader(io.StringIO(text, newline="")):
            row += 1
            if names is None:
                if not line or all(not c.strip() for c in line):
                    continue  # blank lines before the header
                names = [c.strip() for c in line]
                for j, name in enumerate(names):
                    if not name:
                        raise TableError(f"cannot read '{written}' as a .csv file: the header has no column name at {written}:{row}:{j + 1}; the first row must name every column")
                    if name in names[:j]:
                        raise TableError(f"cannot read '{written}' as a .csv file: the header names the column {cell(name)} twice (again at {written}:{row}:{j + 1})")
                continue
            if not line or all(not c.strip() for c in line) and len(line) <= 1:
                continue  # a blank row
            if len(line) != len(names):
                raise TableError(
                    f"cannot read '{written}' as a .csv file: the row at {written}:{row} has {len(line)} value{'s' * (len(line) != 1)}, "
                    f"but the header names {len(names)} column{'s' * (len(names) != 1)}"
                )
            cells.append(line)
            rows.append(row)
    except csv.Error as e:
        line = (str(e).strip().splitlines() or [""])[0][:160]
        raise TableError(f"cannot read '{written}' as a .csv file: {line} at {written}:{row + 1}") from None
    if not names:
        raise TableError(f"'{written}' is empty; a .csv file starts with a header row naming its columns")
    return Table(written, names, cells, rows)


def numbers(table: Table, columns: list[int], what: str) -> np.ndarray:
    """float64 [rows, len(columns)] of the cells of `columns`: each must hold a finite number
    within the float32 range. `what` says what the columns are ("an input", "the target")."""
    out = np.empty((len(table.cells), len(columns)), np.float64)
    for k, j in enumerate(columns):
        for i, row in enumerate(table.cells):
            text = row[j].strip()
            try:
                value = float(text)
            except ValueError:
                found = "is empty (a missing value)" if not text else f"holds {cell(text)}, not a number"
                raise TableError(f"the cell at {table.at(i, j)} ({what} column '{clip(table.names[j])}') {found}; fill it with a number, or remove the row") from None
            if not np.isfinite(value) or abs(value) > FLOAT32_MAX:
                problem = "is too large for float32" if np.isfinite(value) else f"is {cell(text)}"
                raise TableError(f"the cell at {table.at(i, j)} ({what} column '{clip(table.names[j])}') {problem}; every value must be a finite number")
            out[i, k] = value
    return out


def labels(table: Table, j: int, regression: bool) -> tuple[np.ndarray, list[str] | None]:
    """The label column j: (float64 values, None) for a regression target; else (int64 class
    indices, the class names): integers 0, 1, 2, ... are their own indices (names "0", "1", ...
    up to the largest), any other text names a class (sorted; a number among names is a name)."""
    if regression:
        return numbers(table, [j], "the target")[:, 0], None
    column = table.column(j)
    for i, text in enumerate(column):
        if not text:
            raise TableError(f"the label at {table.at(i, j)} is empty; every row needs a class")
    try:
        values = np.array([float(text) for text in column], np.float64)
    except ValueError:
        names = sorted(set(column))
        index = {name: k for k, name in enumerate(names)}
        return np.array([index[text] for text in column], np.int64), names
    wrong = ~(np.isfinite(values) & (values >= 0) & (values == np.round(values)) & (values < MAX_CLASS))
    if wrong.any():
        i = int(wrong.argmax())
        raise TableError(
            f"the label at {table.at(i, j)} is {cell(column[i])}: numeric class labels must be class indices 0, 1, 2, ... (below {MAX_CLASS}); "
            "for numbers to predict, use a regression loss (loss mse, l1 or huber on one output)"
        )
    found = values.astype(np.int64)
    return found, [str(k) for k in range(int(found.max()) + 1)] if len(found) else []


def split_column(table: Table, j: int) -> np.ndarray:
    """The split column j as "train" / "val" / "test" per row (case and spaces ignored;
    `validation` is `val`)."""
    out = []
    for i, text in enumerate(table.column(j)):
        value = text.lower()
        value = {"validation": "val", "valid": "val"}.get(value, value)
        if value not in ("train", "val", "test"):
            raise TableError(f"the split at {table.at(i, j)} is {cell(text)}; a split column holds train, val or test")
        out.append(value)
    return np.array(out)
