"""The data sources: the raw arrays of a `source` clause (DataPlan.source), by kind.

`SOURCES` is the dispatch table, keyed by the names of the registry's data sources (a test
holds both sides equal); `load_source` runs one and turns a problem with its data into an
error at the clause. Every random choice comes from the seed it is given; the global RNGs of
Python, numpy and torch are never drawn from (nor reseeded: see `mnist1d`).
"""

from __future__ import annotations

import csv
import functools
import io
import math
import random
import zipfile
from pathlib import Path
from typing import Callable, Collection, NamedTuple

import numpy as np

from ..compiler.ir import Step
from ..dsl.diagnostics import did_you_mean, fail  # fail raises TrickCheckError(Diagnostic(span, message))
from .dispatch import implementation


class SourceError(ValueError):
    """A problem with a source's data; `load_source` turns it into a TrickCheckError at the
    source clause, so that the loaders need not know about spans."""


class Raw(NamedTuple):
    """What a source gives: x float32 [N, ...], y int64 [N]; the test pair is None when the
    source has no test split of its own."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    columns: dict[str, np.ndarray] | None = None  # other per-sample arrays (of the training part)


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset  # pulls in requests: import on use

    # make_dataset reseeds Python's and numpy's global RNGs; put both back so nothing leaks.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = (d["x"].astype(np.float32), d["y"].astype(np.int64), d["x_test"].astype(np.float32), d["y_test"].astype(np.int64))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def mnist1d(args: dict, seed: int, base_dir: str) -> Raw:
    """MNIST-1D with its default arguments (its own fixed seed): 4000 train / 1000 test, [N, 40].
    Generated once per process (about a second); callers get copies of the cache."""
    return Raw(*(a.copy() for a in _mnist1d_arrays()))


def digits(args: dict, seed: int, base_dir: str) -> Raw:
    """scikit-learn's bundled 8x8 digits: [1797, 64], pixel values 0..16, no test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return Raw(d.data.astype(np.float32), d.target.astype(np.int64), None, None)


