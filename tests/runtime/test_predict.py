"""Using a trained run: `trick.load(RUN).predict(x)`, `trickc predict` and `trickc evaluate`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trick
from trick.cli import main
from trick.dsl.diagnostics import TrickUsageError
from trick.runtime.data import load_splits

ROOT = Path(__file__).resolve().parents[2]
IRIS_NAMES = ["setosa", "versicolor", "virginica"]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

IRIS = """spec iris

data {
    source file "iris.csv" x=[sepal_length, sepal_width, petal_length, petal_width] y=species
    normalize zscore
}

model {
    input [4]
    dense 16 -> relu
    dense 3
}

train {
    epochs 1
    batch 16
}

report {
    plot curves
}
"""

MULTI = """spec multi

data {
    source digits
    normalize zscore
    train_fraction 0.3
    target parity = label % 2
    target half = label / 2
}

model {
    input [64]
    dense 32 -> relu
    head label { dense 10 } loss=cross_entropy
    head parity { dense 2 } loss=cross_entropy weight=0.5
    head half { dense 1 } loss=mse weight=0.5
}

train {
    epochs 1
    batch 64
}

report {
    plot curves
}
"""

IMAGES = """spec tiny_tta

data {
    source synthetic_images classes=3 size=8 n=150
    normalize zscore per=channel
}

model {
    input [3, 8, 8]
    conv 4 k=3 pad=1 -> relu
    avgpool global
    dense 3
}

train {
    epochs 1
    batch 32
}

evaluate {
    tta hflip
}

report {
    plot curves
}
"""


def trickc(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "trick", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def train(folder: Path, name: str, text: str) -> Path:
    (folder / f"{name}.trick").write_text(text)
    return trick.run(trick.compile(folder / f"{name}.trick"), out=folder / "run").run_dir


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """A run on the iris CSV (string classes, named input columns): (folder, run folder)."""
    from sklearn.datasets import load_iris

    folder = tmp_path_factory.mktemp("iris")
    data = load_iris()
    with open(folder / "iris.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS + ["species"])
        writer.writerows([*x, IRIS_NAMES[y]] for x, y in zip(data.data, data.target))
    return folder, train(folder, "iris", IRIS)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """A run with three heads: a classifier, a derived classifier and a derived regression."""
    return train(tmp_path_factory.mktemp("multi"), "multi", MULTI)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A run on RGB images whose spec has test-time augmentation (hflip)."""
    return train(tmp_path_factory.mktemp("images"), "tiny_tta", IMAGES)


def test_predict_gives_the_class_names_and_the_softmax_of_the_model_on_normalized_inputs(iris):
    run = iris[1]
    loaded = trick.load(run)
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8], [5.9, 3.0, 4.2, 1.5]])
    found = loaded.predict(x)
    with torch.no_grad():
        logits = loaded.model(loaded.normalizer(torch.tensor(x, dtype=torch.float32)))
    expected = torch.softmax(logits.double(), 1).numpy()
    assert np.allclose(found.probabilities, expected, atol=1e-12)
    assert list(found.values) == [IRIS_NAMES[k] for k in expected.argmax(1)]
    assert loaded.classes == IRIS_NAMES and found.classes == IRIS_NAMES
    assert np.allclose(found.probability, expected.max(1))
    # one input, or a batch given flat, is the same input
    assert list(loaded.predict(x[0]).values) == [found.values[0]]
    assert loaded.program.graph.input == (4,)


def test_predict_checks_the_shape_and_the_weights(iris):
    _, run = iris
    loaded = trick.load(run)
    with pytest.raises(TrickUsageError) as err:
        loaded.predict(np.zeros((2, 3)))
    assert err.value.message == "the model takes inputs of shape [4] (a batch [N, 4]), found [2, 3]"
    with pytest.raises(TrickUsageError, match="weights must be best or last, found 'first'"):
        loaded.predict(np.zeros((1, 4)), weights="first")
    # the last weights are another checkpoint; they load too
    assert loaded.predict(np.zeros((1, 4)), weights="last").values.shape == (1,)


def test_a_run_without_weights_or_without_best_is_a_usage_error(iris, tmp_path):
    _, run = iris
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("spec.trick", "plan.json", "data.json"):
        shutil.copy(run / name, bare / name)
    with pytest.raises(TrickUsageError) as err:
        trick.load(bare)
    assert err.value.message == (
        f"{bare} has no weights: neither best.pt nor last.pt is there (a run writes them when its first epoch ends); "
        "train it with `trickc run`, or name another run folder"
    )
    shutil.copy(run / "last.pt", bare / "last.pt")
    with pytest.raises(TrickUsageError) as err:
        trick.load(bare)
    assert err.value.message == f"{bare} has no best.pt; use its last weights (--weights last, or weights='last')"
    assert trick.load(bare, weights="last").predict(np.zeros((1, 4))).values.shape == (1,)
    with pytest.raises(TrickUsageError, match="is not a run folder: it has no spec.trick"):
        trick.load(tmp_path)
    with pytest.raises(TrickUsageError, match="there is no run folder"):
        trick.load(tmp_path / "missing")


