"""Fuzz tests for the front end: no input may crash it.

The property: parsing any text either succeeds or raises a `TrickError`; `trick.check`
never raises at all (it returns a list of diagnostics); `trick.format` either raises a
`TrickError` (the text does not parse) or returns text that formats to itself and parses
to the same AST; `decode_source` + `parse_text` on any bytes succeed or raise `TrickError`.

Inputs come from three places: programs generated from the grammar itself
(`hypothesis.extra.lark.from_lark`), random token- and byte-level mutations of the example
specs, and fixed lists of nasty inputs (huge, deeply nested, badly encoded, ...), layouts
that probe the formatter, and bad paths and import graphs (the entry points take paths too).

The whole file runs in well under a minute; `TRICK_FUZZ_SCALE=20 pytest tests/dsl/test_fuzz.py`
runs twenty times as many generated examples, for a longer hunt.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import trick
from trick import Diagnostic, TrickError
from trick.dsl.parser import decode_source, parse_text

ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = ROOT / "specs"
SPEC_PATHS = sorted(SPECS_DIR.glob("*.trick"))
SPEC_TEXTS = [p.read_text(encoding="utf-8") for p in SPEC_PATHS]

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example]


_SCALE = float(os.environ.get("TRICK_FUZZ_SCALE", "1"))


def _fuzz(max_examples: int) -> settings:
    return settings(max_examples=max(1, int(max_examples * _SCALE)), deadline=None, suppress_health_check=_HEALTH)


@contextlib.contextmanager
def _in_specs_dir():
    """Run with the specs folder as working directory, so text imports like
    `import "digits_mlp.trick" as base` resolve and the imported file is checked too."""
    old = os.getcwd()
    os.chdir(SPECS_DIR)
    try:
        yield
    finally:
        os.chdir(old)


def _as_text(text: str) -> str:
    """Text that `trick.parse`/`trick.check` read as spec text, never as a path."""
    return text if "\n" in text else text + "\n"


def _exercise(text: str) -> bool:
    """Assert the property on one text; return whether it parsed."""
    text = _as_text(text)
    try:
        program = trick.parse(text)
    except TrickError as err:
        assert err.diagnostics, "a TrickError without diagnostics"
        str(err)  # rendering the error must not fail either
        program = None

    with _in_specs_dir():
        diagnostics = trick.check(text)
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert isinstance(d, Diagnostic)
        assert d.severity in ("error", "warning")
        d.render()
        d.to_json()

    if program is None:
        assert any(d.severity == "error" for d in diagnostics), "parse failed but check reported no error"
        with pytest.raises(TrickError):
            trick.format(text)
        return False

    formatted = trick.format(text)
    assert isinstance(formatted, str)
    try:
        reparsed = trick.parse(_as_text(formatted))
    except TrickError as err:
        raise AssertionError(f"the formatted text does not parse:\n{err}\n--- input\n{text}\n--- formatted\n{formatted}") from None
    assert reparsed == program, f"formatting changed the AST:\n--- input\n{text}\n--- formatted\n{formatted}"
    again = trick.format(_as_text(formatted))
    assert again == formatted, f"formatting is not idempotent:\n--- once\n{formatted}\n--- twice\n{again}"
    return True


def _exercise_bytes(data: bytes) -> None:
    try:
        text = decode_source(data, "<fuzz>")
    except TrickError as err:
        assert err.diagnostics
        str(err)
        return
    assert isinstance(text, str)
    try:
        parse_text(text, "<fuzz>")
    except TrickError as err:
        assert err.diagnostics
        str(err)
    _exercise(text)


# ---- 1. programs generated from the grammar ----------------------------------------------------

KEYWORDS = {"spec", "import", "as", "target", "true", "false"}


def _vocabulary() -> list[str]:
    """Names the checker knows (so generated programs get past 'unknown block' and reach
    the deeper checks), plus every identifier of the example specs."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "\n".join(re.sub(r'"[^"\n]*"|#[^\n]*', " ", t) for t in SPEC_TEXTS)))
    names |= {"label", "global", "same", "repeat", "residual", "head", "of", "val", "loss", "accuracy"}
    try:
        from trick.compiler import clauses as R
        from trick.compiler.schema import Choice

        for reg in R.ALL_REGISTRIES:
            for schema in reg:
                names.add(schema.name)
                for param in schema.params:
                    names.add(param.name)
                    if isinstance(param.type, Choice):
                        names.update(param.type.options)
    except Exception:  # the registry is someone else's moving target; the specs are enough
        pass
    return sorted(names - KEYWORDS)


VOCAB = _vocabulary()


def _padded(strategy):
    return strategy.map(lambda s: f" {s} ")


_NAME = st.one_of(
    st.sampled_from(VOCAB),
    st.sampled_from(VOCAB),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in KEYWORDS),
)
# Now and then a keyword where a name goes (whole programs only): the contextual lexer
# reads some keywords as names in some places only, and the formatter must not move them
# to where it does not.
_NAME_OR_KEYWORD = st.integers(0, 59).flatmap(lambda n: st.sampled_from(sorted(KEYWORDS)) if n == 37 else _NAME)
_INT = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "4", "5", "8", "10", "16", "32", "40", "64", "128", "007", "99999999999999999999999999"]),
    st.from_regex(r"[0-9]{1,5}", fullmatch=True),
)
_FLOAT = st.one_of(
    st.sampled_from(["0.1", "0.5", ".5", "1.0", "0.0", "1e-3", "1e-4", "1E5", "2.5e+2", "1e999", "1e-999", "0.9999999999999999999"]),
    st.from_regex(r"([0-9]{1,3}\.[0-9]{1,3}|\.[0-9]{1,3})([eE][+-]?[0-9]{1,3})?|[0-9]{1,3}[eE][+-]?[0-9]{1,3}", fullmatch=True),
)
_STRING = st.one_of(
    st.sampled_from(['"digits_mlp.trick"', '"mnist1d_cnn.trick"', '"missing.trick"', '"."', '""', '"x.npz"', '"data.csv"', '"a\\"b"', '"\\\\"', '"tab\\there"']),
    st.from_regex(r'"([^"\\\n\x00]|\\[^\n\x00]){0,12}"', fullmatch=True),
)
_NL = st.sampled_from(["\n", "\n", "\n", "\r\n", "  # a comment\n", "\n\n", "\n   \n"])

