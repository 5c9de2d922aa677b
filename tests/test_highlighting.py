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

from trick.compiler import clauses as R
from trick.compiler import editor_grammar
from trick.dsl import ast
from trick.dsl.parser import parse_text
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


def test_the_lexer_reads_the_names_of_the_registries():
    names = editor_grammar.names()
    assert names.layers and names.clauses and names.kinds and names.blocks
    assert "conv" in names.layers and "optimizer" in names.clauses and "adamw" in names.kinds
    for token, words in ((Name.Builtin, names.layers), (Name.Function, names.clauses), (Keyword, names.blocks)):
        for word in words:
            text = f"{word} {{" if token is Keyword else word
            assert (token, word) in tokens(text), (token, word)
    for word in names.kinds:
        assert (Name.Constant, word) in tokens(f"optimizer {word}"), word


def test_pygmentize_command():
    command = shutil.which("pygmentize") or None
    argv = [command] if command else [sys.executable, "-m", "pygments"]
    done = subprocess.run(argv + ["-l", "trick", "-f", "html", str(ROOT / "specs" / "mnist1d_cnn.trick")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '<span class="nb">conv</span>' in done.stdout and '<span class="c1"># stratified hold-out from train</span>' in done.stdout


# ---- the TextMate grammar --------------------------------------------------------------------------
# The grammar is generated (python -m trick.compiler.editor_grammar, kept in step by
# tests/compiler/test_editor_grammar.py); these tests run it as an editor does.


@pytest.fixture(scope="module")
def grammar():
    return json.loads(GRAMMAR.read_text())


class TextMate:
    """Enough of a TextMate tokenizer (the way vscode-textmate runs one) to test the grammar:
    line by line, `match` and `begin`/`end` rules, captures and includes; at each position the
    leftmost match wins, and on a tie the current region's `end` and then the first pattern."""

    def __init__(self, grammar: dict):
        self.grammar = grammar
        self.compiled: dict[str, re.Pattern] = {}

    def _re(self, pattern: str) -> re.Pattern:
        if pattern not in self.compiled:
            self.compiled[pattern] = re.compile(pattern)
        return self.compiled[pattern]

    def _rules(self, patterns: list) -> list[dict]:
        out = []
        for rule in patterns:
            if "include" in rule:
                name = rule["include"]
                target = {"patterns": self.grammar["patterns"]} if name == "$self" else self.grammar["repository"][name.lstrip("#")]
                out += self._rules([target]) if ("match" in target or "begin" in target) else self._rules(target["patterns"])
            elif "match" in rule or "begin" in rule:
                out.append(rule)
            else:
                out += self._rules(rule.get("patterns", []))
        return out

    def scopes(self, text: str) -> list[list[tuple[str, ...]]]:
        """The scopes of each character, line by line."""
        stack = [(None, ("source.trick",), self.grammar["patterns"], None)]  # (end, scopes, patterns, endCaptures)
        out = []
        for line in text.split("\n"):
            s = line + "\n"
            cols: list[tuple[str, ...]] = [()] * len(s)
            seen: set = set()
            width = len(line)

            def paint(start, end, scopes, cols=cols, width=width):
                for c in range(start, min(end, width)):
                    cols[c] = scopes

            def capture(m, captures, scopes, paint=paint):
                for group, value in sorted((captures or {}).items(), key=lambda kv: int(kv[0])):
                    if m.group(int(group)) is not None:
                        paint(m.start(int(group)), m.end(int(group)), scopes + (value["name"],))

            pos = 0
            while pos <= len(line):
                end, scopes, patterns, end_captures = stack[-1]
                best = None
                if end is not None and (m := self._re(end).search(s, pos)):
                    best = (m, None)
                for rule in self._rules(patterns):
                    m = self._re(rule.get("match") or rule["begin"]).search(s, pos)
                    if m and (best is None or m.start() < best[0].start()):
                        best = (m, rule)
                if best is None or best[0].start() > len(line):
                    paint(pos, len(s), scopes)
                    break
                m, rule = best
                paint(pos, m.start(), scopes)
                if m.end() == pos:
                    key = (pos, len(stack), id(rule))
                    assert key not in seen, f"the grammar loops at {line!r}:{pos}"
                    seen.add(key)
                if rule is None:
                    paint(m.start(), m.end(), scopes)
                    capture(m, end_captures, scopes)
                    stack.pop()
                else:
                    inner = scopes + ((rule["name"],) if "name" in rule else ())
                    paint(m.start(), m.end(), inner)
                    if "match" in rule:
                        capture(m, rule.get("captures"), inner)
                    else:
                        capture(m, rule.get("beginCaptures"), inner)
                        stack.append((rule["end"], inner, rule.get("patterns", []), rule.get("endCaptures")))
                pos = m.end()
            out.append(cols[: len(line)])
        return out


def scope_of(grammar, text: str, word: str, line: int = 0, occurrence: int = 0) -> str:
    """The innermost scope of `word` (its `occurrence`-th appearance on `line`)."""
    lines = TextMate(grammar).scopes(text)
    at = [m.start() for m in re.finditer(rf"(?<![\w.]){re.escape(word)}\b", text.split("\n")[line])][occurrence]
    found = {lines[line][c] for c in range(at, at + len(word))}
    assert len(found) == 1, (word, found)
    return found.pop()[-1]


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
    for include in _includes(grammar):
        assert include.lstrip("#") in grammar["repository"], include
    for pattern in _patterns(grammar):
        re.compile(pattern)  # Oniguruma reads these too: only syntax both share is used
    scopes = [v for v in re.findall(r'"name": "([^"]+)"', GRAMMAR.read_text()) if "." in v]
    assert scopes and all(s.endswith(".trick") for s in scopes)
    assert (ROOT / "editors" / "README.md").is_file()


def _includes(node):
    if isinstance(node, dict):
        if "include" in node:
            yield node["include"]
        for value in node.values():
            yield from _includes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _includes(value)


def _expected(registry) -> str:
    """The scope a clause of `registry` gets: layers are support functions, clauses keywords."""
    return "support.function.layer." if registry is R.LAYERS else "keyword.other.clause."


def test_the_grammar_knows_every_name_of_the_registries(grammar):
    """Each clause in each block it belongs to, each kind after its clause, each option."""
    for block in R.BLOCKS.names():
        assert scope_of(grammar, f"{block} {{\n}}", block).startswith("keyword.other.block."), block
    for block, registries in R.BLOCK_CLAUSES.items():
        known = set()
        for registry in registries:
            for schema in registry:
                if schema.name in editor_grammar.KEYWORDS or schema.name in known:
                    continue
                known.add(schema.name)
                text = f"{block} {{\n    {schema.name}\n}}"
                assert scope_of(grammar, text, schema.name, line=1).startswith(_expected(registry)), (block, schema.name)
                for kind in schema.kind or ():
                    text = f"{block} {{\n    {schema.name} {kind.name}\n}}"
                    assert scope_of(grammar, text, kind.name, line=1, occurrence=-1).startswith("support.constant."), (schema.name, kind.name)
                for option in editor_grammar.options(schema):
                    text = f"{block} {{\n    {schema.name} x {option}=1\n}}"
                    assert scope_of(grammar, text, option, line=1, occurrence=-1) == "variable.parameter.option.trick", (schema.name, option)


def test_what_the_grammar_makes_of_a_spec(grammar):
    text = (
        'spec e\nimport "base.trick" as base  # the base\n'
        "data { source playground spiral n=1000 noise=0.1; target parity = label % 2 }\n"
        "augment { noise 0.1; color brightness=0.5..1.5 hue=-0.1..0.1 }\n"
        "model {\n    block2: conv 64 k=3 pad=1 -> batchnorm -> noise 0.1\n"
        "    head parity { dense 2 } weight=0.3 bogus=1\n}\n"
        "train { loss cross_entropy; optimizer adamw lr=1e-3; early_stop monitor=val.loss }\n"
        "curriculum { score loss of base }\n"
        "distill { hint base.block2 -> guided # stage 1\n}\n"
        "transfer { freeze true }\n"
    )
    lines = text.split("\n")
    for line, word, occurrence, scope in [
        (0, "spec", 0, "keyword.other.spec.trick"),
        (0, "e", 0, "entity.name.type.spec.trick"),
        (1, "import", 0, "keyword.control.import.trick"),
        (1, "as", 0, "keyword.control.as.trick"),
        (1, "base", 1, "entity.name.namespace.trick"),
        (1, "the", 0, "comment.line.number-sign.trick"),
        (2, "data", 0, "keyword.other.block.trick"),
        (2, "source", 0, "keyword.other.clause.data.trick"),
        (2, "playground", 0, "support.constant.data-source.trick"),
        (2, "noise", 0, "variable.parameter.option.trick"),
        (2, "target", 0, "keyword.other.target.trick"),
        (2, "parity", 0, "variable.other.target.trick"),
        (3, "noise", 0, "keyword.other.clause.augment.trick"),  # an augmentation here ...
        (3, "0.5", 0, "constant.numeric.trick"),
        (3, "-0.1", 0, "constant.numeric.trick"),
        (5, "block2", 0, "entity.name.label.trick"),
        (5, "conv", 0, "support.function.layer.trick"),
        (5, "k", 0, "variable.parameter.option.trick"),
        (5, "batchnorm", 0, "support.function.layer.trick"),
        (5, "noise", 0, "support.function.layer.trick"),  # ... and a layer here
        (6, "head", 0, "keyword.other.clause.model.trick"),
        (6, "dense", 0, "support.function.layer.trick"),
        (6, "weight", 0, "variable.parameter.option.trick"),  # head's option, after its body
        (6, "bogus", 0, "variable.other.option.trick"),
        (8, "loss", 0, "keyword.other.clause.train.trick"),  # a clause here ...
        (8, "cross_entropy", 0, "support.constant.loss.trick"),
        (8, "adamw", 0, "support.constant.optimizer.trick"),
        (8, "1e-3", 0, "constant.numeric.trick"),
        (8, "val.loss", 0, "variable.other.reference.trick"),
        (9, "loss", 0, "support.constant.difficulty-score.trick"),  # ... a kind of `score` here
        (9, "of", 0, "keyword.other.connective.trick"),
        (9, "base", 0, "meta.block.curriculum.trick"),  # a plain name: only the block's scope
        (10, "hint", 0, "keyword.other.clause.distill.trick"),
        (10, "base.block2", 0, "variable.other.reference.trick"),
        (10, "guided", 0, "variable.other.label.trick"),
        (10, "stage", 0, "comment.line.number-sign.trick"),
        (12, "true", 0, "constant.language.boolean.trick"),
    ]:
        found = scope_of(grammar, text, word, line, occurrence)
        assert found == scope, (lines[line], word, found)
    scopes = TextMate(grammar).scopes(text)
    assert scopes[3][lines[3].index("..")][-1] == "keyword.operator.range.trick"
    assert scopes[5][lines[5].index("->")][-1] == "keyword.operator.chain.trick"


def test_fragments_outside_a_block_are_highlighted_too(grammar):
    assert scope_of(grammar, "dense 128 -> relu", "dense") == "support.function.layer.trick"
    assert scope_of(grammar, "dense 128 -> relu", "relu") == "support.function.layer.trick"
    assert scope_of(grammar, "optimizer adamw lr=1e-3", "adamw") == "support.constant.optimizer.trick"


def _walk(statements, block: str, expect: list):
    """(span, scope prefix) for every name the parser found, in the block it is in."""
    for statement in statements:
        if isinstance(statement, ast.Target):
            expect.append((statement.name_span, "variable.other.target."))
            continue
        if statement.label is not None:
            expect.append((statement.label_span, "entity.name.label."))
        schema = None
        for clause in statement.chain:
            if schema is not None and schema.chain:  # `hint teacher.block2 -> guided`: a label's name
                expect.append((clause.name_span, "variable.other.label."))
                schema = None
                continue
            registry = next(r for r in R.BLOCK_CLAUSES[block] if clause.name in r)
            schema = registry.get(clause.name)
            expect.append((clause.name_span, _expected(registry)))
            if schema.kind is not None and clause.args and isinstance(clause.args[0], ast.Ref) and clause.args[0].name in schema.kind:
                expect.append((clause.args[0].span, "support.constant."))
            for option in clause.options:
                expect.append((option.name_span, "variable.parameter.option."))
            if clause.body is not None:
                _walk(clause.body, schema.body, expect)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_tokenizes_with_every_name_scoped(grammar, path):
    text = path.read_text()
    program = parse_text(text, str(path))
    expect = []
    for item in program.items:
        if isinstance(item, ast.SpecDecl):
            expect.append((item.name_span, "entity.name.type.spec."))
        elif isinstance(item, ast.Import):
            expect.append((item.alias_span, "entity.name.namespace."))
        elif isinstance(item, ast.Line) and item.chain[0].body is not None:
            block = item.chain[0]
            expect.append((block.name_span, "keyword.other.block."))
            _walk(block.body, block.name, expect)
    for comment in program.comments:
        expect.append((comment.span, "comment.line."))
    scopes = TextMate(grammar).scopes(text)
    assert len(expect) > 10
    for span, prefix in expect:
        assert span.line == span.end_line
        found = {scopes[span.line - 1][c][-1] for c in range(span.column - 1, span.end_column - 1)}
        assert len(found) == 1 and found.pop().startswith(prefix), (path.name, span.line, span.column, found, prefix)
