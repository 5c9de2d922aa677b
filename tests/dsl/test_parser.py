"""The parser: every construct of the language becomes the right AST node, with its span."""

from pathlib import Path

import pytest

import trick
from trick.dsl import ast
from trick.dsl.diagnostics import Span
from trick.dsl.parser import parse_text

from ..conftest import SPECS


def body(text: str):
    """The statements of the only block of `text`."""
    program = parse_text(f"spec t\nblock {{\n{text}\n}}\n")
    return program.blocks[0].body


def clause(text: str) -> ast.Clause:
    (line,) = body(text)
    (only,) = line.chain
    return only


def test_header_imports_and_blocks():
    program = parse_text('spec mnist1d_cnn\nimport "../a b.trick" as base\n\ndata { source mnist1d }\nmodel {\n}\n', "x.trick")
    assert program.name == "mnist1d_cnn"
    assert program.imports == (ast.Import("../a b.trick", "base"),)
    assert [b.name for b in program.blocks] == ["data", "model"]
    assert program.block("model").body == ()
    assert program.imports[0].path_span == Span("x.trick", 2, 8, 2, 22)
    assert program.imports[0].alias_span == Span("x.trick", 2, 26, 2, 30)


@pytest.mark.parametrize(
    "source, value",
    [
        ("40", 40),
        ("-1", -1),
        ("0.5", 0.5),
        (".5", 0.5),
        ("1e-4", 1e-4),
        ("2E3", 2000.0),
        ("-0.1", -0.1),
        ("1.5e+2", 150.0),
    ],
)
def test_numbers(source, value):
    (number,) = clause(f"c {source}").args
    assert isinstance(number, ast.Number)
    assert number.value == value and type(number.value) is type(value)
    assert number.text == source


def test_values_of_every_kind():
    c = clause('c "a \\"q\\" \\\\ b" true false relu val.loss [1, 40] [[1], []] 0.5..1.5 -0.1..0.1 16..24')
    assert c.args == (
        ast.String('a "q" \\ b'),
        ast.Bool(True),
        ast.Bool(False),
        ast.Ref(("relu",)),
        ast.Ref(("val", "loss")),
        ast.List((ast.Number(1), ast.Number(40))),
        ast.List((ast.List((ast.Number(1),)), ast.List(()))),
        ast.Range(ast.Number(0.5), ast.Number(1.5)),
        ast.Range(ast.Number(-0.1), ast.Number(0.1)),
        ast.Range(ast.Number(16), ast.Number(24)),
    )


def test_positional_and_named_arguments():
    c = clause("dropout 0.5 mode=scale_at_test")
    assert c.name == "dropout"
    assert c.args == (ast.Number(0.5),)
    assert c.options == (ast.Option("mode", ast.Ref(("scale_at_test",))),)
    assert c.option("mode").name_span.column == 13


def test_lists_may_span_lines_and_end_with_a_comma():
    c = clause("classes [\n    5, 6,\n    7,\n]")
    assert c.args == (ast.List((ast.Number(5), ast.Number(6), ast.Number(7))),)


def test_chain_and_label():
    (line,) = body("block2: conv 64 k=3 pad=1 -> batchnorm -> relu")
    assert line.label == "block2"
    assert [c.name for c in line.chain] == ["conv", "batchnorm", "relu"]
    assert line.label_span.column == 1 and line.label_span.end_column == 7
    assert line.chain[1].span.column == 30


def test_nested_blocks_with_trailing_options():
    (repeat,) = body("repeat 4 { conv 16 k=3 pad=1 -> batchnorm -> relu }")[0].chain
    assert repeat.args == (ast.Number(4),)
    assert [c.name for c in repeat.body[0].chain] == ["conv", "batchnorm", "relu"]
    (head,) = body("head label  { dense 10 } loss=cross_entropy weight=1.0")[0].chain
    assert head.args == (ast.Ref(("label",)),)
    assert [o.name for o in head.options] == ["loss", "weight"]
    assert head.body[0].chain[0] == ast.Clause("dense", (ast.Number(10),))
    (residual,) = body("residual {\n  conv 16 k=3 pad=1\n  relu\n}")[0].chain
    assert [s.chain[0].name for s in residual.body] == ["conv", "relu"]


