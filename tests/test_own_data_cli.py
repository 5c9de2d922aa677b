"""The user's own data through `trickc`, as a user runs it: the example specs on a CSV with
class names, a regression table with a split column, and an image folder (issue 17)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT, SHAPES

DATA = ROOT / "specs" / "data"


def trickc(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", "trick", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_the_tables_are_what_the_script_writes(tmp_path):
    """specs/data/*.csv are scikit-learn's bundled iris and diabetes data, as make_tables.py writes them."""
    result = subprocess.run([sys.executable, str(DATA / "make_tables.py"), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("iris.csv", "diabetes.csv"):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes()


@pytest.mark.slow
def test_iris_with_class_names(tmp_path):
    out = tmp_path / "run"
    result = trickc("run", "specs/iris_csv.trick", "--quiet", "--out", str(out), "--set", "train.epochs=3")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == {"label": ["setosa", "versicolor", "virginica"]}
    described = json.loads((out / "data.json").read_text())
    assert described["inputs"]["names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert described["targets"]["label"] == {"task": "classification", "classes": ["setosa", "versicolor", "virginica"], "column": "species"}


@pytest.mark.slow
def test_regression_reports_errors_in_the_targets_units(tmp_path):
    out = tmp_path / "run"
    result = trickc("run", "specs/diabetes_regression.trick", "--quiet", "--out", str(out), "--set", "train.epochs=4")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {"loss", "mse", "mae", "r2"} <= set(summary["test"]) and "accuracy" not in summary["test"]
    assert "test r2" in result.stdout and "test mae" in result.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("val.r2" in r and "val.mse" in r for r in records)
    # the split column put every fifth row in the test split: 442 // 5 rows
    assert (out / "predictions.png").is_file()
    described = json.loads((out / "data.json").read_text())
    target = described["targets"]["label"]
    assert target["task"] == "regression" and 100 < target["mean"] < 200 and target["column"] == "progression"
    # the reported mse is the model's squared error in the target's units: the loss (on standardized targets) times std²
    assert summary["test"]["mse"] == pytest.approx(summary["test"]["loss"] * target["std"] ** 2, rel=1e-4)


@pytest.mark.slow
def test_an_image_folder_streamed_trains_as_it_does_cached(tmp_path):
    """The same run with the images decoded in this process and kept in memory, and streamed by
    two worker processes, gives the same metrics, bit for bit (the workers draw nothing from
    torch's generator: the initialization and the draws are the same)."""
    runs = {}
    for cache, workers in (("memory", 0), ("stream", 2)):
        out = tmp_path / cache
        settings = ["--set", "train.epochs=2", "--set", f"data.source.cache={cache}", "--set", f"data.source.workers={workers}"]
        result = trickc("run", "specs/shapes_folder.trick", "--quiet", "--out", str(out), *settings)
        assert result.returncode == 0, result.stderr
        runs[cache] = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (out / "metrics.jsonl").read_text().splitlines()]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["classes"] == {"label": sorted(p.name for p in SHAPES.iterdir() if p.is_dir())}
    assert runs["memory"] == runs["stream"]


def test_a_bad_image_is_an_error_at_the_source(tmp_path):
    shutil.copytree(SHAPES, tmp_path / "shapes")
    first = sorted((tmp_path / "shapes" / "circle").iterdir())[0]
    first.write_bytes(first.read_bytes()[:40])  # a truncated PNG
    (tmp_path / "s.trick").write_text((ROOT / "specs" / "shapes_folder.trick").read_text().replace('"data/shapes"', '"shapes"'))
    result = trickc("run", "s.trick", "--quiet", "--out", "run", cwd=tmp_path)
    assert result.returncode == 1
    assert "s.trick:" in result.stderr and f"shapes/circle/{first.name}" in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "shapes" / "empty_class"
    empty.mkdir()
    result = trickc("check", "s.trick", cwd=tmp_path)
    assert result.returncode == 0  # check reads no images
    result = trickc("run", "s.trick", "--quiet", "--out", "run2", cwd=tmp_path)
    assert result.returncode == 1 and "empty_class" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_streamed_images_under_nproc_train_as_cached_ones(tmp_path):
    """Under --nproc each process decodes only its share of every batch, and the run is the
    cached run's, bit for bit."""
    runs = {}
    for cache, workers in (("memory", 2), ("stream", 0)):
        out = tmp_path / cache
        settings = ["--set", "train.epochs=1", "--set", f"data.source.cache={cache}", "--set", f"data.source.workers={workers}"]
        result = trickc("run", "specs/shapes_folder.trick", "--quiet", "--nproc", "2", "--out", str(out), *settings)
        assert result.returncode == 0, result.stderr
        runs[cache] = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert runs["memory"] == runs["stream"]
