"""The one pipeline: each file parsed, checked and lowered once; programs carry their imports;
a clause is defined by its registry entry alone; construction failures keep their line."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import pytest

import trick
from trick.compiler import clauses as R
from trick.compiler import pipeline
from trick.dsl import imports as dsl_imports

SPECS = Path(__file__).resolve().parents[2] / "specs"


def test_a_spec_and_each_import_go_through_every_stage_once(monkeypatch):
    parsed, checked, lowered, linked = Counter(), Counter(), Counter(), Counter()
    real_parse, real_run, real_lower, real_link = dsl_imports.parse_text, pipeline.Checker.run, pipeline.lower, pipeline.link

    def parse(text, name="<string>"):
        parsed[Path(name).name] += 1
        return real_parse(text, name)

    def run(self, imports):
        checked[self.program.name] += 1
        return real_run(self, imports)

    def lower(spec):
        lowered[spec.program.name] += 1
        return real_lower(spec)

    def link(plan, graph, imports):
        linked[plan.spec] += 1
        return real_link(plan, graph, imports)

    monkeypatch.setattr(dsl_imports, "parse_text", parse)
    monkeypatch.setattr(pipeline.Checker, "run", run)
    monkeypatch.setattr(pipeline, "lower", lower)
    monkeypatch.setattr(pipeline, "link", link)
    program = pipeline.compile_source(SPECS / "mnist1d_fitnet.trick")
    assert parsed == Counter({"mnist1d_fitnet.trick": 1, "mnist1d_cnn.trick": 1})
    assert checked == lowered == linked == Counter({"mnist1d_fitnet": 1, "mnist1d_cnn": 1})
    teacher = program.imports["teacher"]
    assert teacher.graph.name == "mnist1d_cnn" and teacher.plan.epochs == 40
    assert program.plan.imports[0].content_hash == teacher.content_hash


def test_a_program_carries_what_the_runtime_needs_and_no_ast():
    program = pipeline.compile_source(SPECS / "mnist1d_cnn.trick", overrides=["train.batch=60"])
    assert program.text == (SPECS / "mnist1d_cnn.trick").read_text()
    assert not hasattr(program, "spec")
    assert program.plan.batch == 60 and program.plan.batch_span.file == "--set #1"
    diagnostic = program.diagnostic(program.plan.batch_span, "batch 60 does not divide")
    assert diagnostic.source_line == "train { batch 60 }"


def test_the_default_batch_is_reported_at_the_train_block():
    text = "spec t\ndata { source digits }\nmodel {\n    input [64]\n    dense 10\n}\ntrain {\n    epochs 2\n}\n"
    program = pipeline.compile_source(text)
    assert program.plan.batch_span is None and program.plan.train_span.line == 7
    from trick.runtime.launch import check_batch

    with pytest.raises(trick.TrickError) as raised:
        check_batch(program, 5)
    d = raised.value.diagnostics[0]
    assert (d.span.line, d.span.column) == (7, 1)
    assert d.message.startswith("batch 32 (the default) does not divide among 5 processes")


def test_every_layer_and_augmentation_is_defined_by_its_entry():
    for entry in R.LAYERS:
        assert entry.shape is not None and entry.build is not None and entry.role in ("weights", "norm", "activation", "noise", "reshape"), entry.name
    assert R.WEIGHT_LAYERS == ("dense", "conv", "gru", "lstm")
    assert R.NORM_LAYERS == ("batchnorm", "layernorm", "instancenorm", "groupnorm")
    for entry in R.AUGMENTATIONS:
        assert entry.rank is None or entry.rank[0] in (2, 3), entry.name


def test_every_registered_check_says_what_it_checks():
    from trick.compiler.checks import CHECKS

    assert {"nesterov_needs_momentum", "warmup_is_shorter_than_training", "transfer_names_its_layers"} <= {c.__name__ for c in CHECKS}
    for check in CHECKS:
        assert check.__doc__.strip().count("\n") == 0, check.__name__


def test_a_construction_failure_is_an_error_at_the_layer(monkeypatch):
    from torch import nn

    class Failing(nn.Module):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("cannot allocate")

    program = trick.compile("spec t\ndata { source digits }\nmodel {\n    input [64]\n    dense 64\n    dense 10\n}\n")
    monkeypatch.setattr(nn, "Linear", Failing)
    with pytest.raises(trick.TrickError) as raised:
        program.model()
    d = raised.value.diagnostics[0]
    assert (d.span.line, d.span.column) == (5, 5)
    assert d.message.startswith("cannot build dense (nn.Linear): ")


def test_compiled_models_pickle():
    model = trick.compile(SPECS / "digits_multitask.trick").model(seed=0)
    again = pickle.loads(pickle.dumps(model))
    assert type(again).__name__ == "TrickModel"
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), again.state_dict().values()))
