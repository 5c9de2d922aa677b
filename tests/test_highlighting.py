"""Syntax highlighting: the Pygments lexer (found through its entry point) and the TextMate
grammar in editors/."""

import json
import re
import shutil
import subprocess
import sys

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from trick.compiler import registry as R
from trick.pygments_lexer import TrickLexer

from .conftest import ROOT, SPECS

GRAMMAR = ROOT / "editors" / "trick.tmLanguage.json"


def tokens(text: str) -> list[tuple]:
    return [(t, v) for t, v in TrickLexer().get_tokens(text) if v.strip()]


def test_pygments_finds_the_lexer_by_name_and_file_name():
    assert isinstance(get_lexer_by_name("trick"), TrickLexer)
    assert isinstance(get_lexer_for_filename("specs/mnist1d_cnn.trick"), TrickLexer)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_lexes_without_errors_and_round_trips(path):
    text = path.read_text()
    lexed = list(TrickLexer().get_tokens(text))
    assert not [v for t, v in lexed if t in Error]
    assert "".join(v for _, v in lexed) == text


def test_what_each_token_is():
    text = (
        'spec e\nimport "base.trick" as base\n\ndata {\n    source playground spiral n=1000 noise=0.1   # also: circle\n'
        "    target parity = label % 2\n}\n\nmodel {\n    input [1, 40]\n    block2: conv 64 k=3 pad=1 -> batchnorm -> relu\n"
        "    dropout 0.5 mode=scale_at_test\n}\n\naugment { color brightness=0.5..1.5 hue=-0.1..0.1 }\n\n"
        "train {\n    optimizer adamw lr=1e-3\n    early_stop monitor=val.loss restore=best\n    regularize l1 1e-6\n}\n"
        "transfer { freeze true }\n"
    )
    found = tokens(text)
    expect = [
        (Keyword.Namespace, "spec"),
        (Name.Namespace, "e"),
        (Keyword.Namespace, "import"),
        (String.Double, '"base.trick"'),
        (Name.Namespace, "base"),
        (Keyword, "data"),
        (Name.Function, "source"),
        (Name.Constant, "playground"),
        (Name.Attribute, "n"),
        (Number.Integer, "1000"),
        (Number.Float, "0.1"),
        (Comment.Single, "# also: circle"),
        (Keyword, "target"),
        (Name.Variable, "parity"),
        (Operator, "%"),
        (Keyword, "model"),
        (Name.Label, "block2"),
        (Name.Builtin, "conv"),
        (Name.Attribute, "k"),
        (Operator, "->"),
        (Name.Builtin, "batchnorm"),
        (Name.Builtin, "dropout"),
        (Name, "scale_at_test"),
        (Name.Function, "color"),
        (Number, "0.5"),
        (Operator, ".."),
        (Number, "-0.1"),
        (Name.Constant, "adamw"),
        (Number.Float, "1e-3"),
        (Name.Variable, "val.loss"),
        (Name.Constant, "l1"),
        (Keyword.Constant, "true"),
    ]
    for pair in expect:
        assert pair in found, pair


def test_pygmentize_command():
    command = shutil.which("pygmentize") or None
    argv = [command] if command else [sys.executable, "-m", "pygments"]
    done = subprocess.run(argv + ["-l", "trick", "-f", "html", str(ROOT / "specs" / "mnist1d_cnn.trick")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '<span class="nb">conv</span>' in done.stdout and '<span class="c1"># stratified hold-out from train</span>' in done.stdout


# ---- the TextMate grammar --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grammar():
    return json.loads(GRAMMAR.read_text())


def _patterns(grammar):
    def walk(node):
        if isinstance(node, dict):
            for key in ("match", "begin", "end"):
                if key in node:
                    yield node[key]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return list(walk(grammar))


def test_the_grammar_is_well_formed(grammar):
    assert grammar["scopeName"] == "source.trick" and grammar["fileTypes"] == ["trick"]
    for include in grammar["patterns"]:
        assert include["include"].lstrip("#") in grammar["repository"]
    for pattern in _patterns(grammar):
        re.compile(pattern)  # Oniguruma reads these too: only syntax both share is used
    scopes = [v for v in re.findall(r'"name": "([^"]+)"', GRAMMAR.read_text()) if "." in v]
    assert scopes and all(s.endswith(".trick") for s in scopes)
    assert (ROOT / "editors" / "README.md").is_file()


def _matches(grammar, rule: str, text: str) -> bool:
    return re.fullmatch(grammar["repository"][rule]["match"], text) is not None


def test_the_grammar_knows_every_name_of_the_registries(grammar):
    for name in R.BLOCKS.names():
        assert re.match(grammar["repository"]["block"]["match"], name + " {"), name
    for name in R.LAYERS.names():
        assert _matches(grammar, "layer", name), name
    clauses = {c.name for registry in (R.DATA, R.AUGMENTATIONS, R.MODEL, R.TRAIN, R.EVALUATE, R.TRANSFER, R.DISTILL, R.CURRICULUM, R.REPORT) for c in registry}
    for name in clauses - set(R.LAYERS.names()) - {"target"}:
        assert _matches(grammar, "clause", name), name
    kinds = {k.name for registry in (R.DATA, R.TRAIN, R.CURRICULUM) for c in registry if c.kind is not None for k in c.kind}
    for name in kinds - clauses - set(R.LAYERS.names()):
        assert _matches(grammar, "kind", name), name
    assert _matches(grammar, "range", "-0.1..0.1") and _matches(grammar, "range", "16..24")
    assert re.match(grammar["repository"]["option"]["match"], "weight_decay=1e-4")
    assert re.match(grammar["repository"]["label"]["match"], "    block2: conv 64")