GRAMMAR_EXPLICIT = {
    "NAME": _padded(_NAME),
    "INT": _padded(_INT),
    "FLOAT": _padded(_FLOAT),
    "STRING": _padded(_STRING),
    "_NL": _NL,
    # Ignored terminals are sprinkled between tokens; a comment there would swallow the
    # rest of its line, so it becomes a space (comments come in through _NL instead).
    "COMMENT": st.just(" "),
    "SPEC": st.just(" spec "),
    "IMPORT": st.just(" import "),
    "AS": st.just(" as "),
    "TARGET": st.just(" target "),
    "TRUE": st.just(" true "),
    "FALSE": st.just(" false "),
}


def _grammar() -> lark.Lark:
    # Without the parser's postlexer: from_lark only reads the grammar.
    return lark.Lark.open_from_package("trick.dsl", "trick.lark", parser="lalr", start=["start", "line"])


GRAMMAR = _grammar()
PROGRAMS = from_lark(GRAMMAR, start="start", explicit={**GRAMMAR_EXPLICIT, "NAME": _padded(_NAME_OR_KEYWORD)})
# `spec`, `import` and `as` do not occur below `line`, and from_lark refuses explicit
# strategies for terminals the start rule cannot reach.
LINES = from_lark(GRAMMAR, start="line", explicit={k: v for k, v in GRAMMAR_EXPLICIT.items() if k not in ("SPEC", "IMPORT", "AS")})

TEMPLATE = """spec fuzzed

data {{
    source digits
    validation 0.1
{data}
}}

model {{
    input [64]
{model}
}}

train {{
    epochs 3
{train}
}}
"""


@_fuzz(200)
@given(PROGRAMS)
def test_grammar_generated_programs(text):
    parsed = _exercise(text)
    event("parsed" if parsed else "did not parse")


