"""The TextMate grammar editors/trick.tmLanguage.json, generated from the registries.

    python -m trick.compiler.editor_grammar            # rewrite editors/trick.tmLanguage.json
    python -m trick.compiler.editor_grammar --check    # exit 1 if it is out of date
    python -m trick.compiler.editor_grammar --stdout   # print the grammar instead

The names the grammar knows (blocks, the clauses of each block, layers, the kinds a clause
picks from, the options of each clause) are read from the registries, so adding an entry
there and regenerating is all an editor needs. A test fails when the committed file and the
generated one differ. `names()` is the same reading for the Pygments lexer.

How the grammar reads a file: a block (`model {`) opens a region whose patterns are the
clauses of that block only (`noise` is a layer in `model`, an augmentation in `augment`). A
clause opens a statement that runs to `;`, `->`, a comment or the end of the line; inside
it, the kinds the clause picks from (`optimizer adamw`), its connectives (`of`) and its own
option names are recognized, and a `{ }` body holds the clauses of the block the body is
of. Outside any block, every clause is recognized, so that fragments (`dense 128 -> relu`
in documentation) are highlighted too.

Scopes:

    block names                         keyword.other.block.trick
    a block's own clauses               keyword.other.clause.<block>.trick
    clauses of its further registries   support.function.<kind>.trick      (layers)
    kinds a clause picks                support.constant.<kind>.trick      (optimizer, loss, ...)
    option names of the clause          variable.parameter.option.trick    (others: variable.other.option.trick)
    the label after `hint ... ->`       variable.other.label.trick
    spec, import, as, target            keyword.other.* / keyword.control.*
    true, false                         constant.language.boolean.trick
    labels, `->`, `..`, numbers, strings, comments: the usual scopes

No torch, no numpy: this reads plain data only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import clauses as R
from .schema import ClauseSchema, Registry

GRAMMAR = Path(__file__).resolve().parents[2] / "editors" / "trick.tmLanguage.json"
COMMAND = "python -m trick.compiler.editor_grammar"

# The words the parser itself reserves (string literals of trick/dsl/trick.lark).
KEYWORDS = ("spec", "import", "as", "target", "true", "false")

IDENT = r"[A-Za-z_]\w*"
NUMBER = r"-?(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?"
_BEFORE = r"(?<![\w.])"  # not inside a word or after a dot (`val.loss`)
_AFTER = r"\b(?!\.|\s*=(?!=))"  # a whole word, neither dotted (`loss.x`) nor an option (`loss=`)
_END = r"(?=[;{}#]|->)|$"  # a statement ends at `;`, a brace, a comment, `->` or the line's end
_END_WITH_BODY = r"(?=[;}#]|->)|$"  # ... and one with a body runs on through its `{ }`


def slug(text: str) -> str:
    """A word for a scope or rule name: `adversarial attack` -> `adversarial-attack`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _longest_first(names) -> list[str]:
    return sorted(set(names), key=lambda n: (-len(n), n))


def _words(names) -> str:
    return _BEFORE + "(" + "|".join(re.escape(n) for n in _longest_first(names)) + ")" + _AFTER


# ---- what the registries hold ------------------------------------------------------------------


def clause_registries(reg=R) -> list[tuple[Registry, str, bool]]:
    """(registry, block, own) for every registry of block clauses, in BLOCK_CLAUSES order.

    `own` is true for a block's first registry (`train clause` of `train`), false for the
    further ones it also accepts (`layer` in `model`). A registry listed under two blocks
    counts where it is first listed."""
    seen: set[int] = set()
    out = []
    for block, registries in reg.BLOCK_CLAUSES.items():
        for i, registry in enumerate(registries):
            if id(registry) not in seen:
                seen.add(id(registry))
                out.append((registry, block, i == 0))
    return out


def kind_registries(reg=R) -> list[Registry]:
    """The registries whose entries a clause picks by its first argument (`optimizer KIND`)."""
    out: list[Registry] = []
    for registry in list(reg.ALL_REGISTRIES) + [r for r, _, _ in clause_registries(reg)]:
        for schema in registry:
            if schema.kind is not None and all(schema.kind is not r for r in out):
                out.append(schema.kind)
    return out


def options(schema: ClauseSchema) -> list[str]:
    """Every option name a clause takes: its own and those of each kind it picks from."""
    params = list(schema.params) + [p for entry in (schema.kind or ()) for p in entry.params]
    return sorted({p.name for p in params})


@dataclass(frozen=True)
class Names:
    """The words of the language by what they are, each longest first (for regexes)."""

    keywords: tuple[str, ...]
    blocks: tuple[str, ...]
    clauses: tuple[str, ...]  # the blocks' own clauses (`epochs`, `source`, `color`)
    layers: tuple[str, ...]  # clauses of the blocks' further registries (`conv`, `relu`)
    kinds: tuple[str, ...]  # what a clause picks (`adamw`, `cosine`, `zscore`)
    options: tuple[str, ...]
    connectives: tuple[str, ...]


