"""`show_value`: the one printer of AST values, for `trickc fmt` and for messages.

The property: for any value the language can write, parsing what `show_value` prints gives
the value back, and printing that again gives the same text.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trick
from trick.compiler.schema import found, show
from trick.dsl import ast
from trick.dsl.diagnostics import TrickSyntaxError
from trick.dsl.format import format_text
from trick.dsl.parser import parse_text
from trick.dsl.show import show_value
from trick.dsl.transform import RESERVED_WORDS


def parse_value(text: str) -> ast.Value:
    """The value of `text` written as an option (`x v=TEXT`)."""
    (line,) = parse_text(f"x v={text}\n").items
    return line.chain[0].options[0].value


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in RESERVED_WORDS)
# A spec may hold any character but NUL (a NUL makes it binary text); `show_value` escapes
# the newlines, tabs, quotes and backslashes, and writes the rest (a carriage return too) as is.
strings = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
numbers = st.builds(
    ast.Number,
    st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False),
)
scalars = (
    numbers
    | st.builds(ast.String, strings)
    | st.builds(ast.Bool, st.booleans())
    | st.builds(ast.Ref, st.lists(names, min_size=1, max_size=3).map(tuple))
    | st.builds(ast.Range, numbers, numbers)
)
values = st.recursive(scalars, lambda inner: st.builds(ast.List, st.lists(inner, max_size=4).map(tuple)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(values)
def test_what_show_prints_parses_back_to_the_value(value):
    text = show_value(value)
    parsed = parse_value(text)
    assert parsed == value
    assert show_value(parsed) == text  # the spelling of numbers is kept


@pytest.mark.parametrize(
    "value, text",
    [
        (ast.String('a "b"\\c\nd\te'), r'"a \"b\"\\c\nd\te"'),
        (ast.String(""), '""'),
        (ast.Number(3), "3"),
        (ast.Number(-0.5), "-0.5"),
        (ast.Number(0.001, text="1e-3"), "1e-3"),
        (ast.Bool(False), "false"),
        (ast.Ref(("teacher", "block2")), "teacher.block2"),
        (ast.List((ast.Number(1), ast.List(()), ast.String("x"))), '[1, [], "x"]'),
        (ast.Range(ast.Number(-1), ast.Number(2.5)), "-1..2.5"),
    ],
)
def test_values_are_spelled_as_the_formatter_writes_them(value, text):
    assert show_value(value) == text
    assert show(value) == text
    assert format_text(f"x v={text}\n") == f"x v={text}\n"


def test_a_string_is_read_as_written():
    assert parse_value(r'"a\nb\tc\"d\\ef"') == ast.String('a\nb\tc"d\\ef')


def test_an_unknown_escape_is_an_error_naming_the_escapes():
    with pytest.raises(TrickSyntaxError) as caught:
        parse_value(r'"x\q.csv"')
    (d,) = caught.value.diagnostics
    assert d.message == r"unknown escape '\q' in a string; the escapes are \", \\, \n and \t (write \\ for a backslash)"
    assert (d.line, d.column, d.span.end_column) == (1, 7, 9)


def test_what_is_not_a_value_is_refused():
    with pytest.raises(TypeError):
        show_value(ast.Name("label"))


def test_messages_print_a_string_with_a_newline_escaped_on_one_line():
    assert found(ast.String("x\ny")) == r'"x\ny"'
    assert found(ast.Ref(("relu",))) == "'relu'"
    spec = 'spec t\ndata { source mnist1d }\nmodel { input [1, 40]; dense 10 }\ntrain { epochs "two\\nthree\\tfour" }\n'
    (diagnostic,) = trick.check(spec)
    assert diagnostic.message == r'epochs: expected an integer >= 1, found "two\nthree\tfour"'
    assert "\n" not in diagnostic.message and "\t" not in diagnostic.message
