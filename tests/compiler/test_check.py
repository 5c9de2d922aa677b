"""Semantic checks: whole messages for each kind of mistake, and the diagnostics as data.

Each fixture `fixtures/check/NAME.trick` has its complete expected output beside it in
`NAME.expected` (every diagnostic, rendered with its source line and caret).
"""

from pathlib import Path

import pytest

import trick
from trick.compiler.pipeline import check_source

from ..conftest import SPECS

FIXTURES = Path(__file__).parent / "fixtures" / "check"
CASES = sorted(p.stem for p in FIXTURES.glob("*.trick"))


@pytest.mark.parametrize("name", CASES)
def test_whole_messages(name, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    result = check_source(f"{name}.trick")
    rendered = "\n".join(d.render() for d in result.diagnostics) + "\n"
    assert rendered == (FIXTURES / f"{name}.expected").read_text()


def test_there_are_fixtures_for_the_main_kinds_of_mistake():
    assert {"unknown_layer", "unknown_block", "unknown_option", "unknown_value", "wrong_type", "out_of_range", "empty_range", "duplicate_label", "duplicate_head", "not_imported", "missing_import", "hint_label"} <= set(CASES)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_spec_is_clean(path):
    assert trick.check(path) == []


def test_diagnostics_are_data():
    (d,) = trick.check("spec t\ndata { source digits }\nmodel {\n    input [64]\n    dense 10 -> bachnorm\n}\n")
    assert (d.path, d.line, d.column, d.severity) == ("<string>", 5, 17, "error")
    assert d.message == "unknown layer 'bachnorm'; did you mean 'batchnorm'?"
    assert d.suggestion == "batchnorm"
    assert d.to_json() == {
        "path": "<string>",
        "line": 5,
        "column": 17,
        "end_line": 5,
        "end_column": 25,
        "severity": "error",
        "message": "unknown layer 'bachnorm'; did you mean 'batchnorm'?",
        "suggestion": "batchnorm",
    }


def test_syntax_errors_come_back_as_diagnostics_too():
    diagnostics = trick.check("spec t\nmodel {\n    conv 32 k=\n")
    assert [(d.line, d.message) for d in diagnostics] == [
        (2, "this '{' is never closed; expected '}' before the end of the file"),
        (3, "expected a value after 'k=', found the end of the line"),
    ]


def test_independent_errors_are_all_reported_in_line_order():
    diagnostics = trick.check(
        "spec t\ndata { sorce digits }\nmodel {\n    input [64]\n    dense 10 -> bachnorm\n    dropout 2\n}\ntrain { epochs 0 }\n"
    )
    assert [(d.line, d.column) for d in diagnostics] == [(2, 8), (5, 17), (6, 13), (8, 16)]
    assert [d.suggestion for d in diagnostics] == ["source", "batchnorm", None, None]


def test_values_are_bound_with_defaults():
    result = check_source(SPECS[[p.name for p in SPECS].index("mnist1d_cnn.trick")])
    spec = result.spec
    assert result.ok
    optimizer = spec.clause("train", "optimizer")
    assert optimizer.kind == "adamw"
    assert optimizer.values == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "weight_decay": 1e-4}
    assert optimizer.given == {"lr", "weight_decay"}
    conv = spec.model[1].bound
    assert conv.values == {"channels": 32, "k": 5, "stride": 1, "pad": 2, "bias": True, "dropconnect": 0.0}
    assert [item.label for item in spec.model if item.label] == ["block2", "features"]


def test_imports_resolve_relative_to_the_importing_file(in_tmp):
    (in_tmp / "sub").mkdir()
    (in_tmp / "sub" / "base.trick").write_text("spec base\ndata { source digits }\nmodel {\n    input [64]\n    a: dense 10\n}\n")
    (in_tmp / "sub" / "top.trick").write_text(
        'spec top\nimport "base.trick" as base\ndata { source digits }\nmodel {\n    input [64]\n    a: dense 10\n}\ntransfer { from base labels=[a] }\n'
    )
    assert trick.check(in_tmp / "sub" / "top.trick") == []


def test_an_import_cycle_is_an_error_at_the_import_line(in_tmp):
    body = "data { source digits }\nmodel {\n    input [64]\n    dense 10\n}\n"
    (in_tmp / "a.trick").write_text('spec a\nimport "b.trick" as b\n' + body)
    (in_tmp / "b.trick").write_text('spec b\nimport "a.trick" as a\n' + body)
    errors = [d for d in trick.check("a.trick") if d.severity == "error"]
    assert [(d.path, d.line, d.column, d.message) for d in errors] == [("b.trick", 2, 8, "import cycle: a.trick -> b.trick -> a.trick")]


def test_errors_in_an_imported_file_point_into_that_file(in_tmp):
    (in_tmp / "base.trick").write_text("spec base\ndata { source digits }\nmodel {\n    input [64]\n    dense 10 k=\n}\n")
    (in_tmp / "top.trick").write_text('spec top\nimport "base.trick" as base\ndata { source digits }\nmodel {\n    input [64]\n    dense 10\n}\ntransfer { from base layers=1 }\n')
    diagnostics = trick.check("top.trick")
    assert [(d.path, d.line, d.message) for d in diagnostics] == [
        ("top.trick", 2, "the imported spec 'base.trick' has errors"),
        ("base.trick", 5, "expected a value after 'k=', found the end of the line"),
    ]


def test_a_diamond_of_imports_is_checked_once(in_tmp):
    body = "data { source digits }\nmodel {\n    input [64]\n    dense 10 -> bachnorm\n}\n"
    (in_tmp / "base.trick").write_text("spec base\n" + body)
    (in_tmp / "top.trick").write_text(
        'spec top\nimport "base.trick" as a\nimport "./base.trick" as b\ndata { source digits }\nmodel {\n    input [64]\n    dense 10\n}\ntransfer { from a layers=1 }\ndistill { teacher b }\n'
    )
    messages = [(d.path, d.message) for d in trick.check("top.trick")]
    assert messages.count(("base.trick", "unknown layer 'bachnorm'; did you mean 'batchnorm'?")) == 1