def names(reg=R) -> Names:
    """The registries' names as the Pygments lexer reads them: a name that is both a layer and
    a clause (or a kind) counts as the former, and the reserved words as neither."""
    reserved = set(KEYWORDS)
    blocks = set(reg.BLOCKS.names()) - reserved
    registries = clause_registries(reg)
    layers = {s.name for r, _, own in registries if not own for s in r} - reserved - blocks
    clauses = {s.name for r, _, own in registries if own for s in r} - reserved - blocks - layers
    kinds = {s.name for r in kind_registries(reg) for s in r} - reserved - blocks - layers - clauses
    every = [s for r in reg.ALL_REGISTRIES for s in r] + [s for r, _, _ in registries for s in r]
    return Names(
        keywords=tuple(KEYWORDS),
        blocks=tuple(_longest_first(blocks)),
        clauses=tuple(_longest_first(clauses)),
        layers=tuple(_longest_first(layers)),
        kinds=tuple(_longest_first(kinds)),
        options=tuple(_longest_first({o for s in every for o in options(s)})),
        connectives=tuple(_longest_first({c for s in every for c in s.connectives})),
    )


# ---- the grammar -------------------------------------------------------------------------------


def _include(*rules: str) -> list[dict]:
    return [{"include": "#" + rule} for rule in rules]


def _scope(registry: Registry, block: str, own: bool) -> str:
    return f"keyword.other.clause.{slug(block)}.trick" if own else f"support.function.{slug(registry.kind)}.trick"


def _body_rule(body: str, reg) -> dict:
    """`{ ... }` holding the clauses of the block `body`."""
    rule: dict[str, Any] = {
        "name": f"meta.block.{slug(body)}.trick",
        "begin": r"\{",
        "beginCaptures": {"0": {"name": "punctuation.section.block.begin.trick"}},
        "end": r"\}",
        "endCaptures": {"0": {"name": "punctuation.section.block.end.trick"}},
    }
    rule["patterns"] = _include(f"body-{slug(body)}" if body in reg.BLOCK_CLAUSES else "top")
    return rule


def _statement(schema: ClauseSchema, scope: str, reg, lookahead: str = "") -> dict:
    """One clause: its name, then its arguments to the end of the statement."""
    patterns: list[dict] = []
    if schema.kind is not None and schema.kind.names():
        patterns.append({"match": _words(schema.kind.names()), "name": f"support.constant.{slug(schema.kind.kind)}.trick"})
    if schema.connectives:
        patterns.append({"match": _words(schema.connectives), "name": "keyword.other.connective.trick"})
    if options(schema):
        patterns.append({
            "match": _BEFORE + "(" + "|".join(_longest_first(options(schema))) + r")\s*(=)(?!=)",
            "captures": {"1": {"name": "variable.parameter.option.trick"}, "2": {"name": "keyword.operator.assignment.trick"}},
        })
    if schema.chain:  # `hint teacher.block2 -> guided`: the `->` names a label, it starts no clause
        patterns.append({
            "match": rf"(->)\s*({IDENT})?",
            "captures": {"1": {"name": "keyword.operator.chain.trick"}, "2": {"name": "variable.other.label.trick"}},
        })
    if schema.body is not None:
        patterns.append(_body_rule(schema.body, reg))
    patterns += _include("value")
    end = _END_WITH_BODY if schema.body is not None else _END
    return {
        "begin": _BEFORE + "(" + re.escape(schema.name) + ")" + _AFTER + lookahead,
        "beginCaptures": {"1": {"name": scope}},
        "end": end.replace("|->", "") if schema.chain else end,
        "patterns": patterns,
    }


