"""bench/results.py: the baseline specs are the MNIST-1D notebook's models, every ablation
row is the plain spec with exactly its trick, and the tables say what they should."""

import importlib.util
import sys

import pytest
from torch import nn

import trick
from trick.compiler.pipeline import compile_source

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("results_bench", ROOT / "bench" / "results.py")
results = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = results  # dataclasses look their module up
spec.loader.exec_module(results)


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class NotebookCNN(nn.Module):  # mnist1d's ConvBase: 3 conv1d layers of 25 channels, then linear(125, 10)
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv1d(1, 25, 5, 2, 1), nn.Conv1d(25, 25, 3, 2, 1), nn.Conv1d(25, 25, 3, 2, 1)
        self.linear = nn.Linear(125, 10)


class NotebookGRU(nn.Module):  # mnist1d's GRUBase: bidirectional, hidden 6, every step into linear(2*6*40, 10)
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 6, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(480, 10)


NOTEBOOK = {
    "mnist1d_logreg": nn.Linear(40, 10),
    "mnist1d_mlp": nn.Sequential(nn.Linear(40, 100), nn.Linear(100, 100), nn.Linear(100, 10)),
    "mnist1d_cnn_baseline": NotebookCNN(),
    "mnist1d_gru_baseline": NotebookGRU(),
}


@pytest.mark.parametrize("name", sorted(NOTEBOOK))
def test_the_baseline_specs_are_the_notebooks_models_and_training(name):
    program = trick.compile(ROOT / "specs" / f"{name}.trick")
    assert parameters(program.model()) == parameters(NOTEBOOK[name])
    plan = program.plan
    # Adam at 1e-2, batch 100, 6000 steps of the 4000 training samples, no validation split.
    assert (plan.optimizer.kind, plan.optimizer.args["lr"], plan.batch, plan.epochs * 4000 // plan.batch) == ("adam", 1e-2, 100, 6000)
    assert plan.data.validation == 0 and plan.data.normalize is None and plan.early_stop is None


def test_every_ablation_row_is_the_plain_spec_with_one_trick(tmp_path):
    """The ablation is `trickc ablate --mode add-one-in` of a spec with every trick: each row
    is the plain spec (no trick) with one trick, or one of the two rows that are no trick."""
    found = results.ablation_variants(tmp_path)
    assert set(found) == {"mnist1d", "digits"}
    for dataset, variants in found.items():
        names = [v.name for v in variants]
        assert names[0] == "plain" and names[-2:] == ["with_zscore", "with_multi_task"] and not any(v.skipped for v in variants)
        expected = {"batchnorm", "groupnorm", "layernorm", "dropout", "dropconnect", "regularize_l2", "regularize_l1", "weight_noise", "early_stop", "smoothing", "adversarial", "curriculum", "distill", "augment_noise"}
        assert {f"with_{n}" for n in expected} <= set(names)
        programs = {v.name: v.program for v in variants}
        hashes = {name: p.content_hash for name, p in programs.items()}
        assert len(set(hashes.values())) == len(hashes), "a change that changes nothing"
        plain = programs["plain"].plan
        assert not plain.imports and plain.data.normalize is None and not plain.augment and plain.early_stop is None and not plain.regularizers
        assert plain.loss.args["smoothing"] == 0 and plain.adversarial is None and plain.curriculum is None and plain.distill is None
        assert programs["with_zscore"].plan.data.normalize is not None
        assert programs["with_distill"].plan.distill is not None and programs["with_distill"].plan.imports
        assert [h.target for h in programs["with_multi_task"].graph.heads] == ["label", "parity"]
        for norm in ("batchnorm", "groupnorm", "layernorm"):
            layers = [layer.op for layer in programs[f"with_{norm}"].graph.all_layers()]
            assert layers.count(norm) == (3 if dataset == "mnist1d" else 2) and len(layers) == len(list(programs["plain"].graph.all_layers())) + layers.count(norm), norm


def test_a_change_whose_text_is_missing_is_an_error():
    with pytest.raises(ValueError, match="not in the base spec"):
        results.edited(results.GROUPNORM_BASE, [("dense 999", "dense 1")], "x")


def test_the_groupnorm_and_spiral_specs(tmp_path):
    for norm, path in results.groupnorm_specs(tmp_path).items():
        for batch in results.BATCHES:
            program = compile_source(path, overrides=[f"train.batch={batch}"])
            assert program.plan.batch == batch
            assert [layer.op for layer in program.graph.all_layers()].count(norm) == 3
    spirals = {label: compile_source(path).plan for label, path in results.spiral_specs(tmp_path).items()}
    assert [(r.kind, r.args["strength"]) for r in spirals["E8 as written (L1 1e-3)"].regularizers] == [("l1", 1e-3)]
    assert [(r.kind, r.args["strength"]) for r in spirals["wide, L1 1e-4"].regularizers] == [("l1", 1e-4)]
    assert [(r.kind, r.args["strength"]) for r in spirals["wide, L2 1e-4"].regularizers] == [("l2", 1e-4)]
    assert not spirals["wide, no penalty"].regularizers
    assert {p.optimizer.kind for label, p in spirals.items() if label.startswith("wide")} == {"adam"}


def run(key: str, accuracy: float, history=None) -> tuple[str, dict]:
    return key, {"key": key, "summary": {"test": {"accuracy": accuracy}, "epochs_run": 10, "wall_seconds": 1.0}, "history": history or [], "best_val_accuracy_epoch": None}


def test_the_baseline_table_compares_the_mean_with_the_notebook():
    found = dict(
        [run("baselines/mnist1d_mlp/seed0", 0.66), run("baselines/mnist1d_mlp/seed1", 0.64), run("baselines/mnist1d_mlp/seed2", 0.65)]
        + [run(f"baselines/mnist1d_logreg/seed{s}", 0.36) for s in range(3)]
    )
    table, means = results.baseline_table(found)
    assert means == {"mnist1d_logreg": pytest.approx(36.0), "mnist1d_mlp": pytest.approx(65.0)}
    mlp = next(line for line in table.splitlines() if "mnist1d_mlp" in line)
    assert "| 65.0 ± 1.0 | 66.0 / 64.0 / 65.0 | -0.1 (within 3) |" in mlp
    logreg = next(line for line in table.splitlines() if "mnist1d_logreg" in line)
    assert "+4.5 (**off by more than 3**)" in logreg


def test_epochs_to_the_best_validation_accuracy_is_the_first_best():
    history = [{"epoch": 1, "val.accuracy": 0.5}, {"epoch": 2, "val.accuracy": 0.8}, {"epoch": 3, "val.accuracy": 0.8}, {"epoch": 4, "val.accuracy": 0.7}]
    assert results.best_accuracy_epoch(history) == 2
    assert results.best_accuracy_epoch([{"epoch": 1, "val.label.accuracy": 0.3}]) == 1
    assert results.best_accuracy_epoch([{"epoch": 1, "train.loss": 0.3}]) is None
