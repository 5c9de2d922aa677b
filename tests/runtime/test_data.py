"""Data sources, splits, derived targets and normalization (trick/runtime/sources.py, data.py)."""

import random

import numpy as np
import pytest
import torch

from trick.compiler import ir
from trick.compiler.ir import DataPlan, Step, Target
from trick.dsl.diagnostics import Span, TrickCheckError
from trick.runtime import sources
from trick.runtime.data import Normalizer, load_splits

SOURCE_SPAN = Span("t.trick", 2, 5, 2, 20)
PLAN_SPAN = Span("t.trick", 1, 1, 6, 2)
TARGET_SPAN = Span("t.trick", 4, 5, 4, 30)


def plan(kind="digits", args=None, validation=0.1, test=None, normalize=None, per="feature", classes=None,
         train_fraction=1.0, targets=(), base_dir="."):  # fmt: skip
    norm = Step(normalize, {"per": per}, PLAN_SPAN) if normalize else None
    targets = tuple(Target(name, expr, TARGET_SPAN) for name, expr in targets)
    source = Step(kind, args or {}, SOURCE_SPAN)
    return DataPlan(source, validation, test, norm, classes, train_fraction, targets, str(base_dir), PLAN_SPAN)


def error(call) -> tuple[str, Span]:
    with pytest.raises(TrickCheckError) as info:
        call()
    return info.value.diagnostic.message, info.value.diagnostic.span


# ---- sources ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, args, shape, n_train, n_test, classes",
    [
        ("mnist1d", {}, (40,), 4000, 1000, 10),
        ("digits", {}, (64,), 1797, None, 10),
        ("playground", {"dataset": "spiral", "n": 301, "noise": 0.1}, (2,), 301, None, 2),
        ("synthetic_images", {"classes": 5, "size": 12, "n": 100}, (3, 12, 12), 100, None, 5),
    ],
)
def test_each_source_gives_its_shapes_dtypes_and_classes(kind, args, shape, n_train, n_test, classes):
    raw = sources.SOURCES[kind](args, 0, ".")
    assert raw.x_train.shape == (n_train, *shape) and raw.x_train.dtype == np.float32
    assert raw.y_train.shape == (n_train,) and raw.y_train.dtype == np.int64
    assert set(raw.y_train.tolist()) == set(range(classes))
    if n_test is None:
        assert raw.x_test is None and raw.y_test is None
    else:
        assert raw.x_test.shape == (n_test, *shape) and raw.y_test.dtype == np.int64


@pytest.mark.parametrize("dataset", ["spiral", "circle", "xor", "gaussian"])
def test_playground_datasets_are_balanced_within_the_unit_radius_and_seeded(dataset):
    args = {"dataset": dataset, "n": 400, "noise": 0.0}
    raw = sources.playground(args, 3, ".")
    assert np.bincount(raw.y_train).tolist() == [200, 200]
    assert np.abs(raw.x_train).max() <= 1.07  # radius 1, plus the xor padding
    assert np.array_equal(raw.x_train, sources.playground(args, 3, ".").x_train)
    assert not np.array_equal(raw.x_train, sources.playground(args, 4, ".").x_train) or dataset == "spiral"
    noisy = sources.playground({**args, "noise": 0.1}, 3, ".")
    assert 0.05 < np.abs(noisy.x_train - raw.x_train).mean() < 0.15 or dataset != "spiral"


def test_playground_labels_follow_the_definitions():
    xor = sources.playground({"dataset": "xor", "n": 200, "noise": 0.0}, 0, ".")
    assert np.array_equal(xor.y_train, (xor.x_train[:, 0] * xor.x_train[:, 1] > 0).astype(np.int64))
    circle = sources.playground({"dataset": "circle", "n": 200, "noise": 0.0}, 0, ".")
    assert np.array_equal(circle.y_train, (np.linalg.norm(circle.x_train, axis=1) < 0.6).astype(np.int64))
    gaussian = sources.playground({"dataset": "gaussian", "n": 200, "noise": 0.0}, 0, ".")
    assert np.allclose(gaussian.x_train[gaussian.y_train == 1].mean(0), [0.4, 0.4], atol=0.05)