@_fuzz(80)
@given(st.lists(LINES, max_size=3), st.lists(LINES, max_size=3), st.lists(LINES, max_size=2))
def test_grammar_generated_lines_inside_a_spec(data_lines, model_lines, train_lines):
    """Generated lines placed inside real blocks, so the checker's deeper rules run."""
    text = TEMPLATE.format(
        data="\n".join("    " + line for line in data_lines),
        model="\n".join("    " + line for line in model_lines),
        train="\n".join("    " + line for line in train_lines),
    )
    parsed = _exercise(text)
    event("parsed" if parsed else "did not parse")


# ---- 2. mutations of the example specs -----------------------------------------------------------

TOKEN_RE = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|->|\.\.|[A-Za-z_][A-Za-z0-9_]*|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|.', re.S)


def _tokens(text: str) -> list[str]:
    tokens = TOKEN_RE.findall(text)
    assert "".join(tokens) == text
    return tokens


SPEC_TOKENS = [_tokens(t) for t in SPEC_TEXTS]

INSERTIONS = [
    "{", "}", '"', "#", "\t", "\r\n", "\n", "\r", "->", "..", "=", ";", ":", ",", ".", "-", "[", "]", "(", ")",
    "\\", "é", "λ", "😀", "\u2028", "\u00a0", "\ufeff", "\x00", "\x0b", "\x0c", "\x85", "\u200b",
    "spec", "import", "as", "target", "true", "false", "label", "model", "data", "train", "repeat 2 {", "head label {",
    "residual {", "1e999", "-1e999", "99999999999999999999", "0", "-1", ".5", "0..0", '"x"', '"\\', "x=", "a.b.c",
    "target t = label % 0", "target t = label / 0", "import \"mnist1d_cnn.trick\" as m", "import \"fuzz_missing.trick\" as q",
]
_INSERT = st.one_of(st.sampled_from(INSERTIONS), st.text(max_size=4), st.characters())


@st.composite
def mutated_specs(draw) -> str:
    tokens = list(draw(st.sampled_from(SPEC_TOKENS)))
    for _ in range(draw(st.integers(1, 6))):
        if not tokens:
            tokens.append(draw(_INSERT))
            continue
        i = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "delete_run", "duplicate", "swap", "insert", "replace", "move"]))
        if op == "delete":
            del tokens[i]
        elif op == "delete_run":
            del tokens[i : i + draw(st.integers(2, 30))]
        elif op == "duplicate":
            tokens[i:i] = tokens[i : i + draw(st.integers(1, 8))]
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "insert":
            tokens.insert(i, draw(_INSERT))
        elif op == "replace":
            tokens[i] = draw(_INSERT)
        else:
            token = tokens.pop(i)
            tokens.insert(draw(st.integers(0, len(tokens))), token)
    return "".join(tokens)


@st.composite
def mutated_bytes(draw) -> bytes:
    data = bytearray(draw(st.one_of(st.sampled_from(SPEC_TEXTS), mutated_specs())).encode("utf-8"))
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["delete", "insert", "flip", "duplicate", "truncate", "insert_special"]))
        if op == "delete" and data:
            del data[i : i + draw(st.integers(1, 4))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "flip" and i < len(data):
            data[i] ^= draw(st.integers(1, 255))
        elif op == "duplicate":
            data[i:i] = data[i : i + draw(st.integers(1, 40))]
        elif op == "truncate":
            del data[i:]
        else:
            data[i:i] = draw(st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xef\xbb\xbf", b"\x00", b"\xed\xa0\x80", b"\xc0\xaf", b"\r", b"\x85"]))
    return bytes(data)


@st.composite
def relaid_specs(draw) -> str:
    """An example spec with only its layout changed: comments, blank lines, ';' for
    newlines, newlines after '{' and before '}', tabs. It still parses (almost always), so
    this mostly exercises the formatter's handling of comments and blank lines."""
    original = draw(st.sampled_from(SPEC_TOKENS))
    tokens = list(original)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(tokens) - 1))
        token, before = original[i], (tokens[i - 1] if i else "")
        if token.strip() == "" and "\n" in token:
            choices = ["\n\n" + token, token + "\n", "  # note\n", "\n# own line\n", "\n    # indented\n\n", "\r\n", "\n\t\t"]
            if not before.startswith("#"):
                choices += ["; ", ";\n", " ;; "]
            tokens[i] = draw(st.sampled_from(choices))
        elif token.strip() == "":
            tokens[i] = draw(st.sampled_from(["\t", "   ", " \t ", " "]))
        elif token == "{":
            tokens[i] = draw(st.sampled_from(["{\n", "{ # open\n", "{\n\n", "{;"]))
        elif token == "}":
            tokens[i] = draw(st.sampled_from(["\n}", "\n\n}", "# close\n}", ";}"]))
        elif token.startswith("#"):
            tokens[i] = draw(st.sampled_from(["", "#", "#  spaced  ", "# {not a block}", '# "not a string', "#\t"]))
    return "".join(tokens)