def test_trickc_predict_on_a_csv_without_labels(iris, tmp_path):
    run = iris[1]
    data = tmp_path / "new.csv"
    data.write_text("id,petal_width,sepal_length,notes,sepal_width,petal_length\nf1,0.2,5.1,x,3.5,1.4\nf2,1.8,6.3,y,2.9,5.6\n")
    done = trickc("predict", run, "--data", data, "-o", tmp_path / "p.csv", "--all-probs")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {tmp_path / 'p.csv'}: 2 predictions (best.pt)\n"
    rows = rows_of(tmp_path / "p.csv")
    assert list(rows[0]) == ["id", "species", "species_probability"] + [f"species_probability_{c}" for c in IRIS_NAMES]
    expected = trick.load(run).predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8]]))
    assert [r["id"] for r in rows] == ["f1", "f2"] and [r["species"] for r in rows] == list(expected.values)
    assert np.allclose([float(r["species_probability"]) for r in rows], expected.probability, atol=1e-6)


def test_predict_writes_to_standard_output_and_names_rows_by_their_line_in_the_file(iris, tmp_path, capsys):
    _, run = iris
    (tmp_path / "plain.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n\n6.3,2.9,5.6,1.8\n")
    assert main(["predict", str(run), "--data", str(tmp_path / "plain.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "row,species,species_probability"
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "4"]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "sepal_length,sepal_width,petal_lenght\n5.1,3.5,1.4\n",
            "expected 4 inputs sepal_length, sepal_width, petal_length, petal_width, found 2: 'bad.csv' has no column 'petal_length', "
            "'petal_width' (its columns: 'sepal_length', 'sepal_width', 'petal_lenght'); did you mean 'petal_lenght'?",
        ),
        (
            "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n5.1,,1.4,0.2\n",
            "the cell at bad.csv:3:2 (an input column 'sepal_width') is empty (a missing value); fill it with a number, or remove the row",
        ),
        (
            "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,wide,0.2\n",
            "the cell at bad.csv:2:3 (an input column 'petal_length') holds 'wide', not a number; fill it with a number, or remove the row",
        ),
        ("sepal_length,sepal_width,petal_length,petal_width\n", "'bad.csv' has a header but no rows; there is nothing to predict"),
    ],
)
def test_bad_csv_files_get_a_positioned_message(iris, in_tmp, capsys, text, message):
    _, run = iris
    (in_tmp / "bad.csv").write_text(text)
    assert main(["predict", str(run), "--data", "bad.csv"]) == 2
    assert capsys.readouterr().err == f"trickc: error: {message}\n"


