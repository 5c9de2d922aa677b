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
    found: dict[str, np.ndarray] = {"label": labels}
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
    """Float32 inputs [N, *input_shape] (normalized) and int64 labels per split; `targets`
    maps a split to {target name: tensor}, the label under "label"; `num_classes` gives
    max + 1 of each class target over all splits; `raw` maps a split to its inputs before
    normalization (the same tensors without `normalize`)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    targets: dict[str, dict[str, torch.Tensor]]
    num_classes: dict[str, int]
    normalizer: Normalizer
    raw: dict[str, torch.Tensor] = field(default_factory=dict)

    def split(self, name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(x, targets) of "train", "val" or "test"."""
        return getattr(self, f"x_{name}"), self.targets[name]

    def raw_inputs(self, name: str) -> torch.Tensor:
        """The inputs of a split on the data's own scale, before normalization (what
        augmentation acts on); undone from the normalized ones when `raw` does not hold them."""
        if name in self.raw:
            return self.raw[name]
        return self.normalizer.inverse(getattr(self, f"x_{name}"))


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
    normalizer = Normalizer(norm.kind, norm.args.get("per", "feature"), norm.span) if norm else Normalizer()
    normalizer.fit(x_train)
    raw_inputs = dict(zip(SPLITS, (x_train, x_val, x_test)))
    x_train, x_val, x_test = (normalizer(t).contiguous() for t in (x_train, x_val, x_test))
    labels = {s: targets[s]["label"] for s in SPLITS}
    return Splits(x_train, labels["train"], x_val, labels["val"], x_test, labels["test"], targets, num_classes, normalizer, raw_inputs)
