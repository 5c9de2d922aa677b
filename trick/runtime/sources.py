"""The data sources: the raw arrays of a `source` clause (DataPlan.source), by kind.

`SOURCES` is the dispatch table, keyed by the names of the registry's data sources (a test
holds both sides equal); `load_source` runs one and turns a problem with its data into an
error at the clause. Every random choice comes from the seed it is given; the global RNGs of
Python, numpy and torch are never drawn from (nor reseeded: see `mnist1d`).
"""

from __future__ import annotations

import functools
import math
import os
import random
import zipfile
from pathlib import Path
from typing import Callable, Collection, NamedTuple

import numpy as np

from ..compiler.ir import Step
from ..dsl.diagnostics import did_you_mean, fail  # fail raises TrickCheckError(Diagnostic(span, message))
from . import tables
from .dispatch import implementation


class SourceError(ValueError):
    """A problem with a source's data; `load_source` turns it into a TrickCheckError at the
    source clause, so that the loaders need not know about spans."""


class Raw(NamedTuple):
    """What a source gives: x float32 [N, ...] (an images.ImageSet for a folder), y int64 [N]
    class indices (float64 for a regression target); the test pair is None when the source has
    no test split of its own."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    columns: dict[str, np.ndarray] | None = None  # other per-sample arrays (of the training part)
    classes: list[str] | None = None  # the label classes' names, by index (None: "0", "1", ...)
    split: np.ndarray | None = None  # per training row "train" / "val" / "test", where the data says (a split column, split folders)
    names: list[str] | None = None  # the input columns' names (a .csv)


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


_clip = tables.clip
FLOAT32_MAX, MAX_CLASS = tables.FLOAT32_MAX, tables.MAX_CLASS


def _numeric(a: np.ndarray) -> bool:
    return a.dtype == bool or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)


def _check_arrays(x: np.ndarray, y: np.ndarray, x_of: str, y_of: str, regression: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Whole-message checks of user data: finite numeric inputs, one class index (or, for a
    regression target, one finite number) per sample. uint8 inputs (images) are scaled to
    [0, 1]. `x_of` / `y_of` say what the arrays are, e.g. "the inputs 'x' of 'd.npz'"."""
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
    scaled = x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.astype(np.float32)
    if regression:
        bad = ~np.isfinite(y64)
        if bad.any():
            raise SourceError(f"{y_of} have {int(bad.sum())} NaN or infinite values (the first in sample {int(bad.argmax())}); a regression target needs finite numbers")
        return scaled, y64
    wrong = ~(np.isfinite(y64) & (y64 >= 0) & (y64 == np.round(y64)))
    if wrong.any():
        i = int(wrong.argmax())
        raise SourceError(
            f"{y_of} must be non-negative integers (class indices), but {int(wrong.sum())} are not, such as {y[i]:g} (sample {i}); "
            "for numbers to predict, use a regression loss (loss mse, l1 or huber on one output)"
        )
    if (y64 >= MAX_CLASS).any():
        i = int((y64 >= MAX_CLASS).argmax())
        raise SourceError(f"{y_of} must be class indices below {MAX_CLASS}, but sample {i} has {y64[i]:g}")
    return scaled, y.astype(np.int64)


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


def _table_columns(table: tables.Table, names: Collection[str]) -> dict[str, np.ndarray]:
    return {name: tables.numbers(table, [_column(table, name, "")], "a data")[:, 0] for name in names}


def _column(table: tables.Table, name: str, role: str) -> int:
    if name not in table.names:
        hint, _ = did_you_mean(name, table.names)
        raise SourceError(f"'{table.written}' has no column named '{name}'{role} (its header names {_names(table.names)}){hint}")
    return table.names.index(name)


def _read_csv(path: Path, written: str, args: dict, regression: bool, other: Collection[str]) -> Raw:
    """y is the label column, `split` the split column; x the columns it names (a list, a name,
    or names separated by commas), by default every other column (but the `other` columns,
    which are not inputs), or the column `x` when the file has one."""
    table = tables.parse_csv(path, written)
    y_name, x_names, split_name = str(args.get("y", "y")), args.get("x", "x"), args.get("split")
    j = _column(table, y_name, " for the labels")
    s = _column(table, split_name, " for the split") if split_name is not None else None
    if s == j:
        raise SourceError(f"the column '{y_name}' of '{written}' cannot be both the labels (y) and the split")
    if x_names == "x" and "x" not in table.names:  # the default: every column but the labels
        inputs = [i for i, name in enumerate(table.names) if i not in (j, s) and name not in other]
        if not inputs:
            raise SourceError(f"'{written}' has only the label column '{y_name}'; the inputs are every other column")
    else:
        wanted = x_names if isinstance(x_names, list) else [n.strip() for n in str(x_names).split(",")]
        inputs = [_column(table, n, " for the inputs") for n in wanted]
        for role, k in (("the labels (y)", j), ("the split", s)):
            if k in inputs:
                raise SourceError(f"the column '{table.names[k]}' of '{written}' cannot be both an input (x) and {role}")
        if len(set(inputs)) != len(inputs):
            twice = next(n for n in wanted if wanted.count(n) > 1)
            raise SourceError(f"x names the column '{twice}' of '{written}' twice")
    if not table.cells:
        raise SourceError(f"'{written}' has a header but no rows of data")
    x = tables.numbers(table, inputs, "an input").astype(np.float32)
    y, classes = tables.labels(table, j, regression)
    split = tables.split_column(table, s) if s is not None else None
    columns = _table_columns(table, other) if other else None
    return Raw(x, y, None, None, columns, classes, split, [table.names[i] for i in inputs])


