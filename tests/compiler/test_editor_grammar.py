"""editors/trick.tmLanguage.json is generated from the registries, and kept in step with them."""

import json
import re
import subprocess
import sys
from types import SimpleNamespace

from trick.compiler import clauses as R
from trick.compiler import editor_grammar as G
from trick.compiler.schema import POSITIVE_INT, ClauseSchema, Param, Registry

from ..conftest import ROOT


def test_the_grammar_file_is_generated_from_the_registries():
    current = G.GRAMMAR.read_text(encoding="utf-8")
    assert current == G.render(), f"{G.GRAMMAR.relative_to(ROOT)} is out of date: run {G.COMMAND}"


def test_the_commands_check_write_and_print(tmp_path, capsys):
    path = tmp_path / "trick.tmLanguage.json"
    assert G.main(["--check", "--path", str(path)]) == 1  # missing
    assert G.COMMAND in capsys.readouterr().err
    assert G.main(["--path", str(path)]) == 0
    assert "updated" in capsys.readouterr().out
    assert path.read_text(encoding="utf-8") == G.render()
    assert G.main(["--check", "--path", str(path)]) == 0
    path.write_text(G.render().replace("adamw", "adamx"), encoding="utf-8")
    assert G.main(["--check", "--path", str(path)]) == 1
    assert G.main(["--stdout"]) == 0
    assert capsys.readouterr().out == G.render()
    done = subprocess.run([sys.executable, "-m", "trick.compiler.editor_grammar", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_output_is_stable():
    assert G.render() == G.render()
    grammar = json.loads(G.render())
    assert list(grammar) == ["$schema", "comment", "name", "scopeName", "fileTypes", "patterns", "repository"]
    assert G.COMMAND in grammar["comment"]


def test_no_torch_and_no_numpy():
    code = "import sys, trick.compiler.editor_grammar, trick.pygments_lexer; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_reserved_words_are_the_parsers():
    lark = (ROOT / "trick" / "dsl" / "trick.lark").read_text(encoding="utf-8")
    literals = {w for w in re.findall(r'"([A-Za-z_]\w*)"', lark)}
    assert literals == set(G.KEYWORDS)


def test_every_registry_is_read():
    """Each registry is a block list, a block's clauses or the kinds a clause picks from, so
    none of its names is left out of the grammar."""
    read = [R.BLOCKS] + [r for r, _, _ in G.clause_registries()] + G.kind_registries()
    for registry in R.ALL_REGISTRIES:
        assert any(registry is r for r in read), registry.kind
    text = G.render()
    for registry in R.ALL_REGISTRIES:
        for schema in registry:
            assert re.search(rf"[(|]{re.escape(schema.name)}[)|]", text), schema.name
            for option in G.options(schema):
                assert re.search(rf"[(|]{re.escape(option)}[)|]", text), f"{schema.name}.{option}"


def test_a_new_entry_shows_up_without_edits():
    """A layer, a block with its own clauses and a kind registry: one entry each, no edit here."""
    layers = Registry(R.LAYERS.kind, R.LAYERS.doc, dict(R.LAYERS.entries))
    layers.add(ClauseSchema("swiglu", "a new layer", (Param("units", POSITIVE_INT, 4, "units", positional=True),)))
    gadgets = Registry("gadget", "kinds of widget")
    gadgets.add(ClauseSchema("sprocket", "a kind", (Param("teeth", POSITIVE_INT, 8, "teeth"),)))
    extra = Registry("extra clause", "clauses of the new block")
    extra.add(ClauseSchema("widget", "picks a gadget", kind=gadgets, connectives=("with",)))
    blocks = Registry(R.BLOCKS.kind, R.BLOCKS.doc, dict(R.BLOCKS.entries))
    blocks.add(ClauseSchema("extra", "a new block", body="extra"))
    block_clauses = {b: tuple(layers if r is R.LAYERS else r for r in rs) for b, rs in R.BLOCK_CLAUSES.items()}
    block_clauses["extra"] = (extra,)
    reg = SimpleNamespace(BLOCKS=blocks, BLOCK_CLAUSES=block_clauses, ALL_REGISTRIES=tuple(R.ALL_REGISTRIES) + (extra, gadgets))

    grammar = G.grammar(reg)
    repo = grammar["repository"]
    assert "body-extra" in repo and "clauses-extra-clause" in repo
    assert any(re.match(p["begin"], "extra {") for p in repo["block"]["patterns"])
    assert any(re.match(p["begin"], "swiglu 8") for p in repo["clauses-layer"]["patterns"])
    (widget,) = repo["clauses-extra-clause"]["patterns"]
    assert widget["beginCaptures"]["1"]["name"] == "keyword.other.clause.extra.trick"
    inner = {p.get("name") or p["captures"]["1"]["name"]: p["match"] for p in widget["patterns"] if "match" in p}
    assert re.match(inner["support.constant.gadget.trick"], "sprocket")
    assert re.match(inner["keyword.other.connective.trick"], "with")
    assert re.match(inner["variable.parameter.option.trick"], "teeth=3")
    names = G.names(reg)
    assert "swiglu" in names.layers and "widget" in names.clauses and "sprocket" in names.kinds and "extra" in names.blocks
    assert "teeth" in names.options and "with" in names.connectives
    assert "swiglu" not in G.render()  # the real registries are untouched