def _fixed_rules() -> dict[str, dict]:
    """The rules that do not depend on the registries."""
    option = {"1": {"name": "variable.other.option.trick"}, "2": {"name": "keyword.operator.assignment.trick"}}
    return {
        "comment": {"name": "comment.line.number-sign.trick", "match": "#.*$"},
        "string": {
            "name": "string.quoted.double.trick",
            "begin": '"',
            "end": '"|$',
            "patterns": [{"name": "constant.character.escape.trick", "match": r"\\."}],
        },
        "keywords": {
            "patterns": [
                {
                    "match": rf"^\s*(spec)\s+({IDENT})",
                    "captures": {"1": {"name": "keyword.other.spec.trick"}, "2": {"name": "entity.name.type.spec.trick"}},
                },
                {"match": r"\b(import)\b", "captures": {"1": {"name": "keyword.control.import.trick"}}},
                {
                    "match": rf"\b(as)\s+({IDENT})",
                    "captures": {"1": {"name": "keyword.control.as.trick"}, "2": {"name": "entity.name.namespace.trick"}},
                },
            ]
        },
        "target": {
            "begin": rf"{_BEFORE}(target)\s+({IDENT})",
            "beginCaptures": {"1": {"name": "keyword.other.target.trick"}, "2": {"name": "variable.other.target.trick"}},
            "end": r"(?=[;}#])|$",
            "patterns": [
                {"match": r"[<>]=?|[=!]=", "name": "keyword.operator.comparison.trick"},
                {"match": "=", "name": "keyword.operator.assignment.trick"},
                {"include": "#number"},
                {"match": r"[-+*/%]", "name": "keyword.operator.arithmetic.trick"},
                {"match": r"[()]", "name": "punctuation.section.parens.trick"},
            ],
        },
        "label": {
            "match": rf"(?:^|(?<=[;{{]))\s*({IDENT})\s*(:)",
            "captures": {"1": {"name": "entity.name.label.trick"}, "2": {"name": "punctuation.separator.label.trick"}},
        },
        "value": {"patterns": _include("string", "boolean", "option", "range", "number", "reference", "operator", "punctuation")},
        "boolean": {"match": rf"{_BEFORE}(true|false)\b", "name": "constant.language.boolean.trick"},
        "option": {"match": rf"{_BEFORE}({IDENT})\s*(=)(?!=)", "captures": option},
        "range": {
            "match": f"({NUMBER})(\\.\\.)({NUMBER})",
            "captures": {
                "1": {"name": "constant.numeric.trick"},
                "2": {"name": "keyword.operator.range.trick"},
                "3": {"name": "constant.numeric.trick"},
            },
        },
        "number": {"match": rf"{_BEFORE}{NUMBER}\b", "name": "constant.numeric.trick"},
        "reference": {"match": rf"\b{IDENT}(?:\.{IDENT})+\b", "name": "variable.other.reference.trick"},
        "operator": {
            "patterns": [
                {"match": "->", "name": "keyword.operator.chain.trick"},
                {"match": r"[<>]=?|[=!]=|[-+*/%]", "name": "keyword.operator.arithmetic.trick"},
            ]
        },
        "punctuation": {
            "patterns": [
                {"match": "[{}]", "name": "punctuation.section.block.trick"},
                {"match": r"[\[\]]", "name": "punctuation.section.list.trick"},
                {"match": "[()]", "name": "punctuation.section.parens.trick"},
                {"match": "[,;]", "name": "punctuation.separator.trick"},
            ]
        },
    }


def grammar(reg=R) -> dict:
    """The TextMate grammar of `.trick`, as a dict in the order it is written.

    `reg` is anything with the registries' BLOCKS, BLOCK_CLAUSES and ALL_REGISTRIES."""
    registries = clause_registries(reg)
    repository: dict[str, Any] = _fixed_rules()

    # Blocks: a block's name only before its `{`, which opens a region of that block's clauses.
    repository["block"] = {
        "patterns": [
            _statement(schema, "keyword.other.block.trick", reg, lookahead=r"(?=\s*\{)")
            for schema in reg.BLOCKS
            if schema.name not in KEYWORDS
        ]
    }
    for registry, block, own in registries:
        scope = _scope(registry, block, own)
        repository[f"clauses-{slug(registry.kind)}"] = {"patterns": [_statement(s, scope, reg) for s in registry if s.name not in KEYWORDS]}
    for block, block_registries in reg.BLOCK_CLAUSES.items():
        nested = _body_rule(block, reg)  # `{ }` after a name the block does not know
        repository[f"body-{slug(block)}"] = {
            "patterns": _include("comment", "string", "target", "label")
            + _include(*[f"clauses-{slug(r.kind)}" for r in block_registries])
            + [nested]
            + _include("value")
        }
    # Outside any block (and in fragments): every clause, the first registry to name it winning.
    repository["top"] = {
        "patterns": _include("comment", "string", "keywords", "target", "label", "block")
        + _include(*[f"clauses-{slug(r.kind)}" for r, _, _ in registries])
        + _include("value")
    }
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "comment": f"Generated from the registries by `{COMMAND}`; do not edit by hand.",
        "name": "Trick",
        "scopeName": "source.trick",
        "fileTypes": ["trick"],
        "patterns": _include("top"),
        "repository": repository,
    }


def render(reg=R) -> str:
    """The grammar as the JSON text of editors/trick.tmLanguage.json."""
    return json.dumps(grammar(reg), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the grammar file is out of date")
    parser.add_argument("--stdout", action="store_true", help="print the grammar instead of writing it")
    parser.add_argument("--path", type=Path, default=GRAMMAR)
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    current = args.path.read_text(encoding="utf-8") if args.path.is_file() else None
    if args.check:
        if text != current:
            print(f"{args.path} is out of date; run: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if text != current:
        args.path.write_text(text, encoding="utf-8", newline="\n")
        print(f"updated {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
