"""11 (early stopping half). `early_stop ... restore=best` gives back the weights of the epoch
with the best validation loss; `restore=last` those of the last epoch.

Tiny runs through `trick.run`: a few hundred generated samples, a small network, a learning
rate high enough that the validation loss goes up and down. The returned model's validation
loss is recomputed here, from the data the plan loads, and must be the best (or last)
epoch's value in the run's history.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import trick
from trick.runtime.data import load_splits
from trick.runtime.objectives import loss_function

from .support import examples, num, seeds


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """Three noisy Gaussian blobs in 4 dimensions, 240 samples."""
    rng = np.random.default_rng(0)
    y = np.arange(240) % 3
    centers = rng.standard_normal((3, 4)) * 1.5
    x = (centers[y] + rng.standard_normal((240, 4)) * 1.2).astype(np.float32)
    path = tmp_path_factory.mktemp("early_stop") / "blobs.npz"
    np.savez(path, x=x, y=y)
    return path


def _spec(data_file: Path, seed: int, lr: float, patience: int, restore: str, epochs: int) -> str:
    return (
        "spec early\n"
        f'data {{ source file "{data_file}"; validation 0.3; test 0.2; normalize zscore }}\n'
        "model {\n    input [4]\n    dense 16 -> relu\n    dense 3\n}\n"
        "train {\n"
        f"    epochs {epochs}\n    batch 16\n    optimizer sgd lr={num(lr)} momentum=0.9\n"
        f"    loss cross_entropy\n    early_stop monitor=val.loss patience={patience} restore={restore}\n    seed {seed}\n"
        "}\n"
    )


@examples(0.25)
@given(seed=seeds, lr=st.floats(0.05, 1.0), patience=st.integers(1, 3), restore=st.sampled_from(["best", "last"]))
@example(seed=3, lr=0.5, patience=2, restore="best")  # its best epoch is neither the first nor the last
def test_early_stopping_restores_the_best_epoch(data_file, seed, lr, patience, restore):
    epochs = 10
    program = trick.compile(_spec(data_file, seed, lr, patience, restore, epochs))
    with tempfile.TemporaryDirectory() as out:
        result = trick.run(program, Path(out) / "run")
    history = [record["val.loss"] for record in result.history]
    best = int(np.argmin(history)) + 1  # the first epoch with the lowest validation loss
    summary = result.summary
    assert summary["best_epoch"] == best
    stopped = summary["stopped_early"]
    assert summary["epochs_run"] == len(history) == (best + patience if stopped else epochs)

    splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
    model = result.model.eval()
    with torch.no_grad():
        val_loss = float(loss_function("cross_entropy")(model(splits.x_val), splits.y_val))
    wanted = best if restore == "best" else len(history)
    assert val_loss == pytest.approx(history[wanted - 1], rel=1e-5, abs=1e-7)
    assert summary["weights"] == restore
