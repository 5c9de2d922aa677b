"""The pictures of a run: curves.png, weights.png, decision_boundary.png, TensorBoard files.

The files are decoded, not only found: each PNG opens with Pillow (a matplotlib dependency)
at the size its figure has, and the figures are checked for what they must show.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trick
from trick.cli import main
from trick.compiler.pipeline import compile_source
from trick.runtime import report

TINY = Path(__file__).parent / "fixtures" / "tiny.trick"

PLANE = """spec plane

data {
    source playground circle n=300 noise=0.05
    validation 0.2
    normalize zscore
}

model {
    input [2]
    dense 8 -> tanh
    dense 2
}

train {
    epochs 6
    batch 32
    optimizer adam lr=0.05
    regularize l1 1e-3
    early_stop monitor=val.loss patience=2
}
"""


def decoded(path: Path) -> Image.Image:
    """The PNG at `path`, checked and fully decoded."""
    with Image.open(path) as image:
        image.verify()
    image = Image.open(path)
    image.load()
    assert image.format == "PNG"
    return image


def colourful(image: Image.Image) -> bool:
    """Not a blank page: many distinct colours."""
    return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or ()) > 50


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return trick.run(compile_source(TINY), tmp_path_factory.mktemp("tiny") / "run")


def test_every_run_gets_its_curves_and_weights(tiny_run):
    folder = tiny_run.run_dir
    curves, weights = decoded(folder / "curves.png"), decoded(folder / "weights.png")
    assert curves.size == (1000, 400)
    assert weights.size == (640, 320)  # two layers with weights: two histograms in a row
    assert colourful(curves) and colourful(weights)
    assert not (folder / "decision_boundary.png").exists()  # the input is not a plane


def test_a_plane_gets_its_decision_boundary(tmp_path):
    result = trick.run(compile_source(PLANE), tmp_path / "run")
    image = decoded(tmp_path / "run" / "decision_boundary.png")
    assert image.size == (600, 540)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    # both of the playground's class colours are there (the regions and the points)
    orange = np.abs(pixels - [0xF5, 0x93, 0x22]).sum(1) < 60
    blue = np.abs(pixels - [0x08, 0x77, 0xBD]).sum(1) < 60
    assert orange.sum() > 100 and blue.sum() > 100
    assert {p.name for p in (tmp_path / "run").glob("*.png")} == {"curves.png", "weights.png", "decision_boundary.png"}
    assert result.summary["test"]["accuracy"] > 0.5


def test_the_report_block_chooses_the_plots(tmp_path):
    only = PLANE.replace("    early_stop monitor=val.loss patience=2\n}\n", "}\n\nreport {\n    plot decision_boundary\n}\n")
    trick.run(compile_source(only), tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").glob("*.png")} == {"curves.png", "decision_boundary.png"}


def test_which_plots():
    tiny = compile_source(TINY)
    assert report.chosen(tiny.plan, tiny.graph) == ("curves", "weights")
    plane = compile_source(PLANE)
    assert report.chosen(plane.plan, plane.graph) == ("curves", "weights", "decision_boundary")
    chosen = compile_source(PLANE + "report { plot weights curves }\n")
    assert report.chosen(chosen.plan, chosen.graph) == ("curves", "weights")
    spiral = compile_source(Path(__file__).resolve().parents[2] / "specs" / "spiral_l1.trick")
    assert report.chosen(spiral.plan, spiral.graph) == ("curves", "decision_boundary", "weights")


def test_the_curves_mark_the_early_stopping_point(tmp_path):
    program = compile_source(PLANE)
    history = [
        {"epoch": e, "train.loss": 1.0 / e, "train.accuracy": 0.5 + e / 20, "val.loss": v, "val.accuracy": 0.6}
        for e, v in zip(range(1, 7), [0.9, 0.7, 0.5, 0.55, 0.6, 0.65])
    ]
    summary = {"best_epoch": 3, "epochs_run": 6, "stopped_early": True, "weights": "best"}
    figure = report.plot_curves(tmp_path / "curves.png", program.plan, history, summary)
    loss, accuracy = figure.axes[:2]
    assert [line.get_ydata().tolist() for line in loss.lines[:2]] == [[r["train.loss"] for r in history], [r["val.loss"] for r in history]]
    assert [line.get_ydata().tolist() for line in accuracy.lines[:2]] == [[r["train.accuracy"] for r in history], [r["val.accuracy"] for r in history]]
    marks = [line for line in loss.lines if list(line.get_xdata()) == [3, 3]]
    assert marks, "no vertical line at the best epoch"
    star = next(line for line in loss.lines if line.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([3], [0.5])
    legend = [t.get_text() for t in loss.get_legend().get_texts()]
    assert "restored epoch 3" in legend and "patience, stopped at 6" in legend and "val.loss 0.5" in legend
    assert "stopped early at epoch 6" in figure._suptitle.get_text()
    assert decoded(tmp_path / "curves.png").size == (1000, 400)


def test_the_weight_histograms_show_sparsity(tmp_path):
    program = compile_source(TINY)
    model = program.model(seed=0)
    with torch.no_grad():
        model.dense1.weight[:, :32] = 0.0  # half of the first layer's weights are 0
        model.dense1.weight[:, 32:] = 0.5
    figure = report.plot_weights(tmp_path / "weights.png", program.plan, program.graph, model)
    titles = [a.get_title() for a in figure.axes if a.get_visible()]
    assert titles == ["dense1: dense 16", "dense2: dense 10"]
    notes = [t.get_text() for t in figure.axes[0].texts]
    assert notes == ["1,024 weights\n|w| < 0.001: 50%"]
    assert "l2 0.0001" in figure._suptitle.get_text()


def test_a_plot_that_fails_is_reported_and_the_others_are_written(tmp_path, monkeypatch, tiny_run):
    def broken(*args):
        raise ValueError("no room")

    monkeypatch.setattr(report, "plot_weights", broken)
    stream = io.StringIO()
    written = report.write_reports(tmp_path, compile_source(TINY), tiny_run.model, None, tiny_run.history, tiny_run.summary, stream)
    assert [p.name for p in written] == ["curves.png"]
    assert stream.getvalue() == f"warning: could not write {tmp_path / 'weights.png'}: ValueError: no room\n"


def test_tensorboard_without_the_package_says_how_to_install_it(tmp_path, monkeypatch, tiny_run):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when it is missing
    stream = io.StringIO()
    program = compile_source(TINY)
    assert report.write_tensorboard(tmp_path / "tb", program.plan, program.graph, tiny_run.model, tiny_run.history, tiny_run.summary, stream) is None
    assert stream.getvalue() == report.TENSORBOARD_MISSING + "\n"
    assert "pip install tensorboard" in report.TENSORBOARD_MISSING
    assert not (tmp_path / "tb").exists()


def test_trickc_run_tensorboard_without_the_package(in_tmp, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert main(["run", str(TINY), "--out", "run", "--quiet", "--tensorboard", "--set", "train.epochs=2"]) == 0
    err = capsys.readouterr().err
    assert f"trickc: {report.TENSORBOARD_MISSING} (training without it)" in err
    assert not (in_tmp / "run" / "tensorboard").exists() and (in_tmp / "run" / "curves.png").is_file()


def test_tensorboard_event_files(in_tmp, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["run", str(TINY), "--out", "run", "--tensorboard", "--set", "train.epochs=3"]) == 0
    assert "TensorBoard: tensorboard --logdir run/tensorboard" in capsys.readouterr().err
    (events,) = (in_tmp / "run" / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent), size_guidance={"histograms": 0, "scalars": 0})
    accumulator.Reload()
    metrics = [json.loads(line) for line in (in_tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    loss = accumulator.Scalars("train/loss")
    assert [(e.step, round(e.value, 5)) for e in loss] == [(r["epoch"], round(r["train.loss"], 5)) for r in metrics]
    assert {"val/accuracy", "lr", "test/accuracy"} <= set(accumulator.Tags()["scalars"])
    assert set(accumulator.Tags()["histograms"]) == {"weights/dense1", "weights/dense2"}


def test_trickc_check_imports_no_plotting():
    spec = Path(__file__).resolve().parents[2] / "specs" / "spiral_l1.trick"
    code = (
        "import sys; from trick.cli import main; rc = main(['check', %r]); "
        "print(rc, [m for m in ('matplotlib', 'pygls', 'pygments', 'torch') if m in sys.modules])" % str(spec)
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "0 []"