def playground(args: dict, seed: int, base_dir: str) -> Raw:
    """2-D points as on the TensorFlow playground (dataset.ts), scaled from its radius 5 to 1.

    Classes are balanced (n // 2 and the rest), in playground terms class 1 is its +1:
      spiral:   two interleaved spirals, r = i/k, t = 1.75 * 2π * i/k (+ π for class 0);
      circle:   class 1 a disc r < 0.5, class 0 a ring 0.7 < r < 1, uniform in r and angle;
      xor:      uniform in [-1, 1]² pushed 0.06 off the axes, class 1 where sign(x)·sign(y) > 0;
      gaussian: blobs N((±0.4, ±0.4), 0.1414²) (the playground's variance 0.5, scaled),
                class 1 at (+0.4, +0.4).
    Noise differs from the playground (uniform, and for circle/xor perturbing only the point
    the label is computed from): here every point moves by N(0, noise²) per coordinate, in
    units of the data radius 1, and keeps the label of its clean position.
    """
    rng = np.random.default_rng(seed)
    kind, n, noise = args["dataset"], int(args.get("n", 500)), float(args.get("noise", 0.0))
    n1 = n // 2
    y = np.repeat([0, 1], [n - n1, n1])
    if kind == "spiral":
        r = np.concatenate([np.arange(n - n1) / (n - n1), np.arange(n1) / max(n1, 1)])
        t = 1.75 * 2 * np.pi * r + np.pi * (y == 0)
        points = np.stack([r * np.sin(t), r * np.cos(t)], 1)
    elif kind == "circle":
        r = np.where(y == 1, rng.uniform(0, 0.5, n), rng.uniform(0.7, 1.0, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        points = np.stack([r * np.sin(angle), r * np.cos(angle)], 1)
    elif kind == "xor":
        a = rng.uniform(0, 1, (n, 2)) + 0.06
        sx = rng.choice([-1.0, 1.0], n)
        sy = np.where(y == 1, sx, -sx)  # same signs: class 1
        points = a * np.stack([sx, sy], 1)
    elif kind == "gaussian":
        center = np.where(y[:, None] == 1, 0.4, -0.4)
        points = rng.normal(center, math.sqrt(0.5) / 5, (n, 2))
    else:
        raise SourceError(f"unknown playground dataset '{kind}'; choose spiral, circle, xor or gaussian")
    points = points + rng.normal(0, noise, points.shape)
    order = rng.permutation(n)
    return Raw(points[order].astype(np.float32), y[order].astype(np.int64), None, None)


SHAPES = ("square", "circle", "triangle", "hbar", "vbar", "cross", "ring", "diamond")


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Inside-masks in coordinates where the shape spans [-1, 1]² (y grows downwards)."""
    ax, ay = np.abs(dx), np.abs(dy)
    bar = 0.35
    return {
        "square": np.maximum(ax, ay) <= 1,
        "circle": dx**2 + dy**2 <= 1,
        "triangle": (ay <= 1) & (ax <= (dy + 1) / 2),  # apex up
        "hbar": (ax <= 1) & (ay <= bar),
        "vbar": (ax <= bar) & (ay <= 1),
        "cross": ((ax <= 1) & (ay <= bar)) | ((ax <= bar) & (ay <= 1)),
        "ring": (dx**2 + dy**2 <= 1) & (dx**2 + dy**2 >= 0.55**2),
        "diamond": ax + ay <= 1,
    }[shape]


def synthetic_images(args: dict, seed: int, base_dir: str) -> Raw:
    """RGB images [n, 3, size, size] in [0, 1]: one shape per class (SHAPES, in order) with a
    random center, half-size 0.2..0.4 of the side (always inside the image), color and
    background color (each channel 0.3..0.7 away from the background's, modulo 1), plus
    pixel noise N(0, 0.03²), clipped. Classes are balanced."""
    rng = np.random.default_rng(seed)
    classes, size, n = int(args.get("classes", 4)), int(args.get("size", 16)), int(args.get("n", 2000))
    y = rng.permutation(np.arange(n) % classes)
    half = rng.uniform(0.2, 0.4, n)
    cx, cy = rng.uniform(half, 1 - half), rng.uniform(half, 1 - half)
    background = rng.uniform(0, 1, (n, 3))
    color = (background + rng.uniform(0.3, 0.7, (n, 3))) % 1
    grid = (np.arange(size) + 0.5) / size  # pixel centers in [0, 1]
    mask = np.zeros((n, size, size), bool)
    for c in range(classes):  # vectorized over the images of each class
        i = np.flatnonzero(y == c)
        dx = (grid[None, None, :] - cx[i, None, None]) / half[i, None, None]
        dy = (grid[None, :, None] - cy[i, None, None]) / half[i, None, None]
        mask[i] = _shape_mask(SHAPES[c], dx, dy)
    x = np.where(mask[:, None], color[:, :, None, None], background[:, :, None, None])
    x = np.clip(x + rng.normal(0, 0.03, x.shape), 0, 1)
    return Raw(x.astype(np.float32), y.astype(np.int64), None, None)


def _read_npz(path: Path, written: str, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise SourceError(f"cannot read '{written}': it is not a valid .npz archive (write one with numpy.savez)")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # a damaged archive raises many kinds: BadZipFile, ValueError, EOFError, zlib.error...
        raise SourceError(f"cannot read '{written}' as a .npz archive: {_reason(e)}") from None
    with npz:
        arrays = []
        for role, name in (("inputs", x_name), ("labels", y_name)):
            if name not in npz.files:
                hint, _ = did_you_mean(name, npz.files)
                raise SourceError(f"'{written}' has no array named '{name}' for the {role} (its arrays: {_names(npz.files)}){hint}")
            arrays.append(_npz_array(npz, name, written))
    return arrays[0], arrays[1]


def _npz_array(npz, name: str, written: str) -> np.ndarray:
    try:
        return np.asarray(npz[name])
    except MemoryError:
        raise SourceError(f"array '{name}' of '{written}' is too large to load") from None
    except Exception as e:  # a damaged member: ValueError (its header, object arrays), EOFError, BadZipFile, zlib.error...
        raise SourceError(f"cannot read array '{name}' of '{written}': {_reason(e)}") from None


def _reason(err: BaseException) -> str:
    """The first line of an error from numpy or zipfile, short (it never holds the data)."""
    line = (str(err).strip().splitlines() or [""])[0][:160]
    return line or type(err).__name__


def _names(names: Collection[str], most: int = 12) -> str:
    """'a', 'b', 'c' (at most `most` of them, then how many more), or none."""
    names = list(names)
    shown = ", ".join(f"'{_clip(n)}'" for n in names[:most]) or "none"
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _clip(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def _cell(text: str) -> str:
    """A cell of a data file as a message quotes it: in quotes, escaped, at most 40 characters."""
    return repr(_clip(text))


FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_CLASS = 2**24  # a larger label is a mistake (a model would need as many outputs)


class _Csv(NamedTuple):
    """A parsed .csv file: its column names, its numbers [rows, columns] (float64) and the row
    of the file each came from (1-based; the header is row 1)."""

    names: list[str]
    table: np.ndarray
    rows: np.ndarray

    def at(self, written: str, i: int, j: int) -> str:
        """`file:row:column` of table[i, j]."""
        return f"{written}:{int(self.rows[i])}:{j + 1}"


def _parse_csv(path: Path, written: str) -> _Csv:
    """A header row of column names, then rows of numbers, every row as wide as the header.
    Blank rows are skipped. Problems are reported at their cell (`file:row:column`), quoting
    that cell only: never a whole row of the data."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(f"cannot read '{written}': {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        row = data[: e.start].count(b"\n") + 1
        raise SourceError(f"cannot read '{written}' as a .csv file: it is not UTF-8 text (byte {data[e.start]:#04x} in row {row})") from None
    names: list[str] | None = None
    values: list[list[float]] = []
    rows: list[int] = []
    row = 0
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            row += 1
            if names is None:
                names = [c.strip() for c in cells]
                for j, name in enumerate(names):
                    if not name:
                        raise SourceError(f"cannot read '{written}' as a .csv file: the header has no column name at {written}:1:{j + 1}; the first row must name every column")
                    if name in names[:j]:
                        raise SourceError(f"cannot read '{written}' as a .csv file: the header names the column {_cell(name)} twice (again at {written}:1:{j + 1})")
                continue
            if not cells or all(not c.strip() for c in cells) and len(cells) <= 1:
                continue  # a blank row
            if len(cells) != len(names):
                raise SourceError(f"cannot read '{written}' as a .csv file: the row at {written}:{row} has {len(cells)} value{'s' * (len(cells) != 1)}, but the header names {len(names)} column{'s' * (len(names) != 1)}")
            numbers = []
            for j, cell in enumerate(cells):
                try:
                    numbers.append(float(cell))
                except ValueError:
                    where = f"{written}:{row}:{j + 1}"
                    what = f"the cell at {where} is empty" if not cell.strip() else f"could not convert string {_cell(cell.strip())} to a number at {where}"
                    raise SourceError(f"cannot read '{written}' as a .csv file: {what}; every cell after the header must hold a number") from None
            values.append(numbers)
            rows.append(row)
    except csv.Error as e:
        raise SourceError(f"cannot read '{written}' as a .csv file: {_reason(e)} at {written}:{row + 1}") from None
    if not names:
        raise SourceError(f"'{written}' is empty; a .csv file starts with a header row naming its columns")
    table = np.array(values, np.float64).reshape(len(values), len(names))
    return _Csv(names, table, np.array(rows, np.int64))


def _column(parsed: _Csv, written: str, name: str, role: str) -> int:
    if name not in parsed.names:
        hint, _ = did_you_mean(name, parsed.names)
        raise SourceError(f"'{written}' has no column named '{name}'{role} (its header names {_names(parsed.names)}){hint}")
    return parsed.names.index(name)


def _read_csv(path: Path, written: str, x_name: str, y_name: str, other: Collection[str] = ()) -> tuple[np.ndarray, np.ndarray, _Csv]:
    """y is the label column; x the column (or comma-separated columns) `x` names, or, when no
    column is named by the default "x", every other column (but the `other` columns, which
    are not inputs)."""
    parsed = _parse_csv(path, written)
    names, table = parsed.names, parsed.table
    j = _column(parsed, written, y_name, " for the labels")
    wanted = [n.strip() for n in x_name.split(",")]
    if x_name == "x" and "x" not in names:  # the default: every column but the labels
        inputs = [i for i, name in enumerate(names) if i != j and name not in other]
        if not inputs:
            raise SourceError(f"'{written}' has only the label column '{y_name}'; the inputs are every other column")
    else:
        inputs = [_column(parsed, written, n, " for the inputs") for n in wanted]
        if j in inputs:
            raise SourceError(f"the column '{y_name}' of '{written}' cannot be both an input (x) and the labels (y)")
        if len(set(inputs)) != len(inputs):
            raise SourceError(f"x names a column of '{written}' twice: '{x_name}'")
    if len(table) == 0:
        raise SourceError(f"'{written}' has a header but no rows of data")
    x = table[:, inputs]
    for bad, what in ((~np.isfinite(x), "NaN or infinite values"), (np.isfinite(x) & (np.abs(x) > FLOAT32_MAX), "values too large for float32")):
        if bad.any():
            i, k = (int(v) for v in np.argwhere(bad)[0])
            raise SourceError(f"the input columns of '{written}' have {int(bad.sum())} {what} (the first at {parsed.at(written, i, inputs[k])}); remove or fill them")
    y = table[:, j]
    wrong = ~(np.isfinite(y) & (y >= 0) & (y == np.round(y)) & (y < MAX_CLASS))
    if wrong.any():
        i = int(wrong.argmax())
        raise SourceError(
            f"the labels in column '{y_name}' of '{written}' must be class indices 0, 1, 2, ... (below {MAX_CLASS}), "
            f"but {int(wrong.sum())} are not, such as {y[i]:g} at {parsed.at(written, i, j)}"
        )
    return x, y, parsed


def _numeric(a: np.ndarray) -> bool:
    return a.dtype == bool or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)


def _check_arrays(x: np.ndarray, y: np.ndarray, x_of: str, y_of: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole-message checks of user data: finite numeric inputs, one class index per sample.
    `x_of` / `y_of` say what the arrays are, e.g. "the inputs 'x' of 'd.npz'"."""
    if not _numeric(x):
        raise SourceError(f"{x_of} are not numbers (dtype {_clip(str(x.dtype))})")
    if not _numeric(y):
        raise SourceError(f"{y_of} are not numbers (dtype {_clip(str(y.dtype))}); they must be class indices 0, 1, 2, ...")
    if y.ndim != 1:
        raise SourceError(f"{y_of} have shape {list(y.shape)}; they must be a 1-D array, one class index per sample")
    if x.ndim == 0 or len(x) == 0:
        raise SourceError(f"{x_of} hold no samples (shape {list(x.shape)})")
    if len(x) != len(y):
        raise SourceError(f"{x_of} have {len(x)} samples, but {y_of} have {len(y)}; they must be equally many")
    if x.ndim == 1:  # one number per sample
        x = x[:, None]
    flat = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat)
    if bad.any():
        row = int(bad.any(1).argmax())
        raise SourceError(f"{x_of} have {int(bad.sum())} NaN or infinite values (the first in sample {row}); remove or fill them")
    large = np.abs(flat.astype(np.float64)) > FLOAT32_MAX
    if large.any():
        row = int(large.any(1).argmax())
        raise SourceError(f"{x_of} have {int(large.sum())} values too large for float32 (the first in sample {row})")
    y64 = y.astype(np.float64)
    wrong = ~(np.isfinite(y64) & (y64 >= 0) & (y64 == np.round(y64)))
    if wrong.any():
        i = int(wrong.argmax())
        raise SourceError(
            f"{y_of} must be non-negative integers (class indices), but {int(wrong.sum())} are not, such as {y[i]:g} (sample {i})"
        )
    if (y64 >= MAX_CLASS).any():
        i = int((y64 >= MAX_CLASS).argmax())
        raise SourceError(f"{y_of} must be class indices below {MAX_CLASS}, but sample {i} has {y64[i]:g}")
    return x.astype(np.float32), y.astype(np.int64)


def _npz_columns(path: Path, written: str, names: Collection[str], rows: int) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        have = list(npz.files)
        table = {n: _npz_array(npz, n, written) for n in names if n in have}
    found = {}
    for name in names:
        if name not in table:
            hint, _ = did_you_mean(name, have)
            raise SourceError(f"'{written}' has no column named '{name}' (it has {_names(have)}){hint}")
        column = table[name]
        if column.shape != (rows,) or not _numeric(column) or not np.isfinite(column.astype(np.float64)).all():
            raise SourceError(f"the column '{name}' of '{written}' must hold one finite number per sample ({rows}); it has shape {list(column.shape)}")
        found[name] = column.astype(np.float64)
    return found


def _csv_columns(parsed: _Csv, written: str, names: Collection[str]) -> dict[str, np.ndarray]:
    found = {}
    for name in names:
        j = _column(parsed, written, name, "")
        column = parsed.table[:, j]
        bad = ~np.isfinite(column)
        if bad.any():
            raise SourceError(f"the column '{name}' of '{written}' must hold one finite number per sample, but {parsed.at(written, int(bad.argmax()), j)} does not")
        found[name] = column.copy()
    return found


def file(args: dict, seed: int, base_dir: str, columns: Collection[str] = ()) -> Raw:
    """Arrays from a .npz file (arrays named by x and y) or a .csv file (a header row; the
    y column is the label; x names the input columns, or by default every other column is
    one), relative to the spec's folder."""
    written, x_name, y_name = str(args["path"]), str(args.get("x", "x")), str(args.get("y", "y"))
    path = Path(base_dir) / written  # an absolute path stays as written
    if not path.is_file():
        raise SourceError(f"no data file '{written}' (looked for {path})")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x, y = _read_npz(path, written, x_name, y_name)
        x_of, y_of = f"the inputs '{x_name}' of '{written}'", f"the labels '{y_name}' of '{written}'"
        x, y = _check_arrays(x, y, x_of, y_of)
        data_columns = _npz_columns(path, written, columns, len(y)) if columns else None
    elif suffix == ".csv":
        x, y, parsed = _read_csv(path, written, x_name, y_name, columns)
        x_of, y_of = f"the input columns of '{written}'", f"the labels in column '{y_name}' of '{written}'"
        x, y = _check_arrays(x, y, x_of, y_of)
        data_columns = _csv_columns(parsed, written, columns) if columns else None
    else:
        raise SourceError(f"cannot read '{written}': a data file must end in .npz or .csv")
    return Raw(x, y, None, None, data_columns)


SOURCES: dict[str, Callable[[dict, int, str], Raw]] = {
    "mnist1d": mnist1d,
    "digits": digits,
    "playground": playground,
    "synthetic_images": synthetic_images,
    "file": file,
}


def load_source(step: Step, seed: int, base_dir: str, columns: Collection[str] = ()) -> Raw:
    """The raw arrays of a `source` clause; a problem with them is an error at the clause."""
    source = implementation(SOURCES, step.kind, "data source", step.span)
    try:
        if columns:
            if step.kind != "file":
                raise SourceError(f"{step.kind} has no data columns; a column comes from a file source")
            return file(step.args, seed, base_dir, columns)
        return source(step.args, seed, base_dir)
    except SourceError as e:
        fail(str(e), step.span)
