"""What an editor asks of the registry while the user types: hover text and completions.

Hover and completion read the text around the cursor with a small scanner rather than the
parser, since the text is usually incomplete while the user types; every name, doc and
choice comes from the registry entries (the text `docs/language.md` is generated from).
The language server (trick/lsp.py) answers the protocol with these. No torch, no numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import clauses as R
from .docs import _default, _usage  # the reference's own wording of usage and defaults
from .schema import Bool, Choice, ClauseSchema, Either, Param, Registry


KEYWORDS = {
    "spec": "`spec NAME` — the first line of a file: the spec's name.",
    "import": '`import "path.trick" as NAME` — load another spec (relative to this file), for `transfer`, `distill` and `curriculum`.',
}
_WORD_CHARS = re.compile(r"[A-Za-z0-9_.]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUM = r"[-+]?(?:\d+(?:\.(?!\.)\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(f"{_NUM}(?:\\.\\.{_NUM})?")  # a number, or a range low..high


# ---- reading the text around the cursor -------------------------------------------------------------


@dataclass
class Context:
    """Where a position is: inside which bodies, and what the clause there has so far."""

    bodies: list[str | None] = field(default_factory=list)  # the kinds of the enclosing { }, innermost last
    words: list[str] = field(default_factory=list)  # the clause's name and positional values so far
    options: list[str] = field(default_factory=list)  # the options it has given
    option: str | None = None  # the option whose value comes next (`mode=|`)
    after_arrow_of: ClauseSchema | None = None  # `hint a.b -> |`: a label, not a clause

    def registries(self) -> tuple[Registry, ...]:
        if not self.bodies:
            return (R.BLOCKS,)
        return R.BLOCK_CLAUSES.get(self.bodies[-1] or "", ())

    def schema(self) -> ClauseSchema | None:
        return lookup(self.words[0], self.bodies) if self.words else None


def lookup(name: str, bodies: list[str | None]) -> ClauseSchema | None:
    """The clause `name` means inside `bodies` (a block at the top level)."""
    for registry in Context(bodies).registries():
        if name in registry:
            return registry.get(name)
    return None


def scan(text: str, end: int) -> Context:
    """The context at offset `end` of `text`: brace nesting, and the current clause's words."""
    ctx = Context()
    saved: list[tuple[list[str], list[str]]] = []  # the clause around each open `{`
    brackets = 0
    i = 0
    while i < end:
        c = text[i]
        if c == "#":
            while i < end and text[i] != "\n":
                i += 1
            continue
        if c == '"':
            i += 1
            while i < end and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
            i += 1
            if brackets == 0:
                _value(ctx, '""')
            continue
        if c == ";" or (c == "\n" and brackets == 0):
            ctx.words, ctx.options, ctx.option, ctx.after_arrow_of = [], [], None, None
        elif c == "{":
            schema = ctx.schema()
            kind = schema.body if schema is not None and schema.body else None
            if not ctx.bodies and ctx.words and ctx.words[0] in R.BLOCKS:
                kind = ctx.words[0]
            saved.append((ctx.words, ctx.options))
            ctx.bodies = ctx.bodies + [kind]
            ctx.words, ctx.options, ctx.option, ctx.after_arrow_of = [], [], None, None
        elif c == "}":
            if ctx.bodies:
                ctx.bodies = ctx.bodies[:-1]
                ctx.words, ctx.options = saved.pop()  # `head x { ... } loss=mse`: the head goes on
            ctx.option, ctx.after_arrow_of = None, None
        elif text.startswith("->", i):
            schema = ctx.schema()
            ctx.after_arrow_of = schema if schema is not None and schema.chain else None
            ctx.words, ctx.options, ctx.option = [], [], None
            i += 2
            continue
        elif c == ":" and len(ctx.words) == 1 and not ctx.options:
            ctx.words = []  # `label: conv ...`
        elif c == "[":
            if brackets == 0:
                _value(ctx, "[]")
            brackets += 1
        elif c == "]":
            brackets = max(brackets - 1, 0)
        elif c == "=" and ctx.words and ctx.option is None and not text.startswith("==", i):
            ctx.option = ctx.words.pop()
            ctx.options.append(ctx.option)
        elif not c.isspace():
            token = _NUMBER.match(text, i, end) or _IDENT.match(text, i, end)
            j = token.end() if token else i + 1
            if token and brackets == 0:
                _value(ctx, token.group())
            i = j
            continue
        i += 1
    return ctx


