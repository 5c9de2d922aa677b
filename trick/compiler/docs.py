"""The clause reference of docs/language.md, generated from the registries.

    python -m trick.compiler.docs            # rewrite the generated part of docs/language.md
    python -m trick.compiler.docs --check    # exit 1 if it is out of date

Only the text between the BEGIN and END markers is generated; the rest of the file is
written by hand. A test fails when the two disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import clauses as R
from .schema import REQUIRED, ClauseSchema, Param, Registry

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m trick.compiler.docs -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"

# The registries that kinds of a clause (`optimizer KIND`) dispatch to are documented under
# the clause; these are the blocks' own clause lists, in reading order.
_BLOCK_ORDER = ["data", "augment", "model", "train", "evaluate", "transfer", "distill", "curriculum", "report", "sweep"]


def _default(param: Param) -> str:
    if param.default is REQUIRED:
        return "required"
    value = param.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{_num(value[0])}..{_num(value[1])}"
    if isinstance(value, tuple) and not value:
        return "none"
    if isinstance(value, (int, float)):
        return _num(value)
    return str(value)


def _num(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e6:
        return str(int(x))
    return repr(x)


def _usage(schema: ClauseSchema, kind: ClauseSchema | None = None) -> str:
    if schema.usage:
        return schema.usage
    parts = [schema.name]
    if kind is not None:
        parts.append(kind.name)
    params = list(schema.params) + (list(kind.params) if kind else [])
    for p in params:
        if p.positional:
            parts.append(p.name.upper() if p.required else f"[{p.name.upper()}]")
    if schema.variadic is not None:
        parts.append(f"{schema.variadic.name.upper()}...")
    if schema.chain:
        parts.append("-> LABEL")
    for p in params:
        if not p.positional:
            parts.append(f"{p.name}=…" if p.required else f"[{p.name}=…]")
    if schema.body:
        parts.append("{ … }")
    return " ".join(parts)


def _param_rows(params: list[Param], variadic: Param | None = None) -> list[str]:
    rows = []
    for p in params:
        how = "positional or named" if p.positional else "named"
        rows.append(f"| `{p.name}` | {how} | {p.type.describe()} | {_default(p)} | {p.doc} |")
    if variadic is not None:
        rows.append(f"| `{variadic.name}` | positional, any number | {variadic.type.describe()} | {_default(variadic)} | {variadic.doc} |")
    return rows


_HEADER = ["| argument | given | type | default | meaning |", "|---|---|---|---|---|"]


def _clause(schema: ClauseSchema, level: str) -> list[str]:
    out = [f"{level} `{schema.name}`", "", schema.doc, ""]
    if schema.kind is None:
        out += [f"Usage: `{_usage(schema)}`", ""]
        rows = _param_rows(list(schema.params), schema.variadic)
        if rows:
            out += _HEADER + rows + [""]
    else:
        kinds: Registry = schema.kind
        default = f" (default `{schema.kind_default}`)" if schema.kind_default else ""
        out += [f"The first argument picks {_article(kinds.kind)}{default}: {', '.join(f'`{k}`' for k in kinds.names())}.", ""]
        if schema.connectives:
            out += [f"The word{'s' if len(schema.connectives) > 1 else ''} {', '.join(f'`{w}`' for w in schema.connectives)} may be written for readability and is skipped.", ""]
        if schema.params:
            out += ["Arguments for every kind:", ""] + _HEADER + _param_rows(list(schema.params)) + [""]
        for entry in kinds:
            out += [f"- `{_usage(schema, entry)}` — {entry.doc}"]
            rows = _param_rows(list(entry.params))
            if rows:
                out += [""] + ["  " + r for r in _HEADER + rows]
            out += [""]
    if schema.repeatable:
        out += ["May be given more than once" + (" (once per kind)." if schema.kind is not None else "."), ""]
    if schema.example:
        out += ["```trick", schema.example, "```", ""]
    return out


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def reference() -> str:
    """The generated reference: every block, its clauses, and their arguments."""
    out = [BEGIN, "", "## Blocks", ""]
    out += ["| block | required | holds |", "|---|---|---|"]
    for name in _BLOCK_ORDER:
        schema = R.BLOCKS.get(name)
        out.append(f"| `{name}` | {'yes' if name in R.REQUIRED_BLOCKS else 'no'} | {schema.doc} |")
    out.append("")
    for name in _BLOCK_ORDER:
        out += [f"## The `{name}` block", "", R.BLOCKS.get(name).doc, ""]
        for registry in R.BLOCK_CLAUSES[name]:
            if registry is R.LAYERS:
                out += ["### Layers", "", R.LAYERS.doc, ""]
            for schema in registry:
                out += _clause(schema, "####" if registry is R.LAYERS else "###")
    out.append(END)
    return "\n".join(out) + "\n"


def render_doc(current: str) -> str:
    """`current` with its generated part replaced by the registries' reference."""
    if BEGIN not in current or END not in current:
        raise ValueError(f"docs/language.md lacks the markers {BEGIN!r} and {END!r}")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + reference().rstrip("\n") + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trick.compiler.docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/language.md is out of date")
    parser.add_argument("--path", type=Path, default=DOC)
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    updated = render_doc(current)
    if args.check:
        if updated != current:
            print(f"{args.path} is out of date; run: python -m trick.compiler.docs", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        args.path.write_text(updated, encoding="utf-8")
        print(f"updated {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