def _read_npy(path: Path, written: str, args: dict, base_dir: str) -> tuple[np.ndarray, np.ndarray]:
    y_written = str(args.get("y", ""))
    arrays = []
    for file_path, shown in ((path, written), (Path(base_dir) / y_written, y_written)):
        if not file_path.is_file():
            raise SourceError(f"no data file '{shown}' (looked for {file_path})")
        try:
            arrays.append(np.load(file_path, allow_pickle=False))
        except MemoryError:
            raise SourceError(f"'{shown}' is too large to load") from None
        except Exception as e:  # a damaged header, an object array, a truncated file...
            raise SourceError(f"cannot read '{shown}' as a .npy array: {_reason(e)}") from None
    return arrays[0], arrays[1]


def file(args: dict, seed: int, base_dir: str, columns: Collection[str] = (), regression: bool = False) -> Raw:
    """Arrays from a .npz file (arrays named by x and y), a .npy pair (x the path, y the labels'
    path) or a .csv file (tables.py), relative to the spec's folder."""
    written = str(args["path"])
    path = Path(base_dir) / written  # an absolute path stays as written
    if not path.is_file():
        raise SourceError(f"no data file '{written}' (looked for {path})")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            raw = _read_csv(path, written, args, regression, columns)
        except tables.TableError as e:
            raise SourceError(str(e)) from None
        return raw
    x_name, y_name = str(args.get("x", "x")), str(args.get("y", "y"))
    if suffix == ".npz":
        x, y = _read_npz(path, written, x_name, y_name)
        x_of, y_of = f"the inputs '{x_name}' of '{written}'", f"the labels '{y_name}' of '{written}'"
    elif suffix == ".npy":
        x, y = _read_npy(path, written, args, base_dir)
        x_of, y_of = f"the inputs in '{written}'", f"the labels in '{y_name}'"
    else:
        raise SourceError(f"cannot read '{written}': a data file must end in .npz, .npy or .csv")
    x, y = _check_arrays(x, y, x_of, y_of, regression)
    data_columns = _npz_columns(path, written, columns, len(y)) if columns and suffix == ".npz" else None
    if columns and suffix == ".npy":
        raise SourceError(f"a .npy file has no columns ({', '.join(columns)}); use a .npz or .csv file")
    return Raw(x, y, None, None, data_columns)


def folder(args: dict, seed: int, base_dir: str, stream=None) -> Raw:
    """Images in class subfolders (folder.py decodes them; images.py keeps or streams them):
    the train/val/test subfolders, when present, give the split of each image."""
    from . import folder as files
    from .images import ImageSet

    written = str(args["path"])
    try:
        index = files.scan_folder(Path(base_dir) / written, written)
        size, color = files.resolve(index, args.get("size"), args.get("color"))
        workers = args.get("workers")
        workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
        parts = [(name, *index.splits[name]) for name in ("all", "train", "val", "test") if name in index.splits]
        paths = [p for _, part_paths, _ in parts for p in part_paths]
        labels = np.concatenate([y for _, _, y in parts]).astype(np.int64)
        split = np.concatenate([np.full(len(y), "train" if name == "all" else name) for name, _, y in parts])
        cache = args.get("cache", "auto")
        keep = cache == "memory" or (cache == "auto" and files.fits(len(paths), files.channel_count(color), size, files.cache_budget()))
        cached = files.decode_all(paths, size, color, written, stream=stream, workers=workers) if keep else None
    except files.FolderError as e:
        raise SourceError(str(e)) from None
    images = ImageSet(paths, size, color, written, cached, workers)
    return Raw(images, labels, None, None, None, list(index.classes), None if "all" in index.splits else split)


SOURCES: dict[str, Callable[..., Raw]] = {
    "mnist1d": mnist1d,
    "digits": digits,
    "playground": playground,
    "synthetic_images": synthetic_images,
    "file": file,
    "folder": folder,
}


def load_source(step: Step, seed: int, base_dir: str, columns: Collection[str] = (), regression: bool = False, stream=None) -> Raw:
    """The raw arrays of a `source` clause; a problem with them is an error at the clause.
    `regression`: the labels are numbers to predict (not classes)."""
    source = implementation(SOURCES, step.kind, "data source", step.span)
    try:
        if columns and step.kind != "file":
            raise SourceError(f"{step.kind} has no data columns; a column comes from a file source")
        if step.kind == "file":
            return file(step.args, seed, base_dir, columns, regression)
        if regression:
            raise SourceError(f"{step.kind} gives class labels, not numbers to regress; use cross_entropy, or a file source with numeric targets")
        if step.kind == "folder":
            return folder(step.args, seed, base_dir, stream)
        return source(step.args, seed, base_dir)
    except SourceError as e:
        fail(str(e), step.span)
