"""docs/language.md and the registries say the same thing."""

from trick.compiler import clauses as R
from trick.compiler.docs import DOC, render_doc


def test_the_reference_is_generated_from_the_registries():
    current = DOC.read_text(encoding="utf-8")
    assert render_doc(current) == current, "docs/language.md is out of date: run python -m trick.compiler.docs"


def test_every_clause_and_argument_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for registry in R.ALL_REGISTRIES:
        assert registry.doc, registry.kind
        for schema in registry:
            assert schema.doc, schema.name
            assert f"`{schema.name}" in text, schema.name
            for param in schema.params:
                assert param.doc, f"{schema.name}.{param.name}"
                assert f"| `{param.name}` |" in text, f"{schema.name}.{param.name}"


def test_every_block_has_its_clauses():
    assert set(R.BLOCK_CLAUSES) == set(R.BLOCKS.names())
