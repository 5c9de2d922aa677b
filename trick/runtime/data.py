"""The data pipeline: from a DataPlan to normalized tensors, split, with derived targets.

`load_splits(plan, seed, input_shape)` is the whole pipeline:

    source -> classes filter -> test split -> train_fraction -> validation split
           -> derived targets -> reshape to the model's input -> normalize (fitted on train)

The splits keep the inputs as the source gave them as well (`Splits.raw`): augmentation acts
on the data's own scale, so the trainer augments raw training batches and then normalizes
them with the same `Normalizer` (docs/augmentation.md).

The sources themselves are in `sources.py`. Every random choice comes from local generators
seeded from `seed`; the global RNGs of Python, numpy and torch are never drawn from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Collection

import numpy as np
import torch

from ..compiler.ir import DataPlan, Target, evaluate_expr, expr_text
from ..dsl.diagnostics import Span, did_you_mean, fail  # fail raises TrickCheckError(Diagnostic(span, message))
from .dispatch import implementation
from .sources import Raw, load_source

# ---- splits ------------------------------------------------------------------------------------------


def _stratified(x, y, fraction: float, seed: int, what: str, span: Span, names: list[str] | None = None, stratify: bool = True):
    """(x_rest, y_rest, x_part, y_part), the part a stratified `fraction` of the samples (a
    random one without `stratify`: numbers to regress have no classes)."""
    from sklearn.model_selection import train_test_split

    part = math.ceil(fraction * len(y))  # as sklearn rounds it
    if not stratify:
        if min(part, len(y) - part) < 1:
            fail(f"cannot take a {what} of {fraction:g} from {len(y)} sample{'s' * (len(y) != 1)}: each side needs one or more", span)
        x_rest, x_part, y_rest, y_part = train_test_split(x, y, test_size=part, random_state=seed)
        return x_rest, y_rest, x_part, y_part
    # sklearn's own errors speak of test_size; say what the user asked for instead.
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        lonely = int(classes[counts.argmin()])
        shown = f"'{names[lonely]}'" if names and lonely < len(names) else str(lonely)
        fail(f"cannot take a stratified {what} of {fraction:g}: class {shown} has only 1 sample, and each side of the split needs one", span)
    if min(part, len(y) - part) < len(classes):
        fail(
            f"cannot take a stratified {what} of {fraction:g} from {len(y)} samples: it splits them {len(y) - part} / {part}, "
            f"and each side needs a sample of each of the {len(classes)} classes",
            span,
        )
    x_rest, x_part, y_rest, y_part = train_test_split(x, y, test_size=part, stratify=y, random_state=seed)
    return x_rest, y_rest, x_part, y_part


def _keep_classes(classes: tuple[int, ...], raw: Raw, span: Span) -> Raw:
    """Keep the listed classes, relabelled 0..k-1 in the order given (their names with them)."""
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
    names = [raw.classes[c] if raw.classes and c < len(raw.classes) else str(c) for c in classes]
    x_train = raw.x_train.subset(np.flatnonzero(kept)) if hasattr(raw.x_train, "subset") else raw.x_train[kept]
    y_train = table[raw.y_train][kept]
    split = raw.split[kept] if raw.split is not None else None
    return Raw(x_train, y_train, *keep(raw.x_test, raw.y_test), columns, names, split, raw.names)


# ---- derived targets --------------------------------------------------------------------------------


def _real(expr: Any) -> Any:
    """The tree with its numbers as floats: every sample's value is computed in float64."""
    if isinstance(expr, (list, tuple)):
        return [expr[0], *map(_real, expr[1:])]
    return expr if isinstance(expr, str) else float(expr)