@_fuzz(150)
@given(relaid_specs())
def test_relaid_specs(text):
    parsed = _exercise(text)
    event("parsed" if parsed else "did not parse")


@_fuzz(300)
@given(mutated_specs())
def test_mutated_specs_text(text):
    parsed = _exercise(text)
    event("parsed" if parsed else "did not parse")


@_fuzz(200)
@given(mutated_bytes())
def test_mutated_specs_bytes(data):
    _exercise_bytes(data)


@_fuzz(100)
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    _exercise(text)


@pytest.mark.parametrize("path", SPEC_PATHS, ids=[p.stem for p in SPEC_PATHS])
def test_example_specs_parse_and_format(path):
    """The unmutated examples satisfy the property too (and do parse)."""
    assert _exercise(path.read_text(encoding="utf-8"))
    _exercise_bytes(path.read_bytes())


# ---- layouts the fuzzers found or that probe the formatter's comment and blank-line rules --------

FORMAT_CASES = {
    # Found by test_grammar_generated_lines_inside_a_spec: the comment moves in front of the
    # chain on the first pass and gains a blank line before it on the second.
    "comment_in_chain_body_not_idempotent": "x {\n e\n a {\n # c\n\n } -> b {}\n}\n",
    # Found by test_mutated_specs_text: right after '{' the contextual lexer reads `spec` and
    # `import` as clause names, elsewhere in a body as keywords; the formatter moves the
    # clause to a line of its own, where it no longer parses.
    "keyword_spec_after_brace": "x {spec a\n}\n",
    "keyword_import_after_brace": 'x {import "a" as b\n}\n',
    "comment_inside_list": "spec x\nmodel {\n input [1, # c\n 2]\n}\n",
    "trailing_comment_one_line_block": "spec x\nmodel { input [1] # a\n}\n",
    "comment_after_spec_line": "spec x # a\n# b\n",
    "comment_at_end": "model {\n}\n# end\n",
    "two_blocks_with_comments": "model { relu } # c\nmodel {\n relu\n} # d\n",
    "comment_after_open_brace": "x { # c\n}\n",
    "comment_alone_in_block": "x {\n # c\n}\n",
    "options_after_body_comment": "x {\n a\n} y=1 # c\n z\n",
    "many_blank_lines": "x\n\n\n\n# c\n\n\ny\n",
    "double_negation": "target a = - - b\n",
    "negated_parens": "target a = -(1) - -(2)\n",
    "chained_comparisons": "target a = (a < b) == (c > d)\n",
    "precedence": "target a = 1 - (2 - 3) * 4 % (5 / 6)\n",
    "ref_then_float": "x a.b .5\n",
    "negative_range": "x -1..-2 - 3\n",
    "escaped_backslash_before_hash": 'x "a\\\\" # "\n',
    "label_chain_bodies": "a: b { c } -> d { e\n f }\n",
    "nested_multiline_body_in_one_line": "a { b {\n c\n} } # x\n",
    "list_before_body": "a [1,\n2] { b }\n",
    "crlf_blank_lines": "a\r\n\r\n\r\nb\r\n",
    "long_one_line_block": "a { " + "b " * 60 + "{ z } }\n",
    "empty_braces_then_comment": "x { }\n# c\n}\n",
    "two_specs_one_line": "spec x; spec y\n",
    "import_with_comment": 'spec x\n\nimport "a" as b # c\n\n\nx { }\n',
    "list_newlines_before_commas": "x [1\n,2\n]\n",
    "expression_over_lines": "target a = (\nlabel\n+ 1)\n",
}


