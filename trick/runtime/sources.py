"""The data sources: the raw arrays of a `source` clause (DataPlan.source), by kind.

`SOURCES` is the dispatch table, keyed by the names of the registry's data sources (a test
holds both sides equal); `load_source` runs one and turns a problem with its data into an
error at the clause. Every random choice comes from the seed it is given; the global RNGs of
Python, numpy and torch are never drawn from (nor reseeded: see `mnist1d`).
"""

from __future__ import annotations

import csv
import functools
import math
import random
import warnings
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
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SourceError(f"cannot read '{written}' as a .npz archive: {e}") from None
    with npz:
        arrays = []
        for role, name in (("inputs", x_name), ("labels", y_name)):
            if name not in npz.files:
                hint, _ = did_you_mean(name, npz.files)
                have = ", ".join(f"'{f}'" for f in npz.files) or "none"
                raise SourceError(f"'{written}' has no array named '{name}' for the {role} (its arrays: {have}){hint}")
            try:
                arrays.append(npz[name])
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                raise SourceError(f"cannot read array '{name}' of '{written}': {e}") from None
    return arrays[0], arrays[1]


def _read_csv(path: Path, written: str, y_name: str, other: Collection[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """A header row of column names, then numbers; y is the label column, x all the others
    (but the `other` columns, which are not inputs)."""
    try:
        with open(path, newline="") as f:
            names = [c.strip() for c in next(csv.reader(f), [])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file warns; it is reported below
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, quotechar='"', dtype=np.float64)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SourceError(f"cannot read '{written}' as a .csv file: {e}") from None
    if y_name not in names:
        hint, _ = did_you_mean(y_name, names)
        have = ", ".join(f"'{c}'" for c in names) or "none"
        raise SourceError(f"'{written}' has no column named '{y_name}' for the labels (its header names {have}){hint}")
    if len(table) == 0:
        raise SourceError(f"'{written}' has a header but no rows of data")
    if table.shape[1] != len(names):
        raise SourceError(f"the header of '{written}' names {len(names)} columns, but its rows have {table.shape[1]} values")
    if len(names) < 2:
        raise SourceError(f"'{written}' has only the label column '{y_name}'; the inputs are every other column")
    j = names.index(y_name)
    inputs = [i for i, name in enumerate(names) if i != j and name not in other]
    return table[:, inputs], table[:, j]


def _numeric(a: np.ndarray) -> bool:
    return a.dtype == bool or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)


def _check_arrays(x: np.ndarray, y: np.ndarray, x_of: str, y_of: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole-message checks of user data: finite numeric inputs, one class index per sample.
    `x_of` / `y_of` say what the arrays are, e.g. "the inputs 'x' of 'd.npz'"."""
    if not _numeric(x):
        raise SourceError(f"{x_of} are not numbers (dtype {x.dtype})")
    if not _numeric(y):
        raise SourceError(f"{y_of} are not numbers (dtype {y.dtype}); they must be class indices 0, 1, 2, ...")
    if y.ndim != 1:
        raise SourceError(f"{y_of} have shape {list(y.shape)}; they must be a 1-D array, one class index per sample")
    if x.ndim == 0 or len(x) == 0:
        raise SourceError(f"{x_of} hold no samples (shape {list(x.shape)})")
    if len(x) != len(y):
        raise SourceError(f"{x_of} have {len(x)} samples, but {y_of} have {len(y)}; they must be equally many")
    if x.ndim == 1:  # one number per sample
        x = x[:, None]
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        row = int(bad.any(1).argmax())
        raise SourceError(f"{x_of} have {int(bad.sum())} NaN or infinite values (the first in sample {row}); remove or fill them")
    y64 = y.astype(np.float64)
    wrong = ~(np.isfinite(y64) & (y64 >= 0) & (y64 == np.round(y64)))
    if wrong.any():
        i = int(wrong.argmax())
        raise SourceError(
            f"{y_of} must be non-negative integers (class indices), but {int(wrong.sum())} are not, such as {y[i]:g} (sample {i})"
        )
    return x.astype(np.float32), y.astype(np.int64)


def _read_columns(path: Path, written: str, names: Collection[str], rows: int) -> dict[str, np.ndarray]:
    """Per-sample numbers named in a .npz (arrays) or .csv (columns), e.g. a difficulty score."""
    found: dict[str, np.ndarray] = {}
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            have = list(npz.files)
            table = {n: npz[n] for n in names if n in have}
    else:
        with open(path, newline="") as f:
            have = [c.strip() for c in next(csv.reader(f), [])]
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, quotechar='"', dtype=np.float64)
        table = {n: data[:, have.index(n)] for n in names if n in have}
    for name in names:
        if name not in table:
            hint, _ = did_you_mean(name, have)
            raise SourceError(f"'{written}' has no column named '{name}' (it has {', '.join(repr(h) for h in have)}){hint}")
        column = np.asarray(table[name])
        if column.shape != (rows,) or not _numeric(column) or not np.isfinite(column.astype(np.float64)).all():
            raise SourceError(f"the column '{name}' of '{written}' must hold one finite number per sample ({rows}); it has shape {list(column.shape)}")
        found[name] = column.astype(np.float64)
    return found


def file(args: dict, seed: int, base_dir: str, columns: Collection[str] = ()) -> Raw:
    """Arrays from a .npz file (arrays named by x and y) or a .csv file (a header row; the
    y column is the label, every other column an input), relative to the spec's folder."""
    written, x_name, y_name = str(args["path"]), str(args.get("x", "x")), str(args.get("y", "y"))
    path = Path(base_dir) / written  # an absolute path stays as written
    if not path.is_file():
        raise SourceError(f"no data file '{written}' (looked for {path})")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x, y = _read_npz(path, written, x_name, y_name)
        x_of, y_of = f"the inputs '{x_name}' of '{written}'", f"the labels '{y_name}' of '{written}'"
    elif suffix == ".csv":
        x, y = _read_csv(path, written, y_name, columns)
        x_of, y_of = f"the input columns of '{written}'", f"the labels in column '{y_name}' of '{written}'"
    else:
        raise SourceError(f"cannot read '{written}': a data file must end in .npz or .csv")
    x, y = _check_arrays(x, y, x_of, y_of)
    return Raw(x, y, None, None, _read_columns(path, written, columns, len(y)) if columns else None)


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
