"""The data: sources, splits, derived targets and normalization, from a DataPlan to tensors.

`load_splits(plan, seed, input_shape)` is the whole pipeline:

    source -> classes filter -> test split -> train_fraction -> validation split
           -> derived targets -> reshape to the model's input -> normalize (fitted on train)

Every random choice comes from local generators seeded from `seed`; the global RNGs of
Python, numpy and torch are never drawn from (nor reseeded: see `mnist1d`).
"""

from __future__ import annotations

import csv
import functools
import math
import random
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, NamedTuple

import numpy as np
import torch

from ..compiler.ir import DataPlan, Step, Target
from ..dsl.diagnostics import Span, did_you_mean, fail  # fail raises TrickCheckError(Diagnostic(span, message))


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


# ---- sources ----------------------------------------------------------------------------------------


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
    if step.kind not in SOURCES:
        hint, _ = did_you_mean(step.kind, SOURCES)
        fail(f"unknown data source '{step.kind}'{hint}", step.span)
    try:
        if columns:
            if step.kind != "file":
                raise SourceError(f"{step.kind} has no data columns; a column comes from a file source")
            return file(step.args, seed, base_dir, columns)
        return SOURCES[step.kind](step.args, seed, base_dir)
    except SourceError as e:
        fail(str(e), step.span)


# ---- splits ------------------------------------------------------------------------------------------


def _stratified(x, y, fraction: float, seed: int, what: str, span: Span):
    """(x_rest, y_rest, x_part, y_part), the part a stratified `fraction` of the samples."""
    from sklearn.model_selection import train_test_split

    # sklearn's own errors speak of test_size; say what the user asked for instead.
    classes, counts = np.unique(y, return_counts=True)
    part = math.ceil(fraction * len(y))  # as sklearn rounds it
    if counts.min() < 2:
        fail(f"cannot take a stratified {what} of {fraction:g}: class {classes[counts.argmin()]} has only 1 sample", span)
    if min(part, len(y) - part) < len(classes):
        fail(
            f"cannot take a stratified {what} of {fraction:g} from {len(y)} samples: it splits them {len(y) - part} / {part}, "
            f"and each side needs a sample of each of the {len(classes)} classes",
            span,
        )
    x_rest, x_part, y_rest, y_part = train_test_split(x, y, test_size=part, stratify=y, random_state=seed)
    return x_rest, y_rest, x_part, y_part


def _keep_classes(classes: tuple[int, ...], raw: Raw, span: Span) -> Raw:
    """Keep the listed classes, relabelled 0..k-1 in the order given."""
    if len(set(classes)) != len(classes):
        fail(f"classes lists a class twice: {list(classes)}", span)
    present = set(np.unique(raw.y_train).tolist()) | (set() if raw.y_test is None else set(np.unique(raw.y_test).tolist()))
    for c in classes:
        if c not in present:
            fail(f"classes lists {c}, but the data has no class {c} (its classes: {', '.join(map(str, sorted(present)))})", span)
    table = np.full(max(present | set(classes)) + 1, -1, np.int64)
    table[list(classes)] = np.arange(len(classes))

    def keep(x, y):
        if x is None:
            return None, None
        new = table[y]
        return x[new >= 0], new[new >= 0]

    kept = table[raw.y_train] >= 0
    columns = {name: c[kept] for name, c in raw.columns.items()} if raw.columns else None
    return Raw(*keep(raw.x_train, raw.y_train), *keep(raw.x_test, raw.y_test), columns)


# ---- derived targets --------------------------------------------------------------------------------

