"""The sweep block: checked against the spec at each `vary`'s place, turned into --set
settings, and invisible to a run (the plan and the content hash do not change)."""

from pathlib import Path

import pytest

from trick.compiler.pipeline import check_source, compile_source, run_pipeline
from trick.compiler.sweep import settings, sweep_free_text, sweep_of
from trick.dsl.diagnostics import TrickCheckError

FIXTURES = Path(__file__).parent / "fixtures"
BASE = (FIXTURES / "tiny_ablate.trick").read_text()  # 21 lines; the sweep block starts at line 23


def errors(sweep_body: str, base: str = BASE) -> list[tuple[int, int, str]]:
    text = base + "\nsweep {\n" + sweep_body + "\n}\n"
    found = check_source(text, name="s.trick").diagnostics
    return [(d.line, d.column, d.message) for d in found if d.severity == "error"]


def test_a_good_sweep_checks_clean():
    assert errors("    trials 5\n    metric val.accuracy\n    vary train.optimizer.lr log 1e-4..1e-1\n    vary train.batch [16, 32]\n    vary model.hidden.dropout 0.1..0.6") == []


@pytest.mark.parametrize(
    "body, expected",
    [
        ("    vary train.optimizr.lr 0.1..0.2", (24, 10, "unknown path 'train.optimizr.lr': the train block has no clause 'optimizr'; did you mean 'train.optimizer.lr'?")),
        ("    vary trian.batch [16, 32]", (24, 10, "unknown path 'trian.batch': 'trian' is not a block; did you mean 'train.batch'?")),
        ("    vary train.schedule.warmup 0..3", (24, 10, "the spec's train block has no 'schedule' clause, so there is nothing at 'train.schedule.warmup' to vary; write 'schedule ...' in train first")),
        ("    vary augment.shift 1..4", (24, 10, "the spec has no augment block, so there is nothing at 'augment.shift' to vary; add the block with its 'shift' first")),
        ("    vary model.hiden.dropout 0.1..0.2", (24, 10, "the model has no line labelled 'hiden'; did you mean 'hidden'?")),
        ("    vary model.hidden.dropuot 0.1..0.2", (24, 10, "the line labelled 'hidden' has no 'dropuot' layer; did you mean 'dropout'? (it has dense, relu, dropout)")),
        ("    vary train.optimizer.lr 0.1..0.01", (24, 29, "vary train.optimizer.lr: the range 0.1..0.01 is empty; its low end must be below its high end")),
        ("    vary train.optimizer.weight_decay log 0..0.1", (24, 43, "vary train.optimizer.weight_decay: a log range must lie above 0, and 0..0.1 includes 0; use a low end > 0, or drop 'log'")),
        ("    vary model.hidden.dropout 0.1..1.5", (24, 36, "vary model.hidden.dropout: 1.5 is out of range; expected a number in [0, 1)")),
        ("    vary train.batch [16, 0]", (24, 27, "vary train.batch: 0 is out of range; expected an integer >= 1")),
        ("    vary train.batch 8.5..64", (24, 22, "vary train.batch: expected an integer >= 1, found 8.5")),
        ("    trials 0\n    vary train.batch [16, 32]", (24, 12, "trials: 0 is out of range; expected an integer >= 1")),
        ("    metric val.acuracy\n    vary train.batch [16, 32]", (24, 12, "unknown metric 'val.acuracy'; did you mean 'val.accuracy'?")),
        ("    metric test.accuracy\n    vary train.batch [16, 32]", (24, 12, "a sweep scores its trials by a validation metric (val.…), so that the test split stays unseen; found 'test.accuracy'; use e.g. val.accuracy")),
        ("    vary train.optimizer [adam, sgdd]", (24, 33, "vary train.optimizer: expected one of sgd, adam, adamw, found sgdd; did you mean 'sgd'?")),
        ("    trials 3", (23, 1, "the sweep block varies nothing; add what to search over, e.g. vary train.optimizer.lr log 1e-4..1e-1")),
    ],
)
def test_a_bad_sweep_is_an_error_at_its_place(body, expected):
    assert errors(body) == [expected]


def test_a_sweep_needs_a_validation_split():
    base = BASE.replace("    validation 0.25\n", "")
    assert errors("    metric val.loss\n    vary train.batch [16, 32]", base) == [
        (23, 12, "the metric 'val.loss' needs a validation split, and the spec holds none out; add 'validation 0.1' to the data block")
    ]


def test_the_sweep_block_changes_no_run():
    block = "\nsweep {\n    trials 3\n    vary train.batch [16, 32]\n}\n"
    plain, swept = compile_source(BASE, name="s.trick"), compile_source(BASE + block, name="s.trick")
    assert swept.content_hash == plain.content_hash
    assert swept.plan_json() == plain.plan_json()
    assert compile_source(BASE.replace("epochs 2", "epochs 3") + block, name="s.trick").content_hash != plain.content_hash
    middle = BASE.replace("\nreport", block + "\nreport")  # the block between two others, as `trickc fmt` lays it out
    assert sweep_free_text(run_pipeline(middle, "s.trick").spec.program) == BASE


def test_a_trials_values_become_set_settings():
    text = BASE.replace("-> dropout 0.2", "-> dropout 0.2 mode=scale_at_test") + (
        "\nsweep {\n    vary train.optimizer.lr log 1e-3..1e-1\n    vary train.batch [16, 32]\n    vary model.hidden.dropout 0.0..0.5\n"
        "    vary model.hidden.dense.dropconnect 0.0..0.3\n    vary train.optimizer [adam, sgd]\n}\n"
    )
    sweep = sweep_of(run_pipeline(text, "s.trick").spec)
    values = {"train.optimizer.lr": 0.0123456, "train.batch": 16, "model.hidden.dropout": 0.33333, "model.hidden.dense.dropconnect": 0.1, "train.optimizer": "sgd"}
    assert settings(sweep, values) == [
        "train.optimizer.lr=0.01235",  # an option, set in its place
        "train.batch=16",  # the clause's positional argument
        "model.hidden.dropout=0.3333 mode=scale_at_test",  # a layer's positional argument, its options kept
        "model.hidden.dense.dropconnect=0.1",  # an option the spec leaves at its default
        "train.optimizer=sgd lr=1e-2",  # the kind's word
    ]
    program = compile_source(text, name="s.trick", overrides=settings(sweep, values))
    dropout = next(layer for layer in program.graph.layers if layer.op == "dropout")
    assert (program.plan.optimizer.kind, program.plan.optimizer.args["lr"], program.plan.batch, dropout.args) == ("sgd", 1e-2, 16, {"p": 0.3333, "mode": "scale_at_test"})


def test_set_names_a_layer_by_its_line_label():
    program = compile_source(BASE, name="s.trick", overrides=["model.hidden.dropout=0.4", "model.hidden.dense.dropconnect=0.2"])
    dense, dropout = [layer for layer in program.graph.layers if layer.op in ("dense", "dropout")][1:3]
    assert (dense.args["units"], dense.args["dropconnect"], dropout.args["p"]) == (8, 0.2, 0.4)
    with pytest.raises(TrickCheckError) as caught:
        compile_source(BASE, name="s.trick", overrides=["model.hiddn.dropout=0.4"])
    assert caught.value.diagnostics[0].message == "the model has no line labelled 'hiddn'; did you mean 'hidden'? (--set model.LABEL.LAYER=VALUE changes a layer on a labelled line)"