def test_evaluate_needs_labels_and_known_classes(iris, in_tmp, capsys):
    _, run = iris
    (in_tmp / "nolabel.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    assert main(["evaluate", str(run), "--data", "nolabel.csv"]) == 2
    assert capsys.readouterr().err == "trickc: error: evaluate needs the labels, and 'nolabel.csv' has no column 'species' with the labels; `trickc predict` needs none\n"
    (in_tmp / "typo.csv").write_text("sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n6.3,2.9,5.6,1.8,virginca\n")
    assert main(["evaluate", str(run), "--data", "typo.csv"]) == 2
    assert capsys.readouterr().err == (
        "trickc: error: the label at typo.csv:3:5 is 'virginca', which is not a class of this run "
        "(its classes: 'setosa', 'versicolor', 'virginica'); did you mean 'virginica'?\n"
    )


def test_trickc_evaluate_on_the_test_split_gives_the_summary_and_a_per_class_table(multi, tmp_path):
    loaded = trick.load(multi, weights="last")  # the summary's test metrics are of the last weights
    splits = load_splits(loaded.plan.data, loaded.plan.seed, loaded.graph.input)
    np.savez(tmp_path / "test.npz", x=splits.raw_inputs("test").numpy(), y=splits.y_test.numpy())
    done = trickc("evaluate", multi, "--data", tmp_path / "test.npz", "--weights", "last", "-o", tmp_path / "ev")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    summary = json.loads((multi / "summary.json").read_text())["test"]
    assert list(record["metrics"]) == list(summary)  # the derived targets (parity, half) from the labels
    for key, value in summary.items():
        assert record["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert "label.accuracy" in done.stdout and "parity     precision  recall     f1  support" in done.stdout
    # the per-class table against scikit-learn's
    from sklearn.metrics import precision_recall_fscore_support

    truth = splits.y_test.numpy()
    predicted = np.array([int(r["label"]) for r in rows_of(tmp_path / "ev" / "predictions.csv")])
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=range(10), zero_division=0)
    table = rows_of(tmp_path / "ev" / "per_class_label.csv")
    assert [row["class"] for row in table] == [str(c) for c in range(10)]
    assert np.allclose([float(row["precision"]) for row in table], p, atol=1e-6)
    assert np.allclose([float(row["recall"]) for row in table], r, atol=1e-6)
    assert np.allclose([float(row["f1"]) for row in table], f, atol=1e-6)
    assert [int(row["support"]) for row in table] == list(s)
    for target in ("label", "parity"):
        with Image.open(tmp_path / "ev" / f"confusion_matrix_{target}.png") as picture:
            assert picture.size[0] > 200


def test_a_multi_head_prediction_gives_regression_values_in_the_targets_units(multi):
    loaded = trick.load(multi)
    x = load_splits(loaded.plan.data, loaded.plan.seed, loaded.graph.input).raw_inputs("test")[:5]
    found = loaded.predict(x)
    assert list(found) == ["label", "parity", "half"] and loaded.classes == {"label": [str(c) for c in range(10)], "parity": ["0", "1"]}
    data = json.loads((multi / "data.json").read_text())["targets"]["half"]
    with torch.no_grad():
        out = loaded.model(loaded.normalizer(x))["half"][:, 0].double().numpy()
    assert np.allclose(found["half"].values, out * data["std"] + data["mean"], atol=1e-12)
    assert found["half"].probabilities is None and found["parity"].probabilities.shape == (5, 2)


def test_predict_with_tta_averages_the_softmax_of_the_views(images, iris):
    loaded = trick.load(images)
    x = load_splits(loaded.plan.data, loaded.plan.seed, loaded.graph.input).raw_inputs("test")[:6]
    found = loaded.predict(x, tta=True)
    model, normalize = loaded.model, loaded.normalizer
    with torch.no_grad():
        views = [torch.softmax(model(normalize(v)).double(), 1) for v in (x, x.flip(-1))]
    assert np.allclose(found.probabilities, ((views[0] + views[1]) / 2).numpy(), atol=1e-6)
    with pytest.raises(TrickUsageError) as err:
        trick.load(iris[1]).predict(np.zeros((1, 4)), tta=True)
    assert err.value.message == (
        f"test-time augmentation uses the views of the spec's `evaluate {{ tta ... }}` block, and {iris[1] / 'spec.trick'} has none; "
        "add one (e.g. evaluate { tta hflip }) and train again, or leave out --tta"
    )


def test_trickc_evaluate_on_class_folders_of_images_with_tta_gives_the_summary(images, tmp_path):
    loaded = trick.load(images)
    splits = load_splits(loaded.plan.data, loaded.plan.seed, loaded.graph.input)
    x, y = splits.raw_inputs("test"), splits.y_test
    for i in range(len(x)):
        folder = tmp_path / "photos" / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")
    summary = json.loads((images / "summary.json").read_text())
    assert summary["tta"]["used"] and summary["weights"] == "last"
    assert main(["evaluate", str(images), "--data", str(tmp_path / "photos"), "--weights", "last", "--tta", "-o", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert metrics["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert metrics["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-3)  # the PNGs round the pixels to multiples of 1/255
    # predict on a flat folder and on one image: a `file` column, in file-name order
    assert main(["predict", str(images), "--data", str(tmp_path / "photos" / "1"), "-o", str(tmp_path / "p.csv")]) == 0
    rows = rows_of(tmp_path / "p.csv")
    files = sorted(p.name for p in (tmp_path / "photos" / "1").iterdir())
    assert [Path(r["file"]).name for r in rows] == files
    one = tmp_path / "photos" / "1" / files[0]
    assert main(["predict", str(images), "--data", str(one), "-o", str(tmp_path / "one.csv")]) == 0
    assert rows_of(tmp_path / "one.csv")[0]["label"] == rows[0]["label"]


def test_integer_labels_are_class_names_when_the_classes_are_numbers_else_indices(tmp_path):
    from trick.runtime.predict import Inputs, Output
    from trick.runtime.predict_data import read_samples

    x = np.zeros((3, 4))
    np.savez(tmp_path / "d.npz", x=x, y=np.array([5, 7, 5]), names=np.array(["virginica", "setosa", "setosa"]))
    inputs = Inputs((4,), "table")
    numbered = Output("label", "y", False, ("5", "6", "7"))  # a run of `classes [5, 6, 7]`
    assert read_samples(tmp_path / "d.npz", inputs, [numbered]).labels["label"].tolist() == [0, 2, 0]
    named = Output("label", "names", False, tuple(IRIS_NAMES))
    assert read_samples(tmp_path / "d.npz", inputs, [named]).labels["label"].tolist() == [2, 0, 0]
    indexed = Output("label", "y", False, tuple(f"c{k}" for k in range(8)))
    assert read_samples(tmp_path / "d.npz", inputs, [indexed]).labels["label"].tolist() == [5, 7, 5]
    few = Output("label", "y", False, ("a", "b"))
    with pytest.raises(TrickUsageError) as err:
        read_samples(tmp_path / "d.npz", inputs, [few])
    assert err.value.message == f"the labels 'y' of '{tmp_path / 'd.npz'}' must be class indices 0..1 of this run, but sample 0 has 5"
    assert read_samples(tmp_path / "d.npz", inputs, [few], labels=False).labels == {}  # prediction reads no labels