def _value(ctx: Context, token: str) -> None:
    if ctx.option is not None:
        ctx.option = None  # the option's value
    else:
        ctx.words.append(token)


# ---- what to say about a name ----------------------------------------------------------------------


def _param_line(p: Param, positional_note: bool = True) -> str:
    how = " (positional)" if p.positional and positional_note else ""
    return f"- `{p.name}`{how}: {p.doc} — {p.type.describe()}, default {_default(p)}"


def clause_markdown(schema: ClauseSchema, what: str, kind: ClauseSchema | None = None) -> str:
    """A clause (or a kind of one) as the reference describes it: doc, usage, arguments."""
    parts = [f"**{schema.name}** — {what}", "", schema.doc, "", f"`{_usage(schema)}`"]
    params = list(schema.params)
    if schema.variadic is not None:
        params.append(schema.variadic)
    if params:
        parts += [""] + [_param_line(p) for p in params]
    if schema.kind is not None:
        kinds = ", ".join(f"`{k.name}`" for k in schema.kind)
        parts += ["", f"{schema.kind.kind.capitalize()}s: {kinds}" + (f" (default `{schema.kind_default}`)" if schema.kind_default else "")]
    if schema.body and schema.name in R.BLOCK_CLAUSES:
        names = ", ".join(f"`{c.name}`" for registry in R.BLOCK_CLAUSES[schema.name] for c in registry)
        parts += ["", f"Holds: {names}"]
    if schema.example:
        parts += ["", "```trick", schema.example, "```"]
    return "\n".join(parts)


def kind_markdown(clause: ClauseSchema, kind: ClauseSchema) -> str:
    parts = [f"**{clause.name} {kind.name}** — {clause.kind.kind}", "", kind.doc, "", f"`{_usage(clause, kind)}`"]
    params = list(clause.params) + list(kind.params)
    if params:
        parts += [""] + [_param_line(p) for p in params]
    return "\n".join(parts)


def param_markdown(clause: ClauseSchema, p: Param, kind: ClauseSchema | None = None) -> str:
    owner = f"{clause.name} {kind.name}" if kind is not None else clause.name
    given = "positional or named" if p.positional else "named"
    return f"**{p.name}** — option of `{owner}` ({given})\n\n{p.doc}\n\nType: {p.type.describe()}. Default: {_default(p)}."


def params_of(schema: ClauseSchema, words: list[str]) -> tuple[list[Param], ClauseSchema | None]:
    """The clause's parameters, with those of the kind its words chose (`optimizer adamw`)."""
    kind = None
    if schema.kind is not None:
        kind = schema.kind.get(words[1]) if len(words) > 1 else schema.kind.get(schema.kind_default or "")
    return list(schema.params) + (list(kind.params) if kind is not None else []), kind


def _word_at(line: str, character: int) -> tuple[int, int] | None:
    start = character
    while start > 0 and _WORD_CHARS.match(line[start - 1]):
        start -= 1
    stop = character
    while stop < len(line) and _WORD_CHARS.match(line[stop]):
        stop += 1
    return (start, stop) if stop > start and _NAME.match(line[start:stop]) else None


