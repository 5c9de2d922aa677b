"""Syntax highlighting of `.trick` files with Pygments: `pygmentize -l trick spec.trick`.

Registered as the `pygments.lexers` entry point `trick`, so Pygments (and Sphinx, MkDocs,
Jupyter, GitHub-style renderers built on it) find it by name and by the `.trick` extension.
The clause, layer and kind names come from the registries the checker uses, through
`trick.compiler.editor_grammar.names` (no torch), as the TextMate grammar's do.

    block names (data, model, ...)       Keyword
    spec, import, as, target             Keyword.Namespace / Keyword
    true, false                          Keyword.Constant
    layers (conv, batchnorm, ...)        Name.Builtin
    other clauses (epochs, source, ...)  Name.Function
    kinds (adamw, cosine, zscore, ...)   Name.Constant
    option names before `=`              Name.Attribute
    labels before `:`                    Name.Label
    `->`, `..`, `=`, target operators    Operator
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from .compiler.editor_grammar import NUMBER as _NUMBER
from .compiler.editor_grammar import names

# Block, layer, other clause and kind names, longest first: the registries' names, read the
# way the TextMate grammar in editors/ reads them (trick/compiler/editor_grammar.py).
_NAMES = names()
BLOCKS, LAYERS, CLAUSES, KINDS = list(_NAMES.blocks), list(_NAMES.layers), list(_NAMES.clauses), list(_NAMES.kinds)


class TrickLexer(RegexLexer):
    """The `.trick` language of training recipes."""

    name = "Trick"
    aliases = ["trick"]
    filenames = ["*.trick"]
    mimetypes = ["text/x-trick"]

    tokens = {
        # The start of a statement: a block, a clause or a layer (or a label, spec, import).
        "root": [
            include("space"),
            (r"(spec)(\s+)([A-Za-z_]\w*)", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (r"(import)\b", Keyword.Namespace, "arguments"),
            (r"(target)(\s+)([A-Za-z_]\w*)", bygroups(Keyword, Whitespace, Name.Variable), "arguments"),
            (r"([A-Za-z_]\w*)(\s*)(:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (words(BLOCKS, prefix=r"(?<![\w.])", suffix=r"(?=\s*\{)"), Keyword),
            (words(LAYERS, prefix=r"(?<![\w.])", suffix=r"\b(?!\.)"), Name.Builtin, "arguments"),
            (words(CLAUSES, prefix=r"(?<![\w.])", suffix=r"\b(?![.=])"), Name.Function, "arguments"),
            (r"[A-Za-z_]\w*\b(?!\s*=)(?!\.)", Name, "arguments"),
            include("values"),
        ],
        # After a clause's name: its arguments, to the end of the statement.
        "arguments": [
            (r"[ \t\f\r]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r"\n", Whitespace, "#pop"),
            (r";", Punctuation, "#pop"),
            (r"->", Operator, "#pop"),
            (r"[{}]", Punctuation, "#pop"),
            (words(KINDS, prefix=r"(?<![\w.])", suffix=r"\b(?![.=])"), Name.Constant),
            (r"(as)(\s+)([A-Za-z_]\w*)", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            include("values"),
        ],
        "space": [
            (r"[ \t\f\r\n]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r";", Punctuation),
        ],
        "values": [
            (r'"(?:[^"\\\n]|\\[^\n])*"', String.Double),
            (r"(true|false)\b", Keyword.Constant),
            (r"([A-Za-z_]\w*)(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (rf"({_NUMBER})(\.\.)({_NUMBER})", bygroups(Number, Operator, Number)),
            (r"-?(?:[0-9]+\.[0-9]+|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|-?[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"-?[0-9]+", Number.Integer),
            (r"->", Operator),
            (r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", Name.Variable),  # val.loss, teacher.block2
            (r"[A-Za-z_]\w*", Name),
            (r"[<>]=?|[=!]=|[-+*/%]", Operator),
            (r"[{}\[\](),;:]", Punctuation),
            (r"[^\S\n]+", Whitespace),
            (r"\n", Whitespace),
            (r".", Text),
        ],
    }
