"""Data normalization, through the compiled DataPlan and `load_splits`.

- zscore fitted on the training split gives it mean 0 and variance 1 (the lecture's
  1/n Σ(x − m)²) per feature, or per channel with `per=channel`;
- minmax maps the training split into [0, 1], each feature's min to 0 and max to 1;
- no statistic comes from the validation or test data: the normalizer's shift and scale are
  those of the training rows, validation and test are transformed with them, and changing
  the validation and test rows changes neither the normalizer nor the training split.

The rows that land in each split are found with a probe: the same labels and seed with
inputs that hold each row's index (the stratified splits depend on the labels only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import trick
from trick.runtime.data import load_splits

from .support import seeds

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("normalization")


def _plan(folder: Path, x: np.ndarray, y: np.ndarray, normalize: str | None):
    """Write the arrays to a .npz and compile a spec that reads them: its DataPlan and input shape."""
    np.savez(folder / "data.npz", x=x, y=y)
    shape = ", ".join(map(str, x.shape[1:]))
    clauses = ["validation 0.25", "test 0.2"] + ([f"normalize {normalize}"] if normalize else [])
    text = (
        "spec normalization\n"
        f'data {{\n    source file "{folder / "data.npz"}"\n' + "".join(f"    {c}\n" for c in clauses) + "}\n"
        f"model {{\n    input [{shape}]\n    flatten\n    dense 2\n}}\n"
        "train { loss mse }\n"
    )
    program = trick.compile(text)
    return program.plan.data, program.graph.input


def _rows(folder, y, shape, seed):
    """The source rows of each split, found by loading inputs that hold the row index."""
    index = np.broadcast_to(np.arange(len(y), dtype=np.float32).reshape(-1, *[1] * len(shape)), (len(y), *shape))
    plan, input_shape = _plan(folder, np.ascontiguousarray(index), y, None)
    splits = load_splits(plan, seed, input_shape)
    rows = {s: splits.split(s)[0].reshape(len(splits.split(s)[0]), -1)[:, 0].long().numpy() for s in SPLITS}
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(len(y)))
    return rows


@st.composite
def datasets(draw):
    """Raw inputs [N, F] or [N, C, L] (some features constant, some on odd scales) and labels."""
    n = draw(st.integers(24, 60))
    shape = draw(st.sampled_from([(1,), (3,), (5,), (2, 4), (3, 3)]))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    scale = draw(st.floats(1e-2, 1e3))
    shift = draw(st.floats(-1e3, 1e3))
    x = (rng.standard_normal((n, *shape)) * scale * rng.uniform(0.1, 10, shape) + shift).astype(np.float32)
    if draw(st.booleans()):  # a constant feature: its scale becomes 1, its values 0
        x.reshape(n, -1)[:, draw(st.integers(0, int(np.prod(shape)) - 1))] = np.float32(shift)
    y = np.arange(n) % 2
    return x, y, draw(seeds)


def _fit_dims(x: torch.Tensor, per: str):
    return (0,) if per == "feature" or x.dim() == 2 else (0, *range(2, x.dim()))


# A feature far from 0 relative to its spread (1000 ± 0.01): float32 inputs hold it fine.
FAR_FROM_ZERO = (
    (1000 + 0.01 * np.random.default_rng(0).standard_normal((40, 1))).astype(np.float32),
    np.arange(40) % 2,
    0,
)


# Channels whose positions differ in mean and spread: per channel is not per feature here.
_rng = np.random.default_rng(1)
CHANNELS = (
    (np.arange(4) * 10 + np.arange(2)[:, None] + _rng.standard_normal((30, 2, 4)) * (1 + np.arange(4))).astype(np.float32),
    np.arange(30) % 2,
    0,
)


@given(data=datasets(), per=st.sampled_from(["feature", "channel"]))
@example(data=CHANNELS, per="channel")
@example(data=FAR_FROM_ZERO, per="feature")
def test_zscore_fitted_on_train_gives_mean_0_variance_1(folder, data, per):
    x, y, seed = data
    rows = _rows(folder, y, x.shape[1:], seed)
    plan, input_shape = _plan(folder, x, y, f"zscore per={per}")
    splits = load_splits(plan, seed, input_shape)
    train = splits.x_train.double()
    dims = _fit_dims(train, per)
    raw = torch.from_numpy(x[rows["train"]]).double()
    constant = raw.amax(dims) == raw.amin(dims)
    mean, var = train.mean(dims), train.var(dims, correction=0)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.where(constant, 0.0, 1.0).double(), atol=1e-5, rtol=0)
    _assert_fitted_on_train_only(folder, x, y, seed, rows, splits, f"zscore per={per}", per)


@given(data=datasets(), per=st.sampled_from(["feature", "channel"]))
@example(data=CHANNELS, per="channel")
def test_minmax_maps_train_into_0_1(folder, data, per):
    x, y, seed = data
    rows = _rows(folder, y, x.shape[1:], seed)
    plan, input_shape = _plan(folder, x, y, f"minmax per={per}")
    splits = load_splits(plan, seed, input_shape)
    train = splits.x_train
    dims = _fit_dims(train, per)
    raw = torch.from_numpy(x[rows["train"]])
    constant = raw.amax(dims) == raw.amin(dims)
    assert train.min() >= 0 and train.max() <= 1
    assert torch.equal(train.amin(dims), torch.zeros_like(train.amin(dims)))
    assert torch.equal(train.amax(dims), torch.where(constant, 0.0, 1.0))
    _assert_fitted_on_train_only(folder, x, y, seed, rows, splits, f"minmax per={per}", per)


def _assert_fitted_on_train_only(folder, x, y, seed, rows, splits, normalize, per):
    """The normalizer holds the training rows' statistics; validation and test are only
    transformed; other validation and test values change nothing fitted."""
    raw = {s: torch.from_numpy(x[rows[s]]).double() for s in SPLITS}
    dims = _fit_dims(raw["train"], per)
    norm = splits.normalizer
    if normalize.startswith("zscore"):
        shift, scale = raw["train"].mean(dims, keepdim=True)[0], raw["train"].var(dims, correction=0, keepdim=True)[0].sqrt()
    else:
        shift = raw["train"].amin(dims, keepdim=True)[0]
        scale = raw["train"].amax(dims, keepdim=True)[0] - shift
    scale = torch.where(scale == 0, 1.0, scale)
    torch.testing.assert_close(norm.shift.double(), shift, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(norm.scale.double(), scale, atol=1e-9, rtol=1e-7)
    for s in SPLITS:
        expected = ((raw[s] - shift) / scale).float()
        torch.testing.assert_close(splits.split(s)[0], expected, atol=1e-5, rtol=1e-5)

    # Wildly different validation and test inputs: the same training split, the same normalizer.
    changed = x.copy()
    held_out = np.concatenate([rows["val"], rows["test"]])
    changed[held_out] = changed[held_out] * np.float32(-1000) + np.float32(12345)
    plan, input_shape = _plan(folder, changed, y, normalize)
    again = load_splits(plan, seed, input_shape)
    assert torch.equal(again.x_train, splits.x_train)
    assert torch.equal(again.normalizer.shift, norm.shift) and torch.equal(again.normalizer.scale, norm.scale)
