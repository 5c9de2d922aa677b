"""Training objectives: imports that train, transfer, FitNets, multi-task, curriculum, FGSM."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import trick
from trick.compiler.pipeline import compile_source
from trick.runtime import checkpoint as ckpt
from trick.runtime.curriculum import fraction
from trick.runtime.distill import regressor
from trick.runtime.objectives import cross_entropy, fgsm, hint_loss
from trick.compiler import ir

FIXTURES = Path(__file__).parent / "fixtures"
SPECS = Path(__file__).resolve().parents[2] / "specs"

STUDENT = """spec student
import "base.trick" as base

data {{
    source digits
    classes [5, 6, 7, 8, 9]
}}

transfer {{
    from base {which}
    {how}
}}

model {{
    input [64]
    first: dense 32 -> batchnorm -> relu
    dense 16 -> relu
    dense 5
}}

train {{
    epochs 3
    batch 32
    optimizer sgd lr=0.05 momentum=0.9
}}
"""


@pytest.fixture
def workdir(in_tmp):
    shutil.copy(FIXTURES / "base.trick", in_tmp / "base.trick")
    return in_tmp


def student(workdir, which="layers=1", how="freeze true"):
    path = workdir / "student.trick"
    path.write_text(STUDENT.format(which=which, how=how))
    return path


# ---- imports that train ---------------------------------------------------------------------------------


def test_an_import_is_trained_first_then_reused_until_it_changes(workdir):
    first = trick.run(student(workdir))
    assert first.summary["imports"] == {"base": "runs/base/1"}
    assert json.loads(Path("runs/base/1/summary.json").read_text())["epochs_run"] == 3
    second = trick.run(student(workdir))
    assert second.summary["imports"] == {"base": "runs/base/1"}  # unchanged: reused
    assert not Path("runs/base/2").exists()
    (workdir / "base.trick").write_text((workdir / "base.trick").read_text().replace("epochs 3", "epochs 2"))
    third = trick.run(student(workdir))
    assert third.summary["imports"] == {"base": "runs/base/2"}  # changed: trained again


# ---- transfer ---------------------------------------------------------------------------------------------


def test_transfer_copies_exactly_the_first_layers_and_freezes_them(workdir):
    result = trick.run(student(workdir, "layers=1", "freeze true"))
    source = ckpt.load(Path("runs/base/1/best.pt"))["model"]
    trained = result.model.state_dict()
    copied = [k for k in source if k.startswith(("first_dense.", "first_batchnorm."))]
    assert copied  # dense1 and its batchnorm, weights and running statistics
    for key in copied:
        assert torch.equal(trained[key], source[key]), f"{key} changed although frozen"
    fresh = compile_source(workdir / "student.trick").model(seed=0).state_dict()
    for key in ("dense1.weight", "dense2.weight"):  # the rest trained from the usual initialization
        assert key in trained and not torch.equal(trained[key], source.get(key, fresh[key]))


def test_transfer_with_labels_and_a_smaller_learning_rate(workdir):
    program = compile_source(student(workdir, "labels=[first]", "lr_scale 0.1"))
    result = trick.run(program)
    source = ckpt.load(Path("runs/base/1/best.pt"))["model"]
    trained = result.model.state_dict()
    assert not torch.equal(trained["first_dense.weight"], source["first_dense.weight"])  # fine-tuned
    from trick.runtime.transfer import hooks_for

    model = program.model()
    groups, _ = hooks_for(model, ["first_dense", "first_batchnorm"], program.plan.transfer, 0.05)
    rest, slow = groups(model)
    assert slow["lr"] == pytest.approx(0.005)
    assert {id(p) for p in slow["params"]} == {id(p) for n in ("first_dense", "first_batchnorm") for p in model.get_submodule(n).parameters()}


def test_incompatible_transfer_is_a_compile_time_error(workdir):
    path = student(workdir, "layers=2", "freeze true")
    path.write_text(path.read_text().replace("dense 16 -> relu", "dense 8 -> relu"))
    (d,) = trick.check(path)
    assert (d.line, d.message) == (10, "cannot copy dense1 of 'base' into dense1: it is dense [32] -> [16] (528 parameters), but here it is dense [32] -> [8] (264 parameters)")


# ---- FitNets -----------------------------------------------------------------------------------------------


def test_the_hint_loss_is_its_formula():
    hint, regressed = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    expected = sum(0.5 * ((hint[i] - regressed[i]) ** 2).sum() for i in range(4)) / 4
    torch.testing.assert_close(hint_loss(hint, regressed), expected)


@pytest.mark.parametrize(
    "guided, hint, kind, shape",
    [((16, 40), (64, 40), "conv", (8, 64, 40)), ((16, 40), (64, 36), "conv", (8, 64, 36)), ((16, 6, 6), (8, 4, 4), "conv", (8, 8, 4, 4)), ((16, 40), (64,), "dense", (8, 64))],
)
def test_the_regressor_is_shaped_automatically(guided, hint, kind, shape):
    assert regressor(guided, hint, kind)(torch.randn(8, *guided)).shape == shape


# ---- curriculum --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "root", "step"])
def test_the_curriculum_fraction_grows_to_one_and_never_shrinks(kind):
    pace = ir.Step(kind, {"start": 0.2, "epochs": 7, "steps": 3}, None)
    fractions = [fraction(pace, e) for e in range(12)]
    assert fractions[0] == pytest.approx(0.2)
    assert all(a <= b for a, b in zip(fractions, fractions[1:]))
    assert fractions[7:] == [1.0] * 5


def test_the_first_epoch_sees_only_the_easiest_samples(workdir):
    (workdir / "cur.trick").write_text(
        'spec cur\nimport "base.trick" as scorer\ndata { source digits }\ncurriculum {\n    score loss of scorer\n    pace linear start=0.25 epochs=2\n}\n'
        "model {\n    input [64]\n    dense 10\n}\ntrain {\n    epochs 3\n}\n"
    )
    seen, curricula = [], []
    from trick.runtime import recipe

    original = recipe.attach

    def spy(trainer, *args):
        original(trainer, *args)
        order = trainer.hooks.order
        if order is not None:
            curricula.append(order)
            trainer.hooks.order = lambda e, n, g: seen.append(order(e, n, g)) or seen[-1]

    recipe.attach = spy
    try:
        result = trick.run(compile_source(workdir / "cur.trick"))
    finally:
        recipe.attach = original
    n = 1437  # digits' training split (80%)
    assert [len(s) for s in seen] == [360, 899, n]  # ceil(0.25 n), ceil(0.625 n), n
    assert [r["train.samples"] for r in result.history] == [360, 899, n]
    scores = curricula[0].scores
    easiest = set(torch.argsort(scores, stable=True)[:360].tolist())
    assert set(seen[0].tolist()) == easiest
    assert scores[seen[0]].max() <= scores[sorted(set(range(n)) - easiest)].min()
    assert seen[1].tolist() != sorted(seen[1].tolist())  # shuffled within the easiest fraction


# ---- adversarial -------------------------------------------------------------------------------------------


def test_fgsm_stays_within_eps_and_raises_the_loss_of_a_trained_model(workdir):
    result = trick.run(compile_source(workdir / "base.trick"))
    model = result.model.eval()
    from trick.runtime.data import load_splits

    program = compile_source(workdir / "base.trick")
    splits = load_splits(program.plan.data, 0, (64,))
    x, y = splits.x_test, splits.y_test
    loss_of = lambda v: cross_entropy(model(v), y)  # noqa: E731
    x_adv = fgsm(loss_of, x, 1.0)  # the pixels of digits are 0..16
    assert (x_adv - x).abs().max() <= 1.0 + 1e-6
    assert float(loss_of(x_adv)) > 1.5 * float(loss_of(x))
    clipped = fgsm(loss_of, x, 1.0, (0.0, 0.5))
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 0.5


# ---- the examples end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, settings",
    [
        ("digits_transfer", ["train.epochs=2"]),
        ("mnist1d_fitnet", ["train.epochs=2", "distill.hint_epochs=1", "data.train_fraction=0.3"]),
        ("digits_multitask", ["train.epochs=3"]),
        ("mnist1d_curriculum", ["train.epochs=2", "data.train_fraction=0.3"]),
    ],
)
def test_examples_e4_to_e7_run_end_to_end(spec, settings, shared_runs, tmp_path):
    from trick.driver import train as execute

    program = compile_source(SPECS / f"{spec}.trick", overrides=settings)
    result = execute(program, tmp_path / "run", stream=None, runs=shared_runs)
    assert result.summary["epochs_run"] == program.plan.epochs
    assert 0 <= result.summary["test"]["accuracy"] <= 1
    if spec == "digits_multitask":
        for head in ("label", "parity", "large"):
            assert {f"train.{head}.loss", f"train.{head}.accuracy", f"val.{head}.accuracy"} <= set(result.history[0])
            assert f"{head}.accuracy" in result.summary["test"]
    if spec == "mnist1d_fitnet":
        lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["stage"] == "hint"


def test_a_data_column_scores_difficulty(in_tmp):
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)).astype(np.float32), np.arange(200) % 2
    difficulty = rng.permutation(200).astype(np.float64)
    np.savez(in_tmp / "d.npz", x=x, y=y, difficulty=difficulty)
    (in_tmp / "c.trick").write_text(
        'spec c\ndata { source file "d.npz"; test 0.25 }\ncurriculum {\n    score column "difficulty"\n    pace step start=0.5 epochs=2 steps=2\n}\n'
        "model {\n    input [3]\n    dense 2\n}\ntrain {\n    epochs 3\n    batch 10\n}\n"
    )
    seen = []
    from trick.runtime import recipe

    original = recipe.attach

    def spy(trainer, plan, imported, splits):
        original(trainer, plan, imported, splits)
        order = trainer.hooks.order
        trainer.hooks.order = lambda e, n, g: seen.append((order(e, n, g), splits.targets["train"]["difficulty"])) or seen[-1][0]

    recipe.attach = spy
    try:
        result = trick.run(trick.compile(in_tmp / "c.trick"))
    finally:
        recipe.attach = original
    assert [r["train.samples"] for r in result.history] == [75, 113, 150]
    first, scores = seen[0]
    assert set(first.tolist()) == set(torch.argsort(scores)[:75].tolist())
    assert sorted(scores[first].tolist()) == sorted(scores.tolist())[:75]


def test_a_column_needs_a_file_source():
    (d,) = trick.check("spec c\ndata { source digits }\ncurriculum { score column \"difficulty\" }\nmodel {\n    input [64]\n    dense 10\n}\n")
    assert d.message == 'a difficulty column comes from a file source (source file "data.npz"), not digits'


def test_self_paced_curriculum_rescores_with_the_model_every_epoch(in_tmp):
    (in_tmp / "sp.trick").write_text(
        "spec sp\ndata { source digits }\ncurriculum {\n    score self\n    pace linear start=0.5 epochs=2\n}\n"
        "model {\n    input [64]\n    dense 10\n}\ntrain {\n    epochs 3\n    optimizer sgd lr=0.01\n}\n"
    )
    scored = []
    from trick.runtime import recipe

    original = recipe.attach

    def spy(trainer, *args):
        original(trainer, *args)
        order = trainer.hooks.order

        def record(e, n, g):
            indices = order(e, n, g)
            scored.append((order.scores.clone(), indices))
            return indices

        trainer.hooks.order = record

    recipe.attach = spy
    try:
        trick.run(trick.compile(in_tmp / "sp.trick"))
    finally:
        recipe.attach = original
    assert len(scored) == 3
    (first, first_order), (second, _), _ = scored
    assert not torch.equal(first, second)  # rescored after an epoch of training
    assert set(first_order.tolist()) == set(torch.argsort(first, stable=True)[: len(first_order)].tolist())