def test_synthetic_images_are_in_the_unit_range_balanced_and_show_a_shape():
    raw = sources.synthetic_images({"classes": 8, "size": 16, "n": 400}, 0, ".")
    assert raw.x_train.min() >= 0 and raw.x_train.max() <= 1
    assert np.bincount(raw.y_train).tolist() == [50] * 8
    # Each image has two colors (shape and background) plus small noise: a wide spread.
    spread = raw.x_train.reshape(400, 3, -1).std(2).max(1)
    assert (spread > 0.05).all()
    assert np.array_equal(raw.x_train, sources.synthetic_images({"classes": 8, "size": 16, "n": 400}, 0, ".").x_train)


def test_mnist1d_leaves_the_global_random_states_as_they_were():
    sources._mnist1d_arrays.cache_clear()  # force a generation, which reseeds the globals inside
    random.seed(123)
    np.random.seed(123)
    py_state, np_state = random.getstate(), np.random.get_state()
    raw = sources.mnist1d({}, 0, ".")
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    raw.x_train[:] = 0  # callers get copies: the cache is untouched
    assert sources.mnist1d({}, 0, ".").x_train.any()


# ---- splits ---------------------------------------------------------------------------------------


def test_splits_shapes_dtypes_and_the_sources_own_test_split():
    s = load_splits(plan("mnist1d", validation=0.1), 0, (1, 40))
    assert s.x_train.shape == (3600, 1, 40) and s.x_val.shape == (400, 1, 40) and s.x_test.shape == (1000, 1, 40)
    for x, y in [(s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)]:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.is_contiguous() and len(x) == len(y)
    assert s.num_classes == {"label": 10}
    assert s.targets["train"]["label"] is s.y_train and s.split("val")[0] is s.x_val


def test_a_default_test_fraction_of_a_fifth_when_the_source_has_none():
    s = load_splits(plan("digits", validation=0.0), 0, (64,))
    assert len(s.x_test) == 360 and len(s.x_train) == 1797 - 360
    assert s.x_val.shape == (0, 64) and s.y_val.shape == (0,)


def test_the_same_seed_gives_the_same_splits_and_another_seed_others():
    a, b, c = (load_splits(plan("digits", test=0.2), seed, (64,)) for seed in (0, 0, 1))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_test, c.x_test) and not torch.equal(a.x_val, c.x_val)


def test_validation_is_stratified():
    s = load_splits(plan("digits", validation=0.2, test=0.2), 0, (64,))
    train = np.bincount(s.y_train.numpy()) / len(s.y_train)
    val = np.bincount(s.y_val.numpy()) / len(s.y_val)
    test = np.bincount(s.y_test.numpy()) / len(s.y_test)
    assert np.abs(val - train).max() < 0.01 and np.abs(test - train).max() < 0.01


def test_classes_keeps_and_relabels_in_the_order_given():
    raw = sources.digits({}, 0, ".")
    s = load_splits(plan("digits", classes=(7, 2, 9), validation=0.0, test=0.5), 0, (64,))
    assert s.num_classes["label"] == 3
    x = torch.cat([s.x_train, s.x_test]).numpy()
    y = torch.cat([s.y_train, s.y_test]).numpy()
    assert len(x) == sum((raw.y_train == c).sum() for c in (7, 2, 9))
    for new, old in enumerate((7, 2, 9)):  # each relabelled sample is a sample of its old class
        originals = {row.tobytes() for row in raw.x_train[raw.y_train == old]}
        assert all(row.tobytes() in originals for row in x[y == new])


def test_a_class_missing_from_the_data_is_an_error():
    message, span = error(lambda: load_splits(plan("playground", {"dataset": "xor", "n": 100}, classes=(0, 3)), 0, (2,)))
    assert message == "classes lists 3, but the data has no class 3 (its classes: 0, 1)"
    assert span == PLAN_SPAN