def test_semicolons_and_one_line_blocks():
    program = parse_text("spec t; data { source mnist1d; validation 0.1 }; model { }")
    assert [c.chain[0].name for c in program.block("data").body] == ["source", "validation"]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("label % 2", ast.BinOp("%", ast.Name("label"), ast.Number(2))),
        ("label >= 5", ast.BinOp(">=", ast.Name("label"), ast.Number(5))),
        (
            "1 + 2 * label",
            ast.BinOp("+", ast.Number(1), ast.BinOp("*", ast.Number(2), ast.Name("label"))),
        ),
        (
            "(1 + 2) * label",
            ast.BinOp("*", ast.BinOp("+", ast.Number(1), ast.Number(2)), ast.Name("label")),
        ),
        ("label - 1 - 2", ast.BinOp("-", ast.BinOp("-", ast.Name("label"), ast.Number(1)), ast.Number(2))),
        ("-label", ast.Neg(ast.Name("label"))),
        ("label / 2.5 != 1", ast.BinOp("!=", ast.BinOp("/", ast.Name("label"), ast.Number(2.5)), ast.Number(1))),
        ("label\n  % 2" if False else "(label\n % 2)", ast.BinOp("%", ast.Name("label"), ast.Number(2))),
    ],
)
def test_target_expressions(source, expected):
    (target,) = body(f"target t = {source}")
    assert isinstance(target, ast.Target)
    assert target.name == "t"
    assert target.expr == expected


def test_comments_are_collected_and_ignored():
    program = parse_text('spec t  # name\n# own line\ndata { source "a#b" }  # trailing\n')
    assert [c.text for c in program.comments] == ["# name", "# own line", "# trailing"]
    assert program.comments[1].span.line == 2
    assert program.block("data").body[0].chain[0].args == (ast.String("a#b"),)


def test_crlf_tabs_and_bom_parse_like_plain_text():
    plain = parse_text("spec t\ndata {\n    source mnist1d\n}\n")
    assert parse_text("\ufeffspec t\r\ndata {\r\n\tsource\tmnist1d\r\n}\r\n") == plain


def test_spans_cover_their_node():
    program = parse_text("spec t\nmodel {\n    conv 32 k=5 pad=2 -> relu\n}\n", "m.trick")
    conv = program.block("model").body[0].chain[0]
    assert conv.span == Span("m.trick", 3, 5, 3, 22)
    assert conv.name_span == Span("m.trick", 3, 5, 3, 9)
    assert conv.args[0].span == Span("m.trick", 3, 10, 3, 12)
    assert conv.options[1].value.span == Span("m.trick", 3, 21, 3, 22)
    assert program.block("model").span == Span("m.trick", 2, 1, 4, 2)


def test_equality_ignores_spans_and_layout():
    a = parse_text("spec t\nmodel { input [1,40]; conv 32 k=5 -> relu }")
    b = parse_text("spec t\n\n\nmodel {\n  input [ 1 , 40 ]\n  conv 32   k=5->relu\n}\n")
    assert a == b
    assert a != parse_text("spec t\nmodel { input [1,40]; conv 32 k=3 -> relu }")


def test_empty_and_comment_only_files_parse_to_nothing():
    assert parse_text("").items == ()
    assert parse_text("\n\n  # nothing here\n").items == ()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_spec_parses(path):
    program = trick.parse(path)
    assert program.name == path.stem
    assert program.file == str(path)


def test_parse_takes_text_or_path(tmp_path):
    spec = tmp_path / "t.trick"
    spec.write_text("spec t\n")
    assert trick.parse(spec).name == "t"
    assert trick.parse(str(spec)).name == "t"
    assert trick.parse("spec t\n").name == "t"


def test_the_parser_tables_are_cached_and_a_damaged_cache_is_rebuilt(tmp_path):
    import os
    import subprocess
    import sys

    spec = Path(__file__).resolve().parents[2] / "specs" / "mnist1d_cnn.trick"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = lambda: subprocess.run([sys.executable, "-m", "trick", "check", str(spec)], capture_output=True, text=True, env=env, timeout=120)  # noqa: E731
    first = run()
    [cache] = list(tmp_path.glob(".lark_cache_*"))
    cache.write_bytes(b"not a cache\n" + os.urandom(64))
    again = run()
    assert first.returncode == again.returncode == 0 and first.stdout == again.stdout
    assert again.stderr == ""