def hover_markdown(text: str, line: int, character: int) -> tuple[str, int, int] | None:
    """The documentation of the name at (line, character) (0-based, in code points) and the
    columns it spans, or None."""
    lines = text.split("\n")
    if not 0 <= line < len(lines) or character < 0:
        return None
    found = _word_at(lines[line], min(character, len(lines[line])))
    if found is None:
        return None
    start, stop = found
    word = lines[line][start:stop]
    offset = sum(len(l) + 1 for l in lines[:line]) + start
    ctx = scan(text, offset)
    rest = lines[line][stop:].lstrip()
    markdown = None
    if ctx.after_arrow_of is not None:
        return None
    if rest.startswith("=") and not rest.startswith("==") and ctx.words:  # an option's name
        schema = ctx.schema()
        if schema is not None:
            params, kind = params_of(schema, ctx.words)
            p = next((q for q in params if q.name == word), None)
            markdown = param_markdown(schema, p, kind if p in (kind.params if kind else ()) else None) if p is not None else None
    elif ctx.option is not None:  # an option's value: the option
        schema = ctx.schema()
        if schema is not None:
            params, kind = params_of(schema, ctx.words)
            p = next((q for q in params if q.name == ctx.option), None)
            markdown = param_markdown(schema, p) if p is not None else None
    elif not ctx.words:  # a clause, layer or block name
        if not ctx.bodies and word in KEYWORDS:
            markdown = KEYWORDS[word]
        else:
            for registry in ctx.registries():
                if word in registry:
                    markdown = clause_markdown(registry.get(word), registry.kind)
                    break
    else:
        schema = ctx.schema()
        if schema is not None and schema.kind is not None and len(ctx.words) == 1 and word in schema.kind:
            markdown = kind_markdown(schema, schema.kind.get(word))
        elif schema is not None:  # a positional value: its parameter
            params, kind = params_of(schema, ctx.words)
            positional = [p for p in params if p.positional]
            index = len(ctx.words) - 1 - (1 if kind is not None and len(ctx.words) > 1 else 0)
            p = positional[index] if index < len(positional) else schema.variadic
            markdown = param_markdown(schema, p) if p is not None else None
    return (markdown, start, stop) if markdown else None


@dataclass
class Completion:
    label: str
    kind: str  # block, clause, layer, kind, option, value, keyword
    detail: str
    documentation: str
    insert: str | None = None


def _choices(t) -> list[str]:
    if isinstance(t, Choice):
        return list(t.options)
    if isinstance(t, Bool):
        return ["true", "false"]
    if isinstance(t, Either):
        return [o for inner in t.types for o in _choices(inner)]
    return []


def completions(text: str, line: int, character: int) -> list[Completion]:
    """What may be written at (line, character): names that fit where the cursor is."""
    lines = text.split("\n")
    if not 0 <= line < len(lines) or character < 0:
        return []
    start = min(character, len(lines[line]))
    while start > 0 and _WORD_CHARS.match(lines[line][start - 1]):
        start -= 1
    ctx = scan(text, sum(len(l) + 1 for l in lines[:line]) + start)
    if ctx.after_arrow_of is not None:
        return []
    schema = ctx.schema()
    if ctx.option is not None:
        if schema is None:
            return []
        params, _ = params_of(schema, ctx.words)
        p = next((q for q in params if q.name == ctx.option), None)
        return [Completion(v, "value", f"{p.name} of {schema.name}", p.doc) for v in _choices(p.type)] if p is not None else []
    if not ctx.words:
        found = []
        if not ctx.bodies:
            found += [Completion(k, "keyword", "keyword", doc) for k, doc in KEYWORDS.items()]
        for registry in ctx.registries():
            what = "block" if registry is R.BLOCKS else "layer" if registry is R.LAYERS else "clause"
            found += [Completion(c.name, what, registry.kind, clause_markdown(c, registry.kind)) for c in registry]
        return found
    if schema is None:
        return []
    found = []
    if schema.kind is not None and len(ctx.words) == 1:
        found += [Completion(k.name, "kind", f"{schema.name} {schema.kind.kind}", kind_markdown(schema, k)) for k in schema.kind]
    params, kind = params_of(schema, ctx.words)
    positional = [p for p in params if p.positional]
    index = len(ctx.words) - 1 - (1 if kind is not None and len(ctx.words) > 1 else 0)
    nxt = positional[index] if 0 <= index < len(positional) else schema.variadic
    if nxt is not None and not (schema.kind is not None and len(ctx.words) == 1):
        found += [Completion(v, "value", f"{nxt.name} of {schema.name}", nxt.doc) for v in _choices(nxt.type)]
    given = set(ctx.options) | {p.name for p in positional[: max(index, 0)]}
    found += [Completion(p.name, "option", f"option of {schema.name}", param_markdown(schema, p), insert=f"{p.name}=") for p in params if p.name not in given]
    return found


# ---- positions ----------------------------------------------------------------------------------------