def test_a_split_too_small_for_stratification_says_so():
    message, span = error(lambda: load_splits(plan("digits", train_fraction=0.005), 0, (64,)))
    assert message == (
        "cannot take a stratified train_fraction of 0.005 from 1437 samples: it splits them 1429 / 8, "
        "and each side needs a sample of each of the 10 classes"
    )
    assert span == PLAN_SPAN


def test_train_fraction_keeps_a_stratified_fraction_before_validation():
    full = load_splits(plan("digits", validation=0.0, test=0.2), 0, (64,))
    part = load_splits(plan("digits", validation=0.0, test=0.2, train_fraction=0.25), 0, (64,))
    assert abs(len(part.x_train) - len(full.x_train) * 0.25) <= 1
    assert torch.equal(part.x_test, full.x_test)  # the test split does not depend on it
    ratio = np.bincount(part.y_train.numpy()) / np.bincount(full.y_train.numpy())
    assert np.abs(ratio - 0.25).max() < 0.03
    with_val = load_splits(plan("digits", validation=0.2, test=0.2, train_fraction=0.25), 0, (64,))
    assert len(with_val.x_train) + len(with_val.x_val) == len(part.x_train)


def test_the_input_shape_must_have_as_many_values_as_a_sample():
    message, span = error(lambda: load_splits(plan("mnist1d"), 0, (1, 50)))
    assert message == "the model's input [1, 50] has 50 values, but mnist1d samples have 40"
    assert span == PLAN_SPAN
    message, _ = error(lambda: load_splits(plan("synthetic_images", {"classes": 2, "size": 8, "n": 20}), 0, (3, 16, 16)))
    assert message == "the model's input [3, 16, 16] has 768 values, but synthetic_images samples have 192 (shape [3, 8, 8])"


# ---- derived targets ----------------------------------------------------------------------------------


def test_derived_targets_parity_large_and_precedence():
    targets = [
        ("parity", ["%", "label", 2]),
        ("large", [">=", "label", 5]),
        ("mixed", ["+", "parity", ["*", 2, "large"]]),  # parity + 2 * large, computed in order
        ("neg", ["-", 9, ["neg", ["neg", "label"]]]),  # 9 - --label
    ]
    s = load_splits(plan("digits", targets=targets), 0, (64,))
    for split in ("train", "val", "test"):
        t = s.targets[split]
        label = t["label"]
        assert torch.equal(t["parity"], label % 2) and t["parity"].dtype == torch.int64
        assert torch.equal(t["large"], (label >= 5).long())
        assert torch.equal(t["mixed"], label % 2 + 2 * (label >= 5).long())
        assert torch.equal(t["neg"], 9 - label)
    assert s.num_classes == {"label": 10, "parity": 2, "large": 2, "mixed": 4, "neg": 10}


def test_a_non_integer_target_is_an_error_at_the_target():
    message, span = error(lambda: load_splits(plan("digits", targets=[("half", ["/", "label", 3])]), 0, (64,)))
    assert message.startswith("target half = label / 3 gives non-integer values such as ")
    assert message.split("such as ")[1].split(";")[0] in {"0.333", "0.667", "1.33", "1.67", "2.33", "2.67"}
    assert message.endswith("; a class target needs integers >= 0")
    assert span == TARGET_SPAN


def test_negative_and_divide_by_zero_targets_are_errors():
    message, _ = error(lambda: load_splits(plan("digits", targets=[("d", ["-", "label", 5])]), 0, (64,)))
    assert message.startswith("target d = label - 5 gives negative values such as -")
    message, _ = error(lambda: load_splits(plan("digits", targets=[("z", ["%", "label", ["-", "label", "label"]])]), 0, (64,)))
    assert message == "target z = label % (label - label) divides by zero for some samples"