def _values(target: Target, names: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """A target's value for every sample (float64), by the IR's evaluator; errors at the target."""
    try:
        # a division by zero or an overflow in any sample raises (as it does on Python
        # numbers), so that a comparison of its inf or nan cannot hide it
        with np.errstate(divide="raise", invalid="raise", over="raise", under="ignore"):
            value = evaluate_expr(_real(target.expr), names)
    except KeyError as e:
        hint, _ = did_you_mean(e.args[0], names)
        fail(f"unknown name '{e.args[0]}' in the expression; it can use 'label' and earlier targets{hint}", target.span)
    except FloatingPointError as err:
        if "overflow" in str(err):
            fail(f"target {target.name} = {expr_text(target.expr)} overflows for some samples: its value is beyond the 64-bit float range (about 1.8e308)", target.span)
        value = np.inf  # a division by zero: reported by the caller, with the expression
    except ZeroDivisionError:
        value = np.inf  # reported by the caller, with the expression
    return np.broadcast_to(value, shape).astype(np.float64)


def derive_targets(targets: tuple[Target, ...], labels: np.ndarray, regression: Collection[str] = ()) -> dict[str, np.ndarray]:
    """{"label": labels, name: values...}: int64 class indices, float32 for regression targets."""
    found: dict[str, np.ndarray] = {"label": labels.astype(np.float32) if "label" in regression else labels}
    floats: dict[str, np.ndarray] = {"label": labels.astype(np.float64)}
    for target in targets:
        value = _values(target, floats, labels.shape)
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


def _zscore(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    return x.double().mean(dims, keepdim=True), x.double().var(dims, correction=0, keepdim=True).sqrt()


def _minmax(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    shift = x.amin(dims, keepdim=True).double()  # in float32, so that (max - min) / (max - min) is exactly 1
    return shift, x.amax(dims, keepdim=True).double() - shift


# The normalizations by registry name: x -> (shift, scale) over the fitted dimensions.
NORMALIZERS = {"zscore": _zscore, "minmax": _minmax}


def unit_range_clamp(low: float | None, high: float | None) -> tuple[float, float] | None:
    """(0.0, 1.0) for data whose values lie in [0, 1] (colour changes then clamp to it, as
    torchvision's do on float images), else None."""
    if low is None or high is None:
        return None
    return (0.0, 1.0) if low >= 0.0 and high <= 1.0 else None


class Normalizer:
    """x' = (x - shift) / scale, fitted on the training split only.

    zscore: shift = m, scale = σ with σ² = 1/n Σ(x - m)² (the population variance, ddof=0);
    minmax: shift = min, scale = max - min, mapping train into [0, 1].
    per=feature fits one pair per value position, per=channel one per channel (axis 1 of
    [N, C, ...]). A zero scale (a constant feature) becomes 1. kind None is the identity.

    `fit` also records the range [low, high] of the raw training values (with any kind):
    `clamp` is (0, 1) when it lies in [0, 1] (images stored as floats in [0, 1], where colour
    augmentation clamps its results as torchvision does), else None.
    """

    def __init__(self, kind: str | None = None, per: str = "feature", span=None):
        self.kind, self.per, self.span = kind, per, span
        self.shift: torch.Tensor | None = None  # float64, broadcasting over [N, *input_shape]
        self.scale: torch.Tensor | None = None
        self.low: float | None = None  # the range of the raw training values, set by fit
        self.high: float | None = None

    @property
    def clamp(self) -> tuple[float, float] | None:
        """(0.0, 1.0) when the raw training data lies in [0, 1], else None: the bounds the
        colour augmentation clamps to (`Augmenter(steps, clamp=...)`)."""
        return unit_range_clamp(self.low, self.high)

    def fit(self, x: torch.Tensor) -> "Normalizer":
        if x.numel():
            self.low, self.high = float(x.min()), float(x.max())
        if self.kind is None:
            return self
        dims = (0,) if self.per == "feature" or x.dim() == 2 else (0, *range(2, x.dim()))
        shift, scale = implementation(NORMALIZERS, self.kind, "normalization", self.span)(x, dims)
        self.shift, self.scale = shift[0].double(), torch.where(scale[0] == 0, 1.0, scale[0].double())
        return self

    def fit_moments(self, n: int, sums: torch.Tensor, squares: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> "Normalizer":
        """Fitted from float64 sums over n samples per value position (Σx, Σx², min, max, each
        of the sample's shape), for data read batch by batch (images.ImageSet.moments):
        m = Σx / n, σ² = Σx² / n − m² (the population variance, as `fit`), per=channel pooling
        the pixels of each channel."""
        if n:
            self.low, self.high = float(low.min()), float(high.max())
        if self.kind is None or not n:
            return self
        if self.per == "channel" and sums.dim() > 1:
            pixels = sums[0].numel()
            dims = tuple(range(1, sums.dim()))
            n, sums, squares = n * pixels, sums.sum(dims, keepdim=True), squares.sum(dims, keepdim=True)
            low, high = low.amin(dims, keepdim=True), high.amax(dims, keepdim=True)
        if self.kind == "zscore":
            shift = sums / n
            scale = (squares / n - shift * shift).clamp_min(0).sqrt()
        else:
            implementation(NORMALIZERS, self.kind, "normalization", self.span)  # an unknown kind is an error at its clause
            shift, scale = low, high - low
        self.shift, self.scale = shift.double(), torch.where(scale == 0, 1.0, scale.double())
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x normalized, elementwise in float64 and back to x's dtype: the splits are normalized
        with this once, and so is every augmented training batch (bit-for-bit the same values
        for the same inputs, on any device with float64)."""
        if self.kind is None:
            return x
        if x.device.type == "mps":  # no float64 there
            return self(x.cpu()).to(x.device)
        # In float64: a float32 shift of a feature far from 0 (1000 ± 0.01) would bias the mean.
        return ((x.double() - self.shift.to(x.device)) / self.scale.to(x.device)).to(x.dtype)

    def to(self, device) -> "Normalizer":
        """This normalizer with its tensors on `device` (so that batches there need no copies)."""
        other = Normalizer(self.kind, self.per, self.span)
        other.low, other.high = self.low, self.high
        if self.kind is not None and torch.device(device).type != "mps":
            other.shift, other.scale = self.shift.to(device), self.scale.to(device)
        else:
            other.shift, other.scale = self.shift, self.scale
        return other

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """The raw values of normalized inputs (up to rounding)."""
        if self.kind is None:
            return x
        return (x.double() * self.scale.to(x.device) + self.shift.to(x.device)).to(x.dtype)

    def state_dict(self) -> dict:
        plain = lambda t: None if t is None else t.tolist()  # noqa: E731
        state = {"kind": self.kind, "per": self.per, "shift": plain(self.shift), "scale": plain(self.scale)}
        if self.low is not None:  # fitted: the raw training range (what `clamp` is decided from)
            state["range"] = [self.low, self.high]
        return state

    def load_state_dict(self, state: dict) -> None:
        tensor = lambda v: None if v is None else torch.tensor(v, dtype=torch.float64)  # noqa: E731
        self.kind, self.per = state["kind"], state["per"]
        self.shift, self.scale = tensor(state["shift"]), tensor(state["scale"])
        self.low, self.high = state.get("range", (None, None))  # checkpoints written before the range was kept have none


# ---- the pipeline -------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    """Float32 inputs [N, *input_shape] (normalized) and labels per split; `targets` maps a
    split to {target name: tensor}, the label under "label" (class indices int64; the numbers of
    a regression target float32, standardized: `scales` holds each one's (mean, std) on the
    training split, value = stored · std + mean); `num_classes` gives max + 1 of each class
    target over all splits, `classes` the label's class names; `raw` maps a split to its
    inputs before normalization (the same tensors without `normalize`). A folder's images are
    `images.ImageView`s, indexed like tensors."""

    x_train: Any
    y_train: torch.Tensor
    x_val: Any
    y_val: torch.Tensor
    x_test: Any
    y_test: torch.Tensor
    targets: dict[str, dict[str, torch.Tensor]]
    num_classes: dict[str, int]
    normalizer: Normalizer
    raw: dict[str, Any] = field(default_factory=dict)
    classes: list[str] | None = None
    scales: dict[str, tuple[float, float]] = field(default_factory=dict)
    names: list[str] | None = None  # the input columns' names (a .csv)

    def split(self, name: str) -> tuple[Any, dict[str, torch.Tensor]]:
        """(x, targets) of "train", "val" or "test"."""
        return getattr(self, f"x_{name}"), self.targets[name]

    def raw_inputs(self, name: str) -> Any:
        """The inputs of a split on the data's own scale, before normalization (what
        augmentation acts on); undone from the normalized ones when `raw` does not hold them."""
        if name in self.raw:
            return self.raw[name]
        return self.normalizer.inverse(getattr(self, f"x_{name}"))

    def class_names(self, target: str) -> list[str]:
        """The names of a class target's classes, by index ("0", "1", ... where the data has none)."""
        count = self.num_classes.get(target, 0)
        names = list(self.classes or []) if target == "label" else []
        return names + [str(k) for k in range(len(names), count)]


def _split_rows(plan: DataPlan, y: np.ndarray, x_test, y_test, split: np.ndarray | None, seeds, names, stratify: bool):
    """(train rows, their labels, val rows, test rows or None: the source's test split), by the
    data's own split (a split column, split folders), the source's test split, or the fractions."""
    test_seed, fraction_seed, val_seed = seeds
    rows = np.arange(len(y))
    test_rows = None
    if split is not None and (split == "test").any() and plan.test is None:  # the data's own test rows
        test_rows, rows = rows[split == "test"], rows[split != "test"]
    elif x_test is None or plan.test is not None:
        rows, _, test_rows, _ = _stratified(rows, y, 0.2 if plan.test is None else plan.test, test_seed, "test split", plan.span, names, stratify)
    if plan.train_fraction < 1:
        _, _, rows, _ = _stratified(rows, y[rows], plan.train_fraction, fraction_seed, "train_fraction", plan.span, names, stratify)
    if split is not None and (split == "val").any():
        val_rows, rows = rows[split[rows] == "val"], rows[split[rows] != "val"]
    elif plan.validation > 0:
        rows, _, val_rows, _ = _stratified(rows, y[rows], plan.validation, val_seed, "validation split", plan.span, names, stratify)
    else:
        val_rows = rows[:0]
    return rows, val_rows, test_rows


def load_splits(plan: DataPlan, seed: int, input_shape: tuple[int, ...], regression: Collection[str] | None = None, stream=None) -> Splits:
    """The data of a plan, split, with derived targets, shaped for the model and normalized.

    `regression` names the targets that are real-valued (default: the plan's): they are kept
    as float32, standardized on the training split, and need not be class indices.
    """
    regression = tuple(plan.regression if regression is None else regression)
    # Independent streams per step, so that e.g. changing the validation fraction leaves the
    # test split (and the generated data) as they were.
    source_seed, test_seed, fraction_seed, val_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(4))
    raw = load_source(plan.source, source_seed, plan.base_dir, plan.columns, regression="label" in regression, stream=stream)
    if plan.classes is not None:
        raw = _keep_classes(tuple(plan.classes), raw, plan.span)
    x, y, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    columns = raw.columns or {}
    have, need = math.prod(x.shape[1:]), math.prod(input_shape)
    if have != need:
        what = f"'{plan.source.args.get('path')}'" if plan.source.kind in ("file", "folder") else plan.source.kind
        shape = f" (shape {list(x.shape[1:])})" if len(x.shape) > 2 else ""
        fail(f"the model's input {list(input_shape)} has {need} values, but {what} samples have {have}{shape}", plan.span)
    if x_test is not None and (plan.test is not None):  # an explicit test fraction re-splits all of the source's data
        x, y, x_test, y_test = np.concatenate([x, x_test]), np.concatenate([y, y_test]), None, None

    # The splits move row numbers, so that the inputs and any data columns follow them alike.
    stratify = "label" not in regression
    rows, val_rows, test_rows = _split_rows(plan, y, x_test, y_test, raw.split, (test_seed, fraction_seed, val_seed), raw.classes, stratify)
    take = (lambda a, r: a.subset(r)) if hasattr(x, "subset") else (lambda a, r: a[r])  # noqa: E731
    if test_rows is not None:
        x_test, y_test = take(x, test_rows), y[test_rows]
    y_train, y_val = y[rows], y[val_rows]
    x, x_val = take(x, rows), take(x, val_rows)

    # Targets are computed on all splits at once, so that a bad value anywhere is found.
    derived = derive_targets(plan.targets, np.concatenate([y_train, y_val, y_test]), regression)
    bounds = np.cumsum([0, len(y_train), len(y_val), len(y_test)])
    scales = {}
    for name in regression:  # standardized with the training split's mean and standard deviation
        if name in derived:
            train = derived[name][: bounds[1]].astype(np.float64)
            mean, std = (float(train.mean()), float(train.std())) if len(train) else (0.0, 1.0)
            std = std if std > 0 else 1.0
            scales[name] = (mean, std)
            derived[name] = ((derived[name].astype(np.float64) - mean) / std).astype(np.float32)
    targets = {
        s: {name: torch.from_numpy(np.ascontiguousarray(v[bounds[i] : bounds[i + 1]])) for name, v in derived.items()}
        for i, s in enumerate(SPLITS)
    }
    num_classes = {name: int(v.max()) + 1 for name, v in derived.items() if name not in regression and len(v)}
    if raw.classes and "label" in num_classes:
        num_classes["label"] = max(num_classes["label"], len(raw.classes))
    for name, column in columns.items():  # data columns (e.g. a curriculum's difficulty), per split
        for split, split_rows in (("train", rows), ("val", val_rows), ("test", test_rows)):
            if split_rows is not None:
                targets[split][name] = torch.from_numpy(np.ascontiguousarray(column[split_rows]))

    norm = plan.normalize
    normalizer = Normalizer(norm.kind, norm.args.get("per", "feature"), norm.span) if norm else Normalizer()
    if hasattr(x, "subset"):  # a folder's images: fitted batch by batch, kept as bytes or streamed
        from .images import ImageView

        normalizer.fit_moments(*x.moments(normalizer.per))
        views = {s: ImageView(images) for s, images in zip(SPLITS, (x, x_val, x_test))}
        x_train, x_val, x_test = (ImageView(images, normalizer if norm else None) for images in (x, x_val, x_test))
        raw_inputs = views
    else:
        shaped = (torch.from_numpy(np.ascontiguousarray(a, np.float32)).reshape(len(a), *input_shape) for a in (x, x_val, x_test))
        x_train, x_val, x_test = shaped
        normalizer.fit(x_train)
        raw_inputs = dict(zip(SPLITS, (x_train, x_val, x_test)))
        x_train, x_val, x_test = (normalizer(t).contiguous() for t in (x_train, x_val, x_test))
    labels = {s: targets[s]["label"] for s in SPLITS}
    return Splits(x_train, labels["train"], x_val, labels["val"], x_test, labels["test"], targets, num_classes, normalizer, raw_inputs, raw.classes, scales, raw.names)
