"""Standalone generated source: `trickc compile SPEC|RUN -o model.py` runs where `trick` is not
installed, and a run's trained weights load into it and give the trained model's outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import trick
from trick.cli import main
from trick.compiler.codegen import class_name
from trick.compiler.pipeline import compile_source

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"

# Run in a fresh interpreter (-I: no PYTHONPATH, no working directory on sys.path) in which
# `import trick` fails even where trick is installed: for each job, load the generated file,
# build its class (seeded), load the weights if any, and save its eval-mode output and state.
BLOCKED = r"""
import importlib.abc, importlib.util, json, sys

class NoTrick(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "trick" or name.startswith("trick."):
            raise ModuleNotFoundError("No module named 'trick' (blocked by the test)")
        return None

sys.meta_path.insert(0, NoTrick())
try:
    import trick
except ImportError:
    pass
else:
    raise SystemExit("trick is importable")
import torch

for job in json.load(open(sys.argv[1])):
    spec = importlib.util.spec_from_file_location(job["name"], job["source"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = getattr(module, job["class"])()
    if job["weights"]:
        model.load_state_dict(torch.load(job["weights"])["model"])  # strict: every key, no extra one
    model.eval()
    with torch.no_grad():
        torch.save({"out": model(torch.load(job["inputs"])), "state": model.state_dict()}, job["out"])
"""

GRU = SPECS / "mnist1d_gru.trick"  # a layer-normalized GRU cell and `last`, from trick/layers.py


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of specs/digits_mlp.trick (DropConnect, scaled dropout, hidden noise; minmax inputs)."""
    program = compile_source(SPECS / "digits_mlp.trick", overrides=["train.epochs=1", "data.train_fraction=0.3", "report.plot=curves"])
    return trick.run(program, out=tmp_path_factory.mktemp("standalone") / "run").run_dir


@pytest.fixture(scope="module")
def generated(run, tmp_path_factory):
    """The sources of the run (`trickc compile RUN`, in a subprocess) and of the GRU spec
    (`trickc compile SPEC`), and what each gives in one interpreter without trick: by name,
    (source text, inputs, {"out", "state"})."""
    folder = tmp_path_factory.mktemp("generated")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "trick", "compile", str(run), "-o", "model.py"], cwd=folder, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("wrote model.py\n")
    assert main(["compile", os.path.relpath(GRU), "-o", str(folder / "gru.py")]) == 0
    inputs = {"model": torch.rand(16, 64) * 16, "gru": torch.randn(4, 1, 40)}  # raw pixels 0..16; sequences
    classes = {"model": class_name("digits_mlp"), "gru": class_name("mnist1d_gru")}
    jobs = []
    for name, x in inputs.items():
        torch.save(x, folder / f"{name}_x.pt")
        weights = str(run / "best.pt") if name == "model" else None
        jobs.append({"name": name, "source": str(folder / f"{name}.py"), "class": classes[name], "weights": weights, "inputs": str(folder / f"{name}_x.pt"), "out": str(folder / f"{name}_out.pt")})
    (folder / "jobs.json").write_text(json.dumps(jobs))
    done = subprocess.run([sys.executable, "-I", "-c", BLOCKED, str(folder / "jobs.json")], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {name: ((folder / f"{name}.py").read_text(), inputs[name], torch.load(folder / f"{name}_out.pt")) for name in inputs}


def test_the_source_of_a_run_takes_raw_inputs_and_loads_its_weights_without_trick(run, generated):
    source, x, found = generated["model"]
    assert source.splitlines()[1] == "# from 'digits_mlp.trick'"  # the spec by its name, not a path
    assert "class DropConnectLinear(nn.Linear):" in source and "INPUT_SCALE = torch.tensor([" in source
    loaded = trick.load(run)
    with torch.no_grad():
        expected = loaded.model(loaded.normalizer(x))
        unnormalized = loaded.model(x)
    assert torch.equal(found["out"], expected)  # the same operations in the same order: bit for bit
    assert not torch.allclose(found["out"], unnormalized)  # (the normalization matters for these inputs)


def test_the_source_of_a_spec_copies_the_layers_torch_lacks(generated):
    source, x, found = generated["gru"]
    assert source.splitlines()[1] == "# from 'mnist1d_gru.trick'"
    built = trick.compile(GRU).model(seed=0).eval()  # seeded as the subprocess seeds its class
    assert list(found["state"]) == list(built.state_dict())
    for key, value in built.state_dict().items():
        assert torch.equal(found["state"][key], value), key
    with torch.no_grad():
        assert torch.equal(found["out"], built(x))


def test_a_run_folder_without_weights_is_a_usage_error(run, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("spec.trick", "plan.json"):
        (bare / name).write_bytes((run / name).read_bytes())
    assert main(["compile", str(bare), "-o", str(tmp_path / "m.py")]) == 2
    assert "has no weights: neither best.pt nor last.pt is there" in capsys.readouterr().err
    assert not (tmp_path / "m.py").exists()