def test_a_division_by_zero_is_an_error_even_where_a_comparison_would_hide_it():
    for expr in ([">", ["/", "label", ["-", "label", "label"]], 0], ["%", ["<", "label", 3], [">", "label", 100]]):
        message, span = error(lambda: load_splits(plan("digits", targets=[("z", expr)]), 0, (64,)))
        assert message == f"target z = {ir.expr_text(expr)} divides by zero for some samples" and span == TARGET_SPAN


def test_the_ir_evaluator_gives_the_same_values_on_numbers_and_on_arrays():
    expr = ["-", ["+", ["%", "label", 3], ["*", 2, [">=", "label", 5]]], ["/", ["neg", "label"], 4]]
    labels = np.arange(10.0)
    assert ir.evaluate_expr(expr, {"label": labels}).tolist() == [ir.evaluate_expr(expr, {"label": v}) for v in range(10)]
    less = ir.evaluate_expr(["<", "label", 3], {"label": labels})
    assert less.dtype.kind == "i" and less.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert [type(v) for v in (ir.evaluate_expr(["<", 1, 2], {}), ir.evaluate_expr(["==", 1.5, 2], {}))] == [int, int]
    assert ir.evaluate_expr(["!=", 1.5, 2], {}) == 1 and ir.evaluate_expr(["%", -7, 3], {}) == 2
    with pytest.raises(ZeroDivisionError):
        ir.evaluate_expr(["%", "label", ["-", "label", "label"]], {"label": 4})
    with pytest.raises(FloatingPointError), np.errstate(divide="raise", invalid="raise"):
        ir.evaluate_expr(["/", "label", 0], {"label": labels})
    with pytest.raises(KeyError, match="parity"):
        ir.evaluate_expr(["+", "label", "parity"], {"label": 1})


def test_regression_targets_stay_real_valued():
    s = load_splits(plan("digits", targets=[("half", ["/", "label", 2])]), 0, (64,), regression={"half"})
    assert s.targets["train"]["half"].dtype == torch.float32
    half = s.y_train.double() / 2
    mean, std = s.scales["half"]  # standardized with the training split's mean and (population) std
    assert mean == pytest.approx(float(half.mean())) and std == pytest.approx(float(half.std(correction=0)))
    assert torch.allclose(s.targets["train"]["half"].double() * std + mean, half, atol=1e-5)
    assert abs(float(s.targets["train"]["half"].mean())) < 1e-5
    assert "half" not in s.num_classes


def test_expression_text_has_only_the_parentheses_it_needs():
    assert ir.expr_text(["-", ["-", "label", 1], 2]) == "label - 1 - 2"
    assert ir.expr_text(["-", "label", ["-", "label", 1]]) == "label - (label - 1)"
    assert ir.expr_text(["*", ["+", "label", 1], ["neg", ["%", "label", 2]]]) == "(label + 1) * -(label % 2)"
    assert ir.expr_text(["==", ["<", "label", 3], 0.5]) == "(label < 3) == 0.5"


# ---- normalization ------------------------------------------------------------------------------------