_OPS = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "%": np.mod,
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal,
}  # fmt: skip
_PRECEDENCE = {**dict.fromkeys(("<", "<=", ">", ">=", "==", "!="), 1), "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}


def expr_text(expr: Any) -> str:
    """The expression as the spec would write it, with only the parentheses it needs."""

    def text(e, outer: int = 0) -> str:
        if isinstance(e, str):
            return e
        if not isinstance(e, list):
            return f"{e:g}" if isinstance(e, float) else str(e)
        if e[0] == "neg":
            return "-" + text(e[1], 3)
        p = _PRECEDENCE[e[0]]
        # Arithmetic is left-associative (a - b - c needs no parentheses, a - (b - c) does);
        # comparisons do not chain, so a comparison inside one always gets them.
        s = f"{text(e[1], p - 1 if p > 1 else p)} {e[0]} {text(e[2], p)}"
        return f"({s})" if p <= outer else s

    return text(expr)


def _evaluate(expr: Any, names: dict[str, np.ndarray], span: Span) -> np.ndarray:
    """Evaluate a target expression tree elementwise; comparisons give 0 or 1."""
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return np.float64(expr)
    if isinstance(expr, str):
        if expr not in names:
            hint, _ = did_you_mean(expr, names)
            fail(f"unknown name '{expr}' in the expression; it can use 'label' and earlier targets{hint}", span)
        return names[expr]
    op, *operands = expr
    values = [_evaluate(o, names, span) for o in operands]
    if op == "neg":
        return -values[0]
    return _OPS[op](*values).astype(np.float64)


def derive_targets(targets: tuple[Target, ...], labels: np.ndarray, regression: Collection[str] = ()) -> dict[str, np.ndarray]:
    """{"label": labels, name: values...}: int64 class indices, float32 for regression targets."""
    found: dict[str, np.ndarray] = {"label": labels}
    floats: dict[str, np.ndarray] = {"label": labels.astype(np.float64)}
    for target in targets:
        with np.errstate(all="ignore"):  # division by zero becomes inf/nan, reported below
            value = np.broadcast_to(_evaluate(target.expr, floats, target.span), labels.shape).astype(np.float64)
        what = f"target {target.name} = {expr_text(target.expr)}"
        if not np.isfinite(value).all():
            fail(f"{what} divides by zero for some samples", target.span)
        floats[target.name] = value
        if target.name in regression:
            found[target.name] = value.astype(np.float32)
            continue
        fractional, negative = value[value != np.round(value)], value[value < 0]
        if len(fractional):
            fail(f"{what} gives non-integer values such as {fractional[0]:.3g}; a class target needs integers >= 0", target.span)
        if len(negative):
            fail(f"{what} gives negative values such as {negative[0]:g}; a class target needs integers >= 0", target.span)
        found[target.name] = value.astype(np.int64)
    return found


# ---- normalization ------------------------------------------------------------------------------------


class Normalizer:
    """x' = (x - shift) / scale, fitted on the training split only.

    zscore: shift = m, scale = σ with σ² = 1/n Σ(x - m)² (the population variance, ddof=0);
    minmax: shift = min, scale = max - min, mapping train into [0, 1].
    per=feature fits one pair per value position, per=channel one per channel (axis 1 of
    [N, C, ...]). A zero scale (a constant feature) becomes 1. kind None is the identity.
    """

    def __init__(self, kind: str | None = None, per: str = "feature"):
        self.kind, self.per = kind, per
        self.shift: torch.Tensor | None = None  # float64, broadcasting over [N, *input_shape]
        self.scale: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> "Normalizer":
        if self.kind is None:
            return self
        dims = (0,) if self.per == "feature" or x.dim() == 2 else (0, *range(2, x.dim()))
        if self.kind == "zscore":
            shift = x.double().mean(dims, keepdim=True)
            scale = x.double().var(dims, correction=0, keepdim=True).sqrt()
        elif self.kind == "minmax":  # in float32, so that (max - min) / (max - min) is exactly 1
            shift = x.amin(dims, keepdim=True).double()
            scale = x.amax(dims, keepdim=True).double() - shift
        else:
            raise ValueError(f"unknown normalization '{self.kind}'")
        self.shift, self.scale = shift[0].double(), torch.where(scale[0] == 0, 1.0, scale[0].double())
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind is None:
            return x
        # In float64: a float32 shift of a feature far from 0 (1000 ± 0.01) would bias the mean.
        return ((x.double() - self.shift.to(x.device)) / self.scale.to(x.device)).to(x.dtype)

    def state_dict(self) -> dict:
        plain = lambda t: None if t is None else t.tolist()  # noqa: E731
        return {"kind": self.kind, "per": self.per, "shift": plain(self.shift), "scale": plain(self.scale)}

    def load_state_dict(self, state: dict) -> None:
        tensor = lambda v: None if v is None else torch.tensor(v, dtype=torch.float64)  # noqa: E731
        self.kind, self.per = state["kind"], state["per"]
        self.shift, self.scale = tensor(state["shift"]), tensor(state["scale"])


# ---- the pipeline -------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    """Float32 inputs [N, *input_shape] (normalized) and int64 labels per split; `targets`
    maps a split to {target name: tensor}, the label under "label"; `num_classes` gives
    max + 1 of each class target over all splits."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    targets: dict[str, dict[str, torch.Tensor]]
    num_classes: dict[str, int]
    normalizer: Normalizer

    def split(self, name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(x, targets) of "train", "val" or "test"."""
        return getattr(self, f"x_{name}"), self.targets[name]


def load_splits(plan: DataPlan, seed: int, input_shape: tuple[int, ...], regression: Collection[str] = ()) -> Splits:
    """The data of a plan, split, with derived targets, shaped for the model and normalized.

    `regression` names derived targets that are real-valued (mse heads): they are kept as
    float32 and need not be class indices.
    """
    # Independent streams per step, so that e.g. changing the validation fraction leaves the
    # test split (and the generated data) as they were.
    source_seed, test_seed, fraction_seed, val_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(4))
    raw = load_source(plan.source, source_seed, plan.base_dir, plan.columns)
    if plan.classes is not None:
        raw = _keep_classes(tuple(plan.classes), raw, plan.span)
    x, y, x_test, y_test, columns = raw
    columns = columns or {}
    have, need = math.prod(x.shape[1:]), math.prod(input_shape)
    if have != need:
        what = f"'{plan.source.args.get('path')}'" if plan.source.kind == "file" else plan.source.kind
        shape = f" (shape {list(x.shape[1:])})" if x.ndim > 2 else ""
        fail(f"the model's input {list(input_shape)} has {need} values, but {what} samples have {have}{shape}", plan.span)

    # The splits move row numbers, so that the inputs and any data columns follow them alike.
    rows = np.arange(len(y))
    if x_test is None or plan.test is not None:
        if x_test is not None:  # an explicit test fraction re-splits all of the source's data
            x, y, rows = np.concatenate([x, x_test]), np.concatenate([y, y_test]), np.arange(len(y) + len(y_test))
        rows, y, test_rows, y_test = _stratified(rows, y, 0.2 if plan.test is None else plan.test, test_seed, "test split", plan.span)
        x_test = x[test_rows]
    else:
        test_rows = None
    if plan.train_fraction < 1:
        _, _, rows, y = _stratified(rows, y, plan.train_fraction, fraction_seed, "train_fraction", plan.span)
    if plan.validation > 0:
        rows, y, val_rows, y_val = _stratified(rows, y, plan.validation, val_seed, "validation split", plan.span)
    else:
        val_rows, y_val = rows[:0], y[:0]
    x, x_val = x[rows], x[val_rows]

    # Targets are computed on all splits at once, so that a bad value anywhere is found.
    derived = derive_targets(plan.targets, np.concatenate([y, y_val, y_test]), regression)
    bounds = np.cumsum([0, len(y), len(y_val), len(y_test)])
    targets = {
        s: {name: torch.from_numpy(np.ascontiguousarray(v[bounds[i] : bounds[i + 1]])) for name, v in derived.items()}
        for i, s in enumerate(SPLITS)
    }
    num_classes = {name: int(v.max()) + 1 for name, v in derived.items() if name not in regression}
    for name, column in columns.items():  # data columns (e.g. a curriculum's difficulty), per split
        for split, split_rows in (("train", rows), ("val", val_rows), ("test", test_rows)):
            if split_rows is not None:
                targets[split][name] = torch.from_numpy(np.ascontiguousarray(column[split_rows]))

    shaped = (torch.from_numpy(np.ascontiguousarray(a, np.float32)).reshape(len(a), *input_shape) for a in (x, x_val, x_test))
    x_train, x_val, x_test = shaped
    norm = plan.normalize
    normalizer = Normalizer(norm.kind, norm.args.get("per", "feature")) if norm else Normalizer()
    normalizer.fit(x_train)
    x_train, x_val, x_test = (normalizer(t).contiguous() for t in (x_train, x_val, x_test))
    labels = {s: targets[s]["label"] for s in SPLITS}
    return Splits(x_train, labels["train"], x_val, labels["val"], x_test, labels["test"], targets, num_classes, normalizer)
