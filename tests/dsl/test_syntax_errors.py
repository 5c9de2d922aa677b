"""Syntax errors: whole messages, in words, at the right place; every error of a file."""

import pytest

import trick
from trick.dsl.diagnostics import TrickError, TrickSyntaxError
from trick.dsl.parser import MAX_BYTES, decode_source, parse_text


def rendered(source: str) -> str:
    with pytest.raises(TrickSyntaxError) as info:
        parse_text(source, "t.trick")
    return str(info.value)


CASES = {
    "block_left_open": (
        "spec t\nmodel {\n    input [2]\n    dense 2\ntrain {\n    epochs 1\n}\n",
        """\
t.trick:5:1: error: expected '}' before 'train': the model block (line 2) is never closed, and a train block cannot go inside it
    train {
    ^~~~~""",
    ),
    "string_never_closed_before_a_brace": (
        'spec t\ndata { source file "x.csv }\nmodel { input [2]; dense 2 }\n',
        """\
t.trick:2:20: error: this string is never closed; expected '"' before the end of the line
    data { source file "x.csv }
                       ^""",
    ),
    "string_never_closed_in_a_block": (
        'spec t\ndata {\n    source file "x.csv }\n}\n',
        """\
t.trick:3:17: error: this string is never closed; expected '"' before the end of the line
        source file "x.csv }
                    ^""",
    ),
    "brace_never_closed_after_a_repair": (
        'spec t\ndata { source file "x.csv',
        """\
t.trick:2:6: error: this '{' is never closed; expected '}' before the end of the file
    data { source file "x.csv
         ^
t.trick:2:20: error: this string is never closed; expected '"' before the end of the line
    data { source file "x.csv
                       ^""",
    ),
    "unknown_escape": (
        'spec t\ndata { source file "C:\\data\\x.csv" }\n',
        """\
t.trick:2:23: error: unknown escape '\\d' in a string; the escapes are \\", \\\\, \\n and \\t (write \\\\ for a backslash)
    data { source file "C:\\data\\x.csv" }
                          ^~""",
    ),
    "number_too_large": (
        "spec t\nmodel { dense 1e999 }\n",
        """\
t.trick:2:15: error: the number 1e999 is too large; numbers in a spec are at most about 1.8e308 (the largest 64-bit float)
    model { dense 1e999 }
                  ^~~~~""",
    ),
    "unclosed_block": (
        "spec t\nmodel {\n    dense 10\n",
        """\
t.trick:2:7: error: this '{' is never closed; expected '}' before the end of the file
    model {
          ^""",
    ),
    "unmatched_brace": (
        "spec t\nmodel {\n    dense 10\n}\n}\n",
        """\
t.trick:5:1: error: unmatched '}': there is no block to close here
    }
    ^""",
    ),
    "missing_value": (
        "spec t\nmodel {\n    conv 32 k=\n}\n",
        """\
t.trick:3:15: error: expected a value after 'k=', found the end of the line
        conv 32 k=
                  ^""",
    ),
    "dangling_arrow": (
        "spec t\nmodel {\n    dense 10 ->\n}\n",
        """\
t.trick:3:16: error: expected a layer after '->', found the end of the line
        dense 10 ->
                   ^""",
    ),
    "clause_starts_with_number": (
        "spec t\nmodel {\n    32 conv\n}\n",
        """\
t.trick:3:5: error: expected a clause name, found the number 32
        32 conv
        ^~""",
    ),
    "unterminated_string": (
        'spec t\nimport "abc as y\n',
        """\
t.trick:2:8: error: this string is never closed; expected '"' before the end of the line
    import "abc as y
           ^""",
    ),
    "bad_character": (
        "spec t\nmodel {\n    dense 10 @ 3\n}\n",
        """\
t.trick:3:14: error: unexpected character '@'
        dense 10 @ 3
                 ^""",
    ),
    "empty_label": (
        "spec t\nmodel {\n    a:\n}\n",
        """\
t.trick:3:7: error: expected a layer after the label 'a:', found the end of the line
        a:
          ^""",
    ),
    "half_range": (
        "spec t\naugment { color brightness=0.5.. }\n",
        """\
t.trick:2:34: error: expected a number after '..', found '}'
    augment { color brightness=0.5.. }
                                     ^""",
    ),
    "unclosed_list": (
        "spec t\nmodel {\n    input [1, 40\n    dense 10\n}\n",
        """\
t.trick:3:17: error: expected ',' or ']', found the end of the line
        input [1, 40
                    ^""",
    ),
    "crlf_and_tabs": (
        "spec t\r\nmodel {\r\n\tdense 10 k=\r\n}\r\n",
        """\
t.trick:3:14: error: expected a value after 'k=', found the end of the line
    \tdense 10 k=
    \t           ^""",
    ),
    "expression": (
        "spec t\ndata { target a = label + }\n",
        """\
t.trick:2:27: error: expected a name, a number or '(', found '}'
    data { target a = label + }
                              ^""",
    ),
    "assignment": (
        "spec t\ntrain {\n    epochs = 3\n}\n",
        """\
t.trick:3:12: error: unexpected '=' after 'epochs': a clause takes its arguments without '='; write 'epochs 3'
        epochs = 3
               ^""",
    ),
    "spec_without_name": (
        "spec\n",
        """\
t.trick:1:5: error: expected a name, found the end of the line
    spec
        ^""",
    ),
    "reserved_label": (
        "spec t\nmodel {\n    target: dense 10\n}\n",
        """\
t.trick:3:11: error: 'target' is a reserved word and cannot be a label
        target: dense 10
              ^""",
    ),
    "import_in_block": (
        'spec t\nmodel {\n    import "a.trick" as a\n}\n',
        """\
t.trick:3:5: error: 'import' goes at the top of the file, not inside a block
        import "a.trick" as a
        ^~~~~~""",
    ),
    "reserved_clause_after_brace": (
        "spec t\nmodel {spec a\n}\n",
        """\
t.trick:2:8: error: 'spec' is a reserved word and cannot name a clause here
    model {spec a
           ^~~~""",
    ),
    "non_ascii": (
        "spec t\nmodel { dense 10 → relu }\n",
        """\
t.trick:2:18: error: unexpected character '→'
    model { dense 10 → relu }
                     ^""",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_whole_message(name):
    source, expected = CASES[name]
    assert rendered(source) == expected


def test_every_independent_error_is_reported_in_line_order():
    source = "spec t\nmodel {\n    conv 32 k=\n    dense 10 ->\n    relu $\n}\ntrain {\n    epochs = 3\n}\n"
    with pytest.raises(TrickSyntaxError) as info:
        parse_text(source, "t.trick")
    assert [(d.line, d.column) for d in info.value.diagnostics] == [(3, 15), (4, 16), (5, 10), (8, 12)]
    assert [d.message for d in info.value.diagnostics] == [
        "expected a value after 'k=', found the end of the line",
        "expected a layer after '->', found the end of the line",
        "unexpected character '$'",
        "unexpected '=' after 'epochs': a clause takes its arguments without '='; write 'epochs 3'",
    ]


def test_an_error_inside_a_block_keeps_the_blocks_after_it():
    source = "spec t\nmodel { conv 32 k= }\ntrain {\n    epochs 3 ->\n}\n"
    with pytest.raises(TrickSyntaxError) as info:
        parse_text(source, "t.trick")
    assert [d.line for d in info.value.diagnostics] == [2, 4]


def test_errors_stop_after_twenty():
    source = "spec t\nmodel {\n" + "    dense @\n" * 50 + "}\n"
    with pytest.raises(TrickSyntaxError) as info:
        parse_text(source)
    assert len(info.value.diagnostics) == 21
    assert info.value.diagnostics[-1].message == "too many errors; stopping here"


def test_messages_never_name_tokens():
    sources = ["spec t\nmodel {", "spec t\n}", "spec t\nmodel { a b c = }", "import x", "spec t\ndata { target = 1 }", "[", "spec t\n{ }"]
    for source in sources:
        with pytest.raises(TrickSyntaxError) as info:
            parse_text(source)
        for d in info.value.diagnostics:
            for token_name in ("RBRACE", "LBRACE", "NAME", "_NL", "$END", "LSQB", "EQUAL", "__ANON"):
                assert token_name not in d.message, d.message


@pytest.mark.parametrize(
    "data, message",
    [
        (b"spec t\nmodel { dense 10 }\n\xff\xfe\n", "t.trick:3:1: error: the file is not valid UTF-8 (byte 0xff)"),
        (b"spec t\n\x00\x01binary", "t.trick:2:1: error: this is a binary file, not a .trick spec (it contains NUL bytes)"),
        (b"spec \xc3\xa9t\xc3\x28", "t.trick:1:8: error: the file is not valid UTF-8 (byte 0xc3)"),
    ],
)
def test_bytes_that_are_not_a_spec(data, message):
    with pytest.raises(TrickSyntaxError) as info:
        decode_source(data, "t.trick")
    assert str(info.value) == message


def test_a_huge_file_is_refused_not_parsed():
    data = b"# x\n" * (MAX_BYTES // 4 + 1)
    with pytest.raises(TrickSyntaxError) as info:
        decode_source(data, "t.trick")
    assert info.value.diagnostic.message == f"the file is too large ({len(data):,} bytes; a spec may have at most {MAX_BYTES:,})"


@pytest.mark.parametrize(
    "source, message",
    [
        ("spec t\nmodel { input " + "[" * 60, "blocks, lists and parentheses are nested too deeply (more than 50 levels)"),
        ("spec t\n" + "model { " * 60, "blocks, lists and parentheses are nested too deeply (more than 50 levels)"),
        ("spec t\ndata { target a = label" + " + 1" * 150 + " }", "this expression is too long (more than 100 operations deep)"),
        ("spec t\ndata { target a = " + "-" * 150 + "label }", "this expression is too long (more than 100 operations deep)"),
    ],
)
def test_deep_input_is_an_error_not_a_crash(source, message):
    with pytest.raises(TrickSyntaxError) as info:
        parse_text(source)
    assert info.value.diagnostic.message == message


def test_a_file_that_cannot_be_read(tmp_path):
    with pytest.raises(TrickError) as info:
        trick.parse(tmp_path / "missing.trick")
    assert info.value.diagnostic.message.startswith("cannot read the file: ")
    assert info.value.diagnostic.line == 1


def test_errors_survive_pickling_for_worker_processes():
    # multiprocessing sends a worker's exception to its parent pickled.
    import pickle

    from trick.dsl.diagnostics import TrickRuntimeError, TrickUsageError

    with pytest.raises(TrickError) as caught:
        parse_text("spec s\nmodel {\n  input [2\n}\n", "bad.trick")
    for error in (caught.value, TrickUsageError("no such run"), TrickRuntimeError(caught.value.diagnostics)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.diagnostics == error.diagnostics


def test_the_block_names_are_the_registrys():
    from trick.compiler import clauses as R
    from trick.dsl.syntax_errors import BLOCK_NAMES

    assert BLOCK_NAMES == set(R.BLOCKS.names())


@pytest.mark.parametrize("digits", [400, 4301, 100_000])
def test_an_integer_of_any_length_is_an_error_not_a_crash(digits):
    (d,) = trick.check("spec t\nmodel { dense " + "7" * digits + " }\n")[:1]
    assert (d.line, d.column) == (2, 15) and "is too large" in d.message


def test_a_long_run_of_zeros_is_a_small_number():
    program = parse_text("spec t\nmodel { dense " + "0" * 100_000 + "7 }\n")
    assert program.items[1].chain[0].body[0].chain[0].args[0].value == 7


def test_a_number_in_an_expression_beyond_the_float_range_is_an_error():
    with pytest.raises(TrickSyntaxError) as info:
        parse_text("spec t\ndata { target big = label * 1" + "0" * 400 + " }\n")
    assert info.value.diagnostic.message.startswith("the number 100000000000... (401 characters) is too large")