def test_zscore_per_feature_gives_train_mean_0_and_population_variance_1():
    s = load_splits(plan("mnist1d", normalize="zscore"), 0, (1, 40))
    x = s.x_train.double()
    assert torch.allclose(x.mean(0), torch.zeros(1, 40, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.var(0, correction=0), torch.ones(1, 40, dtype=torch.float64), atol=1e-4)
    assert s.normalizer.shift.shape == (1, 40)


def test_zscore_per_channel_fits_one_statistic_per_channel():
    images = plan("synthetic_images", {"classes": 4, "size": 8, "n": 200}, normalize="zscore", per="channel")
    s = load_splits(images, 0, (3, 8, 8))
    x = s.x_train.double().transpose(0, 1).reshape(3, -1)
    assert torch.allclose(x.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.var(1, correction=0), torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert s.normalizer.shift.shape == (3, 1, 1)


def test_minmax_maps_train_into_the_unit_interval_per_feature_and_per_channel():
    s = load_splits(plan("mnist1d", normalize="minmax"), 0, (1, 40))
    assert s.x_train.min() == 0 and s.x_train.max() == 1
    assert (s.x_train.amin(0) == 0).all() and (s.x_train.amax(0) == 1).all()
    s = load_splits(plan("synthetic_images", {"classes": 3, "size": 8, "n": 90}, normalize="minmax", per="channel"), 0, (3, 8, 8))
    assert (s.x_train.amin((0, 2, 3)) == 0).all() and (s.x_train.amax((0, 2, 3)) == 1).all()


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path.parent


@pytest.mark.parametrize("kind", ["zscore", "minmax"])
def test_statistics_come_from_train_only_and_a_constant_feature_is_not_divided_by_zero(monkeypatch, kind):
    # A source whose own test split lies far away from train; feature 1 is constant.
    x = np.stack([np.arange(100.0), np.full(100, 3.0)], 1).astype(np.float32)
    x_test = np.stack([1000 + 10 * np.arange(50.0), np.full(50, 3.0)], 1).astype(np.float32)
    y, y_test = np.arange(100) % 2, np.arange(50) % 2
    monkeypatch.setitem(sources.SOURCES, "far", lambda args, seed, base_dir: sources.Raw(x, y, x_test, y_test))
    s = load_splits(plan("far", validation=0.5, normalize=kind), 0, (2,))
    norm = s.normalizer

    def stats(v):
        v = v.astype(np.float64)
        return (v.mean(), v.std(ddof=0)) if kind == "zscore" else (v.min(), v.max() - v.min())

    def raw(t):  # undo the normalization: the original values, whatever statistics were used
        return (t.double() * norm.scale + norm.shift)[:, 0].numpy()

    train, val = raw(s.x_train), raw(s.x_val)
    assert np.allclose(np.sort(np.concatenate([train, val])), x[:, 0], atol=1e-4)
    assert np.allclose([norm.shift[0].item(), norm.scale[0].item()], stats(train), rtol=1e-6)
    assert not np.allclose(stats(val), stats(train), rtol=1e-3)  # halves of 0..99 differ
    assert s.x_test[:, 0].min() > 5  # far outside the train range, as it should be
    assert norm.scale[1] == 1 and (s.x_train[:, 1] == 0).all() and (s.x_test[:, 1] == 0).all()


def test_the_normalizer_round_trips_through_its_state_dict():
    s = load_splits(plan("synthetic_images", {"classes": 2, "size": 8, "n": 40}, normalize="zscore", per="channel"), 0, (3, 8, 8))
    state = s.normalizer.state_dict()
    assert state["kind"] == "zscore" and state["per"] == "channel" and isinstance(state["shift"], list)
    fresh = Normalizer()
    fresh.load_state_dict(state)
    raw = torch.rand(5, 3, 8, 8)
    assert torch.equal(fresh(raw), s.normalizer(raw)) and fresh.kind == "zscore" and fresh.per == "channel"
    identity = Normalizer()
    assert identity(raw) is raw and identity.state_dict() == {"kind": None, "per": "feature", "shift": None, "scale": None}


# ---- file sources and their errors ---------------------------------------------------------------------


def test_npz_and_csv_files_load_relative_to_the_base_dir(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)).astype(np.float32), np.arange(60) % 3
    write_npz(tmp_path / "d.npz", inputs=x, labels=y)
    npz = plan("file", {"path": "d.npz", "x": "inputs", "y": "labels"}, validation=0.0, test=0.5, base_dir=tmp_path)
    s = load_splits(npz, 0, (3,))
    assert s.num_classes["label"] == 3 and len(s.x_train) == 30
    (tmp_path / "d.csv").write_text("a,label,b,c\n" + "".join(f"{r[0]},{l},{r[1]},{r[2]}\n" for r, l in zip(x, y)))
    raw = sources.file({"path": "d.csv", "y": "label"}, 0, str(tmp_path))
    assert np.allclose(raw.x_train, x, atol=1e-6) and np.array_equal(raw.y_train, y)


def file_error(tmp_path, args) -> str:
    message, span = error(lambda: sources.load_source(Step("file", args, SOURCE_SPAN), 0, str(tmp_path)))
    assert span == SOURCE_SPAN
    return message


def test_a_missing_file_is_an_error(tmp_path):
    assert file_error(tmp_path, {"path": "nope.npz"}) == f"no data file 'nope.npz' (looked for {tmp_path / 'nope.npz'})"


def test_a_corrupt_or_unknown_file_is_an_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    assert file_error(tmp_path, {"path": "bad.npz"}) == (
        "cannot read 'bad.npz': it is not a valid .npz archive (write one with numpy.savez)"
    )
    (tmp_path / "d.txt").write_text("1,2\n")
    assert file_error(tmp_path, {"path": "d.txt"}) == "cannot read 'd.txt': a data file must end in .npz, .npy or .csv"
    (tmp_path / "bad.csv").write_text("a,y\n1,0\nabc,1\n")
    message = file_error(tmp_path, {"path": "bad.csv"})
    assert message == "the cell at bad.csv:3:1 (an input column 'a') holds 'abc', not a number; fill it with a number, or remove the row"


def test_a_missing_array_or_column_names_those_that_exist_with_a_suggestion(tmp_path):
    write_npz(tmp_path / "d.npz", inputs=np.zeros((4, 2)), labels=np.zeros(4, int))
    assert file_error(tmp_path, {"path": "d.npz", "x": "inputs", "y": "lables"}) == (
        "'d.npz' has no array named 'lables' for the labels (its arrays: 'inputs', 'labels'); did you mean 'labels'?"
    )
    (tmp_path / "d.csv").write_text("a,b,klass\n1,2,0\n")
    assert file_error(tmp_path, {"path": "d.csv", "y": "class"}) == (
        "'d.csv' has no column named 'class' for the labels (its header names 'a', 'b', 'klass'); did you mean 'klass'?"
    )


def test_nan_or_infinite_inputs_are_counted_with_the_first_row(tmp_path):
    x = np.ones((10, 3), np.float32)
    x[4, 1], x[7, 0], x[7, 2] = np.nan, np.inf, np.nan
    write_npz(tmp_path / "d.npz", x=x, y=np.zeros(10, int))
    assert file_error(tmp_path, {"path": "d.npz"}) == (
        "the inputs 'x' of 'd.npz' have 3 NaN or infinite values (the first in sample 4); remove or fill them"
    )
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n1,nan,1\n")
    assert file_error(tmp_path, {"path": "d.csv"}) == (
        "the cell at d.csv:3:2 (an input column 'b') is 'nan'; every value must be a finite number"
    )


LABELS, INTEGERS = "the labels 'y' of 'd.npz'", "non-negative integers (class indices)"
REGRESSION_HINT = "; for numbers to predict, use a regression loss (loss mse, l1 or huber on one output)"


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array([0, 1, 2.5, 1]), f"{LABELS} must be {INTEGERS}, but 1 are not, such as 2.5 (sample 2){REGRESSION_HINT}"),
        (np.array([0, -1, 1, -2]), f"{LABELS} must be {INTEGERS}, but 2 are not, such as -1 (sample 1){REGRESSION_HINT}"),
        (np.array(["a", "b", "a", "b"]), f"{LABELS} are not numbers (dtype <U1); they must be class indices 0, 1, 2, ..."),
        (np.zeros((4, 1), int), f"{LABELS} have shape [4, 1]; they must be a 1-D array, one class index per sample"),
        (np.zeros(5, int), f"the inputs 'x' of 'd.npz' have 4 samples, but {LABELS} have 5; they must be equally many"),
    ],
    ids=["fractional", "negative", "strings", "2-d", "length"],
)
def test_bad_labels_are_errors(tmp_path, y, message):
    write_npz(tmp_path / "d.npz", x=np.zeros((4, 2)), y=y)
    assert file_error(tmp_path, {"path": "d.npz"}) == message