@pytest.mark.parametrize("text", list(FORMAT_CASES.values()), ids=list(FORMAT_CASES))
def test_format_cases(text):
    _exercise(text)


# ---- 3. specific nasty inputs ------------------------------------------------------------------

_LAYER_LINE = "    dense 64 -> batchnorm momentum=0.1 -> relu -> dropout 0.1   # a layer\n"
ONE_MB_SPEC = "spec big\ndata { source digits }\nmodel {\n    input [64]\n" + _LAYER_LINE * (1_000_000 // len(_LAYER_LINE)) + "    dense 10\n}\n"
FIVE_MB = "spec huge\n" + "# " + "x" * (5 * 1024 * 1024) + "\n"

NASTY_TEXT = {
    "empty": "",
    "newline": "\n",
    "only_whitespace": " \t \n\n   \t\n\x0c\n",
    "only_comments": "# one\n   # two\n#\n",
    "comment_without_newline": "# no newline at the end",
    "deep_brackets": "spec x\nmodel {\n    input " + "[" * 10000 + "\n}\n",
    "deep_brackets_closed": "spec x\nmodel {\n    input " + "[" * 10000 + "1" + "]" * 10000 + "\n}\n",
    "deep_parens": "spec x\ndata {\n    target a = " + "(" * 10000 + "label" + ")" * 10000 + "\n}\n",
    "deep_repeat_open": "spec x\nmodel { " + "repeat 2 { " * 1000 + "\n",
    "deep_repeat_closed": "spec x\nmodel {\n    input [4]\n" + "repeat 2 {\n" * 1000 + "relu\n" + "}\n" * 1000 + "}\n",
    "repeat_49_deep": "spec x\ndata { source digits }\nmodel {\n    input [4]\n" + "repeat 1 {\n" * 48 + "relu\n" + "}\n" * 48 + "}\n",
    "long_sum": "spec x\ndata {\n    source digits\n    target a = label" + " + 1" * 5000 + "\n}\nmodel { input [64] }\n",
    "long_neg": "spec x\ndata {\n    source digits\n    target a = " + "- " * 5000 + "label\n}\nmodel { input [64] }\n",
    "long_neg_tight": "spec x\ndata {\n    target a = " + "-" * 5000 + "label\n}\n",
    "neg_99_deep": "spec x\ndata {\n    source digits\n    target a = " + "- " * 99 + "label\n}\nmodel { input [64] }\n",
    "long_chain": "spec x\ndata { source digits }\nmodel {\n    input [64]\n    " + "relu -> " * 5000 + "relu\n}\n",
    "long_list": "spec x\nmodel {\n    input [" + ", ".join(["1"] * 5000) + "]\n}\n",
    "long_ref": "spec x\ntrain {\n    early_stop monitor=" + ".".join(["val"] * 5000) + "\n}\n",
    "long_name": "spec " + "x" * 100000 + "\n",
    "many_errors": "spec x\n" + "@@ ## !!\n" * 5000,
    "many_unmatched_braces": "}\n" * 5000,
    "many_open_braces_lines": "model {\n" * 40,
    "unterminated_string": 'spec x\ndata { source file "unterminated }\nmodel { input [1] }\n',
    "unterminated_string_eof": 'spec x\nimport "abc',
    "unterminated_block": "spec x\ndata {\n    source digits\nmodel {\n    input [64]\n",
    "unmatched_close": "spec x\n}\ndata { source digits }\n}}}\n",
    "crlf": "spec x\r\ndata {\r\n    source digits\r\n}\r\nmodel {\r\n    input [64]   # c\r\n    dense 10\r\n}\r\n",
    "lone_cr": "spec x\rdata {\r source digits\r}\n",
    "tabs": "spec\tx\ndata\t{\n\tsource\tdigits\n}\nmodel {\n\tinput\t[64]\n\tdense\t10\t->\trelu\n}\n",
    "bom": "\ufeffspec x\ndata { source digits }\nmodel {\n    input [64]\n    dense 10\n}\n",
    "bom_twice": "\ufeff\ufeffspec x\n",
    "nul": "spec x\x00\nmodel { }\n",
    "nul_in_string": 'spec x\ndata { source file "a\x00b.npz" }\n',
    "nul_in_comment": "spec x # \x00\n",
    "unicode_names": "spec naïve\nmodel { λ 1 }\n",
    "unicode_line_separator": "spec x\u2028data { source digits }\n",
    "vertical_tab": "spec x\x0bdata\n",
    "surrogate_in_comment": "spec x # \ud800\n",
    "huge_numbers": "spec x\ndata { source digits }\nmodel {\n    input [99999999999999999999999999]\n    dense 1e999 -> dropout 1e999\n    repeat 99999999999999999999 { dense 3 }\n}\ntrain { epochs 1e999; batch -0; seed 99999999999999999999999 }\n",
    "division_by_zero_target": "spec x\ndata {\n    source digits\n    target a = label / 0\n    target b = label % 0\n    target c = 1e999 * 0\n}\nmodel { input [64] }\n",
    "one_line_everything": "spec x; data { source digits; target p = label % 2 }; model { input [64]; head p { dense 2 } loss=mse weight=0.5 }",
    "semicolons_only": ";;;;\n;\n",
    "arrow_only": "->\n",
    "dotdot_only": "..\n",
    "dot_dot_dot": "spec x\naugment { color brightness=1...2 }\n",
    "equals_chain": "spec x\ntrain { optimizer sgd lr==1 }\n",
    "empty_blocks": "spec x\ndata { }\nmodel { }\ntrain { }\n",
    "empty_model_braces": "spec x\nmodel {}\n",
    "import_self": "spec x\nimport \"<string>\" as me\n",
    "import_directory": 'spec x\nimport "." as here\nimport "/" as root\n',
    "import_example": 'spec x\nimport "digits_mlp.trick" as base\ntransfer { from base layers=99 }\n',
    "import_long_path": 'spec x\nimport "' + "a" * 300 + '.trick" as far\n',
    "import_surrogate_path": 'spec x\nimport "\ud800.trick" as odd\n',
    "file_source_long_path": 'spec x\ndata { source file "' + "b" * 300 + '.npz" }\nmodel { input [1] }\n',
    "file_source_surrogate_path": 'spec x\ndata { source file "\udcff.npz" }\nmodel { input [1] }\n',
}


@pytest.mark.parametrize("text", list(NASTY_TEXT.values()), ids=list(NASTY_TEXT))
def test_nasty_text(text):
    _exercise(text)


NASTY_BYTES = {
    "invalid_utf8": b"\xff\xfe",
    "invalid_utf8_in_spec": b"spec x\ndata { source \xff digits }\n",
    "truncated_utf8": b"spec caf\xc3",
    "overlong_utf8": b"spec x # \xc0\xaf\n",
    "encoded_surrogate": b"spec x # \xed\xa0\x80\n",
    "utf16": "spec x\n".encode("utf-16"),
    "nul": b"spec x\n\x00\n",
    "only_nul": b"\x00",
    "bom": b"\xef\xbb\xbfspec x\n",
    "latin1": "spec x # café\n".encode("latin-1"),
    "empty": b"",
}


@pytest.mark.parametrize("data", list(NASTY_BYTES.values()), ids=list(NASTY_BYTES))
def test_nasty_bytes(data):
    _exercise_bytes(data)


def test_one_megabyte_spec_is_valid():
    # Parsing a megabyte takes about 5 s in pure Python, so this only checks it (which
    # parses it once); the formatter's round trip is left to the smaller inputs.
    assert len(ONE_MB_SPEC) >= 990_000
    diagnostics = trick.check(ONE_MB_SPEC)
    assert isinstance(diagnostics, list)
    assert not [d for d in diagnostics if d.severity == "error"], diagnostics[:3]


def test_five_megabytes_is_too_large():
    with pytest.raises(TrickError, match="too large"):
        trick.parse(FIVE_MB)
    diagnostics = trick.check(FIVE_MB)
    assert isinstance(diagnostics, list)
    assert any("too large" in d.message for d in diagnostics)
    with pytest.raises(TrickError, match="too large"):
        trick.format(FIVE_MB)
    with pytest.raises(TrickError, match="too large"):
        decode_source(FIVE_MB.encode("utf-8"), "<huge>")


def test_deep_nesting_is_refused_with_a_trick_error():
    for key in ("deep_brackets", "deep_brackets_closed", "deep_parens", "deep_repeat_open", "deep_repeat_closed"):
        with pytest.raises(TrickError):
            trick.parse(NASTY_TEXT[key])


def test_long_expressions_are_refused_with_a_trick_error():
    for key in ("long_sum", "long_neg", "long_neg_tight"):
        with pytest.raises(TrickError):
            trick.parse(NASTY_TEXT[key])


# ---- paths: trick.parse/check/format also take the path of a .trick file -------------------------


def _exercise_path(path) -> None:
    try:
        trick.parse(path)
    except TrickError as err:
        assert err.diagnostics
        str(err)
    diagnostics = trick.check(path)
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert isinstance(d, Diagnostic)
        d.render()
    try:
        assert isinstance(trick.format(path), str)
    except TrickError:
        pass


BAD_PATHS = {
    "missing": "definitely_missing_fuzz.trick",
    "nul_in_name": "a\x00b.trick",
    "surrogate_in_name": "\ud800.trick",
    "name_too_long": "/" + "a" * 300 + ".trick",
    "under_a_file": "/dev/null/x.trick",
    "only_the_suffix": ".trick",
}


@pytest.mark.parametrize("path", list(BAD_PATHS.values()), ids=list(BAD_PATHS))
def test_bad_paths(path):
    _exercise_path(path)


def _write_import_tree(root: Path) -> None:
    (root / "a.trick").write_text('spec a\nimport "b.trick" as b\ndata { source digits }\nmodel { input [64] }\n')
    (root / "b.trick").write_text('spec b\nimport "a.trick" as a\n')
    (root / "self.trick").write_text('spec s\nimport "self.trick" as s\n')
    (root / "latin1.trick").write_bytes("spec café\n".encode("latin-1"))
    (root / "nul.trick").write_bytes(b"spec n\n\x00\n")
    (root / "huge.trick").write_text("spec huge\n# " + "x" * (5 * 1024 * 1024) + "\n")
    (root / "dir.trick").mkdir()
    (root / "dangling.trick").symlink_to("nowhere.trick")
    imports = ["b.trick", "self.trick", "latin1.trick", "nul.trick", "huge.trick", "dir.trick", "dangling.trick", "a.trick", "./a.trick", "sub/../a.trick"]
    lines = ["spec root"] + [f'import "{name}" as m{i}' for i, name in enumerate(imports)]
    lines += ["data { source digits }", "model { input [64]; dense 10 }", "transfer { from m0 layers=1 }"]
    (root / "root.trick").write_text("\n".join(lines) + "\n")
    for i, name in enumerate(imports):
        (root / f"imports_{i}.trick").write_text(f'spec one\nimport "{name}" as x\ndata {{ source digits }}\nmodel {{ input [64]; dense 10 }}\n')


def test_import_graphs(tmp_path):
    """Cycles, self-imports, undecodable, binary, huge, directory and dangling-link imports,
    and each file checked as the root spec too (symlink loops have tests of their own)."""
    _write_import_tree(tmp_path)
    for path in sorted(tmp_path.iterdir()):
        _exercise_path(path)
        _exercise_path(str(path))


def test_symlink_loop_import(tmp_path):
    (tmp_path / "loop.trick").symlink_to("loop.trick")
    (tmp_path / "main.trick").write_text('spec m\nimport "loop.trick" as l\n')
    _exercise_path(tmp_path / "main.trick")


def test_symlink_loop_root(tmp_path):
    (tmp_path / "loop.trick").symlink_to("loop.trick")
    _exercise_path(tmp_path / "loop.trick")
