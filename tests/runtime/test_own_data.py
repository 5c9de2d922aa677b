"""The user's own data (issue 17): CSV files as users have them, .npy pairs, uint8 images in
.npz, split columns, regression end to end, and the errors bad data gets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from trick.compiler.pipeline import compile_source
from trick.dsl.diagnostics import TrickCheckError, TrickError
from trick.runtime.data import load_splits
from trick.runtime.trainer import Head, _Sums

IRIS_LIKE = "a,b,species\n" + "".join(f"{i},{i % 3},{['setosa', 'virginica', 'versicolor'][i % 3]}\n" for i in range(30))


def spec(tmp_path, data: str, model: str = "input [2]\n    dense 3", train: str = "epochs 1", name: str = "own") -> str:
    text = f"spec {name}\ndata {{\n    {data}\n}}\nmodel {{\n    {model}\n}}\ntrain {{\n    {train}\n}}\n"
    path = tmp_path / f"{name}.trick"
    path.write_text(text, encoding="utf-8")
    return path


def splits_of(path):
    program = compile_source(path)
    return program, load_splits(program.plan.data, program.plan.seed, program.graph.input)


def check_error(path) -> str:
    with pytest.raises(TrickError) as err:
        program = compile_source(path)
        load_splits(program.plan.data, program.plan.seed, program.graph.input)
    return "\n".join(d.message for d in err.value.diagnostics)


# ---- CSV files as users have them -------------------------------------------------------------------------


def test_bare_column_names_and_class_names(tmp_path):
    (tmp_path / "iris.csv").write_text(IRIS_LIKE)
    program, s = splits_of(spec(tmp_path, 'source file "iris.csv" y=species x=[a, b]\n    test 0.2'))
    assert program.plan.data.source.args["x"] == ["a", "b"] and program.plan.data.source.args["y"] == "species"
    assert s.classes == ["setosa", "versicolor", "virginica"]  # sorted names, numbered 0..k-1
    # every row's label is the index of its name: b = i % 3 names setosa (0), virginica (2), versicolor (1)
    raw = torch.cat([s.raw_inputs("train"), s.raw_inputs("test")])
    labels = torch.cat([s.y_train, s.y_test])
    names = {0: "setosa", 1: "virginica", 2: "versicolor"}
    assert all(s.classes[int(y)] == names[int(x[1])] for x, y in zip(raw, labels))
    assert s.names == ["a", "b"]


def test_quoted_names_and_the_default_inputs(tmp_path):
    (tmp_path / "d.csv").write_text("sepal length,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20)))
    _, s = splits_of(spec(tmp_path, 'source file "d.csv" x=["sepal length", b]'))
    assert s.names == ["sepal length", "b"]
    _, s = splits_of(spec(tmp_path, 'source file "d.csv"'))  # every column but y
    assert s.names == ["sepal length", "b"] and s.classes == ["0", "1"]


def test_a_split_column_decides_the_splits(tmp_path):
    rows = "".join(f"{i},{i % 2},{['train', 'val', 'test', 'train'][i % 4]}\n" for i in range(40))
    (tmp_path / "d.csv").write_text("a,y,part\n" + rows)
    _, s = splits_of(spec(tmp_path, 'source file "d.csv" split=part', model="input [1]\n    dense 2"))
    assert sorted(int(v) % 4 for v in s.raw_inputs("test").flatten()) == [2] * 10
    assert sorted({int(v) % 4 for v in s.raw_inputs("val").flatten()}) == [1]
    assert sorted({int(v) % 4 for v in s.raw_inputs("train").flatten()}) == [0, 3] and len(s.x_train) == 20
    message = check_error(spec(tmp_path, 'source file "d.csv" split=part\n    test 0.3', model="input [1]\n    dense 2"))
    assert "says which rows are test rows; remove 'test'" in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "'d.csv' is empty; a .csv file starts with a header row naming its columns"),
        ("a,b,y\n", "'d.csv' has a header but no rows of data"),
        ("a,b,y\n1,2,0\n3,,1\n", "the cell at d.csv:3:2 (an input column 'b') is empty (a missing value); fill it with a number, or remove the row"),
        ("a,b,y\n1,2,0\n3,x4,1\n", "the cell at d.csv:3:2 (an input column 'b') holds 'x4', not a number; fill it with a number, or remove the row"),
        ("a,b,y\n1,2,0\n3,4,\n", "the label at d.csv:3:3 is empty; every row needs a class"),
        ("a,b,y\n1,2,0\n3,4\n", "the row at d.csv:3 has 2 values, but the header names 3 columns"),
        ("a,b,y\n1,2,0.5\n3,4,1\n", "the label at d.csv:2:3 is '0.5': numeric class labels must be class indices 0, 1, 2, ..."),
    ],
    ids=["empty", "header-only", "missing", "non-numeric", "no-label", "short-row", "fractional-label"],
)
def test_bad_csv_files_are_errors_at_their_cell(tmp_path, text, expected):
    (tmp_path / "d.csv").write_text(text)
    message = check_error(spec(tmp_path, 'source file "d.csv"'))
    assert expected in message
    assert "3,4" not in message.replace("d.csv:3:", "")  # never a row of the data


def test_a_class_with_one_sample_names_it(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i},{'cat' if i else 'dog'}\n" for i in range(10)))
    message = check_error(spec(tmp_path, 'source file "d.csv" y=y', model="input [2]\n    dense 2"))
    assert "class 'dog' has only 1 sample" in message


# ---- arrays --------------------------------------------------------------------------------------------------


def test_npy_pairs_and_uint8_images(tmp_path):
    x = np.arange(2 * 3 * 4 * 4 * 10, dtype=np.int64).reshape(10 * 2, 3, 4, 4) % 256
    np.save(tmp_path / "x.npy", x.astype(np.uint8))
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    _, s = splits_of(spec(tmp_path, 'source file "x.npy" y="y.npy"', model="input [3, 4, 4]\n    flatten\n    dense 2"))
    values = torch.cat([s.raw_inputs("train"), s.raw_inputs("test")])
    assert float(values.max()) == pytest.approx(255 / 255) and float(values.min()) == 0.0  # uint8 / 255
    np.save(tmp_path / "y.npy", np.arange(19) % 2)
    message = check_error(spec(tmp_path, 'source file "x.npy" y="y.npy"', model="input [3, 4, 4]\n    flatten\n    dense 2"))
    assert "have 20 samples, but the labels in 'y.npy' have 19; they must be equally many" in message
    np.savez(tmp_path / "d.npz", x=x.astype(np.uint8), y=np.arange(20) % 2)
    _, s = splits_of(spec(tmp_path, 'source file "d.npz"', model="input [3, 4, 4]\n    flatten\n    dense 2"))
    assert float(torch.cat([s.raw_inputs("train"), s.raw_inputs("test")]).max()) == 1.0


def test_a_npy_input_needs_its_labels_file(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    with pytest.raises(TrickCheckError, match=r"name the labels' .npy file with y=\"labels.npy\""):
        compile_source(spec(tmp_path, 'source file "x.npy"'))


# ---- regression ------------------------------------------------------------------------------------------------

REGRESSION = 'source file "r.csv" y=price x=[size, rooms]'


def _houses(tmp_path, n=60):
    rng = np.random.default_rng(0)
    size, rooms = rng.uniform(30, 200, n), rng.integers(1, 6, n)
    price = 1000 * size + 5000 * rooms + rng.normal(0, 2000, n)
    (tmp_path / "r.csv").write_text("size,rooms,price\n" + "".join(f"{a:.2f},{b},{c:.1f}\n" for a, b, c in zip(size, rooms, price)))
    return price


def test_regression_targets_are_numbers_split_at_random_and_standardized(tmp_path):
    price = _houses(tmp_path)
    program, s = splits_of(spec(tmp_path, REGRESSION + "\n    validation 0.2", model="input [2]\n    dense 1", train="loss mse"))
    assert program.plan.data.regression == ("label",)
    mean, std = s.scales["label"]
    train = s.y_train.double() * std + mean
    assert mean == pytest.approx(float(train.mean())) and abs(float(s.y_train.mean())) < 1e-5
    every = torch.cat([s.y_train, s.y_val, s.y_test]).double() * std + mean
    assert np.allclose(np.sort(every.numpy()), np.sort(price.round(1)), atol=0.05)  # every price once, in its own units
    assert len(s.y_test) == 12 and len(s.y_val) == 10  # 0.2 of 60, then 0.2 of the 48 left (no classes to stratify)


def test_a_text_target_for_a_regressor_is_an_error_at_its_cell(tmp_path):
    (tmp_path / "r.csv").write_text("size,rooms,price\n1,2,3\n4,5,cheap\n")
    message = check_error(spec(tmp_path, REGRESSION, model="input [2]\n    dense 1", train="loss l1"))
    assert "the cell at r.csv:3:3 (the target column 'price') holds 'cheap', not a number" in message


def test_regression_metrics_are_in_the_targets_units():
    """mse, mae and r2 from the standardized outputs, against numpy on the unstandardized values."""
    mean, std = 100.0, 20.0
    head = Head("label", lambda o, t: ((o.squeeze(1) - t) ** 2).mean(), 1.0, False, (mean, std))
    truth = torch.tensor([80.0, 100.0, 130.0, 95.0])
    predicted = torch.tensor([85.0, 90.0, 120.0, 100.0])
    sums = _Sums([head])
    for rows in (slice(0, 3), slice(3, 4)):  # two batches add up
        outputs = {"label": ((predicted[rows] - mean) / std)[:, None]}
        sums.add(outputs, {"label": (truth[rows] - mean) / std}, len(truth[rows]))
    metrics = sums.metrics(multi=False)
    error = (predicted - truth).numpy().astype(np.float64)
    assert metrics["mse"] == pytest.approx(float(np.mean(error**2)))
    assert metrics["mae"] == pytest.approx(float(np.mean(np.abs(error))))
    t = truth.numpy().astype(np.float64)
    assert metrics["r2"] == pytest.approx(1 - np.sum(error**2) / np.sum((t - t.mean()) ** 2))
    assert "accuracy" not in metrics


def test_early_stopping_watches_what_the_model_records(tmp_path):
    _houses(tmp_path)
    model = "input [2]\n    dense 1"
    with pytest.raises(TrickCheckError, match=r"a regressor records no 'val.accuracy'; it records val.loss, val.mse, val.mae, val.r2"):
        compile_source(spec(tmp_path, REGRESSION, model=model, train="loss mse\n    early_stop monitor=val.accuracy"))
    program = compile_source(spec(tmp_path, REGRESSION, model=model, train="loss huber delta=0.5\n    early_stop monitor=val.r2"))
    assert program.plan.early_stop.mode == "max" and program.plan.data.validation == 0.1
    assert compile_source(spec(tmp_path, REGRESSION, model=model, train="loss mse\n    early_stop monitor=val.mae")).plan.early_stop.mode == "min"
    (tmp_path / "c.csv").write_text(IRIS_LIKE)
    with pytest.raises(TrickCheckError, match=r"this model records no 'val.r2'; it records val.loss, val.accuracy"):
        compile_source(spec(tmp_path, 'source file "c.csv" y=species', train="early_stop monitor=val.r2"))


def test_multi_task_heads_mix_classes_and_numbers(tmp_path):
    """A regression head on the price and a class head on a target derived from it."""
    from trick.runtime.run import execute

    price = _houses(tmp_path, 80)
    data = REGRESSION + "\n    target expensive = label > 120000"
    model = "input [2]\n    dense 8 -> relu\n    head label { dense 1 } loss=mse\n    head expensive { dense 2 } loss=cross_entropy weight=0.5"
    program = compile_source(spec(tmp_path, data, model=model, train="epochs 2\n    batch 16"))
    assert program.plan.data.regression == ("label",)
    result = execute(program, tmp_path / "run", stream=None)
    test = result.summary["test"]
    assert {"label.mse", "label.mae", "label.r2", "expensive.accuracy"} <= set(test)
    assert "label.accuracy" not in test and math.isfinite(test["label.r2"])
    described = json.loads((tmp_path / "run" / "data.json").read_text())
    assert described["targets"]["label"]["task"] == "regression" and described["targets"]["expensive"]["classes"] == ["0", "1"]
    assert described["targets"]["label"]["mean"] == pytest.approx(float(np.mean(price)), rel=0.2)
    assert (tmp_path / "run" / "predictions.png").is_file()


def test_a_streamed_folder_run_resumes_exactly(tmp_path):
    """Interrupted after its first checkpoint and resumed, a run that streams its images ends
    with the metrics of the uninterrupted run (the batch order and the augmentation's draws
    come from the generators in last.pt; the decoding is the same whichever epoch it is)."""
    from trick.runtime.run import Interrupted, execute
    from trick.runtime.trainer import Hooks

    from ..conftest import ROOT

    spec = ROOT / "specs" / "shapes_folder.trick"
    settings = ["train.epochs=3", "data.source.cache=stream", "data.source.workers=0", "train.early_stop.patience=50"]
    whole = execute(compile_source(spec, overrides=settings), tmp_path / "whole", stream=None)

    def stop(trainer, epoch):
        if epoch == 2:  # epoch 2's checkpoint is not written yet: last.pt holds epoch 1
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        execute(compile_source(spec, overrides=settings), tmp_path / "cut", stream=None, hooks=Hooks(after_epoch=stop))
    resumed = execute(compile_source(spec, overrides=settings), tmp_path / "cut", stream=None, resume=True)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history) and len(whole.history) == 3
    assert resumed.summary["test"] == whole.summary["test"]
