"""`trickc export`: ONNX (checked with onnxruntime), torch.export (.pt2) and TorchScript (.ts),
each taking raw inputs, with a dynamic batch axis and the run's metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import trick
from trick.cli import main
from trick.dsl.diagnostics import TrickUsageError
from trick.runtime import export as exporting
from trick.runtime.data import load_splits

ROOT = Path(__file__).resolve().parents[2]

# zscore inputs, a classifier, a derived classifier and a standardized regression head
SPEC = """spec exported

data {
    source digits
    normalize zscore
    train_fraction 0.3
    target parity = label % 2
    target half = label / 2
}

model {
    input [64]
    dense 32 -> batchnorm -> relu
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


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    (folder / "exported.trick").write_text(SPEC)
    return trick.run(trick.compile(folder / "exported.trick"), out=folder / "run").run_dir


@pytest.fixture(scope="module")
def raw(run):
    """Raw test inputs [N, 64] and what the trained model gives for them, in the targets'
    units: logits, and half's output · std + mean."""
    loaded = trick.load(run)
    x = load_splits(loaded.plan.data, loaded.plan.seed, loaded.graph.input).raw_inputs("test")[:9]
    out = loaded.forward(x)
    half = next(o for o in loaded.outputs if o.target == "half")
    assert (half.mean, half.std) != (0.0, 1.0)  # the regression target is standardized in training
    return x, {"label": out["label"], "parity": out["parity"], "half": out["half"].double() * half.std + half.mean}


def close(got, want, tolerance=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= tolerance * max(1.0, np.abs(want).max())


def test_trickc_export_onnx_takes_raw_inputs_and_matches_torch(run, raw, tmp_path):
    import onnx
    import onnxruntime

    path = tmp_path / "model.onnx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "trick", "export", str(run), "-o", str(path)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {path} (ONNX; best.pt, epoch ") and "raw inputs [N, 64])\nchecked with onnxruntime" in done.stdout
    x, want = raw
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "parity", "half"]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # the batch axis is dynamic
    got = dict(zip(["label", "parity", "half"], session.run(None, {"x": x.numpy()})))
    with torch.no_grad():
        torch_out = exporting.raw_input_model(trick.load(run))(x)
    for name in want:  # onnxruntime against torch on the exported graph: within 1e-5
        close(got[name], torch_out[name].numpy(), 1e-5)
        close(got[name], want[name].numpy().reshape(got[name].shape))  # and against the trained model's outputs
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    summary = json.loads((run / "summary.json").read_text())
    assert meta["spec_hash"] == summary["content_hash"]
    assert json.loads(meta["input_shape"]) == [64]
    assert json.loads(meta["classes"]) == {"label": [str(c) for c in range(10)], "parity": ["0", "1"]}
    outputs = json.loads(meta["trick"])["outputs"]
    assert [(o["name"], o["task"]) for o in outputs] == [("label", "classification"), ("parity", "classification"), ("half", "regression")]


def test_export_pt2_takes_raw_inputs_with_any_batch(run, raw, tmp_path):
    x, want = raw
    done = exporting.export(trick.load(run), tmp_path / "model.pt2")
    assert done.format == "torch.export" and done.difference is None
    extra = {"trick.json": ""}
    program = torch.export.load(str(tmp_path / "model.pt2"), extra_files=extra)
    assert json.loads(extra["trick.json"])["spec_hash"] == json.loads((run / "summary.json").read_text())["content_hash"]
    for n in (1, 9):  # traced with 2
        out = program.module()(x[:n])
        for name in want:
            close(out[name].detach().numpy(), want[name][:n].numpy().reshape(out[name].shape))


def test_export_torchscript_takes_raw_inputs_with_any_batch(run, raw, tmp_path):
    x = raw[0]
    assert main(["export", str(run), "-o", str(tmp_path / "model.ts"), "--weights", "last"]) == 0
    extra = {"trick.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's notice that TorchScript is deprecated
        module = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    assert json.loads(extra["trick.json"])["weights"] == "last.pt"
    loaded = trick.load(run, weights="last")
    out = module(x[:5])
    expected = loaded.predict(x[:5])
    assert np.array_equal(out["label"].argmax(1).numpy(), expected["label"].index)
    close(out["half"][:, 0].detach().numpy(), expected["half"].values)


def test_an_unknown_suffix_names_the_three_formats(run, tmp_path, capsys):
    assert main(["export", str(run), "-o", str(tmp_path / "model.tflite")]) == 2
    assert capsys.readouterr().err == f"trickc: error: cannot export to '{tmp_path / 'model.tflite'}': name a .onnx (ONNX), .pt2 (torch.export) or .ts (TorchScript) file\n"
    assert not (tmp_path / "model.tflite").exists()


def test_missing_onnx_packages_name_the_extra(run, tmp_path, monkeypatch):
    real = exporting.importlib.util.find_spec
    monkeypatch.setattr(exporting.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(TrickUsageError) as err:
        exporting.export(trick.load(run), tmp_path / "model.onnx")
    assert err.value.message == "exporting to ONNX needs the packages onnx, onnxscript and onnxruntime (onnxruntime missing); install them with: pip install 'trick[export]'"
