"""The canonical layout of a .trick file (`trickc fmt`).

Four spaces per level; one clause per line, except blocks the author wrote on one line
(`data { source mnist1d; validation 0.1 }`), which stay on one line while they fit; one
space around '->' and none around '='; positional arguments before options, and a body's
options after its closing brace; at most one blank line in a row; a blank line between
top-level blocks. Comments are kept: a comment on its own line stays on its own line before
the code that followed it, and trailing comments are aligned within each run of lines.

The layout depends only on the AST, the comments and where the author put blank lines and
one-line blocks, so formatting twice gives the same text as formatting once.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast
from .show import show_value

INDENT = "    "
MAX_WIDTH = 100
_PRECEDENCE = {"<": 1, "<=": 1, ">": 1, ">=": 1, "==": 1, "!=": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}


def format_program(program: ast.Program) -> str:
    return _Formatter(program).run()


def statement_text(statement: ast.Statement) -> str:
    """One statement on one line, its bodies inline, as a one-line block writes it."""
    return _Formatter(ast.Program(())).statement_inline(statement)


def format_text(text: str, file: str = "<string>") -> str:
    from .parser import parse_text

    return format_program(parse_text(text, file))


# ---- expressions ---------------------------------------------------------------------------------


def expr_text(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Number):
        return show_value(expr)
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Neg):
        inner = expr_text(expr.operand)
        return f"-({inner})" if isinstance(expr.operand, ast.BinOp) else f"-{inner}"
    assert isinstance(expr, ast.BinOp)
    level = _PRECEDENCE[expr.op]
    left, right = expr_text(expr.left), expr_text(expr.right)
    if isinstance(expr.left, ast.BinOp) and (_PRECEDENCE[expr.left.op] < level or (level == 1 and _PRECEDENCE[expr.left.op] == 1)):
        left = f"({left})"
    if isinstance(expr.right, ast.BinOp) and _PRECEDENCE[expr.right.op] <= level:
        right = f"({right})"
    return f"{left} {expr.op} {right}"


# ---- statements ----------------------------------------------------------------------------------


@dataclass
class _Out:
    depth: int
    text: str
    anchor: int  # the source line this output line stands for
    closing: bool = False  # a '}' line: comments before it belong one level deeper
    blank_before: bool = False
    comment: str | None = None


class _Formatter:
    def __init__(self, program: ast.Program):
        self.program = program
        self.source_lines = program.text.split("\n")
        self.out: list[_Out] = []

    def blank(self, line: int) -> bool:
        """Whether the source line before `line` is blank."""
        return 2 <= line <= len(self.source_lines) + 1 and not self.source_lines[line - 2].strip()

    def run(self) -> str:
        previous = None
        for item in self.program.items:
            kind = type(item).__name__ if not isinstance(item, ast.Line) else "Block"
            start = len(self.out)
            self.top_level(item)
            if start < len(self.out) and previous is not None:
                self.out[start].blank_before = kind != previous or kind == "Block" or self.blank(item.span.line)
            previous = kind
        self.place_comments()
        return self.render()

    def top_level(self, item) -> None:
        if isinstance(item, ast.SpecDecl):
            self.emit(0, f"spec {item.name}", item.span.line)
        elif isinstance(item, ast.Import):
            self.emit(0, f'import {show_value(ast.String(item.path))} as {item.alias}', item.span.line)
        else:
            self.statement(item, 0)

    def emit(self, depth: int, text: str, anchor: int, closing: bool = False) -> _Out:
        line = _Out(depth, text, anchor, closing)
        self.out.append(line)
        return line

    def statement(self, statement: ast.Statement, depth: int) -> None:
        if isinstance(statement, ast.Target):
            self.emit(depth, f"target {statement.name} = {expr_text(statement.expr)}", statement.span.line)
            return
        inline = self.inline(statement)
        if inline is not None and len(INDENT * depth + inline) <= MAX_WIDTH:
            self.emit(depth, inline, statement.span.line)
            return
        # Multi-line: every clause with a body written over several lines (or too long to
        # fit) opens its block at the end of a line; the chain goes on after its '}'.
        text = f"{statement.label}: " if statement.label else ""
        anchor, closing = statement.span.line, False
        for position, clause in enumerate(statement.chain):
            arrow = " -> " if position < len(statement.chain) - 1 else ""
            if clause.body is None or _one_line(clause) and len(INDENT * depth + text + self.clause_inline(clause)) <= MAX_WIDTH:
                text += self.clause_inline(clause) + arrow
                continue
            self.emit(depth, text + self.clause_head(clause) + "{", anchor, closing)
            first = True
            for inner in clause.body:
                start = len(self.out)
                self.statement(inner, depth + 1)
                if not first and start < len(self.out) and self.blank(inner.span.line):
                    self.out[start].blank_before = True
                first = False
            text, anchor, closing = "}" + self.clause_tail(clause) + arrow, clause.span.end_line, True
        self.emit(depth, text, anchor, closing)

    def inline(self, statement: ast.Line) -> str | None:
        """The statement on one line, if the author wrote every block in it on one line."""
        for clause in statement.chain:
            if clause.body is not None and not _one_line(clause):
                return None
        prefix = f"{statement.label}: " if statement.label else ""
        return prefix + " -> ".join(self.clause_inline(c) for c in statement.chain)

    def clause_head(self, clause: ast.Clause) -> str:
        parts = [clause.name] + [show_value(a) for a in clause.args]
        if clause.body is None:
            parts += [f"{o.name}={show_value(o.value)}" for o in clause.options]
        return " ".join(parts) + " "

    def clause_tail(self, clause: ast.Clause) -> str:
        return "".join(f" {o.name}={show_value(o.value)}" for o in clause.options)

    def clause_inline(self, clause: ast.Clause) -> str:
        if clause.body is None:
            return self.clause_head(clause).rstrip()
        inner = "; ".join(self.statement_inline(s) for s in clause.body)
        body = f"{{ {inner} }}" if inner else "{ }"
        return self.clause_head(clause) + body + self.clause_tail(clause)

    def statement_inline(self, statement: ast.Statement) -> str:
        if isinstance(statement, ast.Target):
            return f"target {statement.name} = {expr_text(statement.expr)}"
        prefix = f"{statement.label}: " if statement.label else ""
        return prefix + " -> ".join(self.clause_inline(c) for c in statement.chain)

    # -- comments --------------------------------------------------------------------------------

    def place_comments(self) -> None:
        anchored: dict[int, int] = {}
        for index, line in enumerate(self.out):
            anchored[line.anchor] = index  # the last output line for each source line
        own_line: dict[int, list[tuple[str, bool]]] = {}  # output index -> comments before it
        trailing_at_end: list[tuple[str, bool]] = []
        for comment in self.program.comments:
            line = comment.span.line
            code_before = self.source_lines[line - 1][: comment.span.column - 1].strip()
            if code_before and line in anchored:
                target = self.out[anchored[line]]
                target.comment = comment.text if target.comment is None else target.comment + " " + comment.text[1:].lstrip()
                continue
            following = next((i for i, out in enumerate(self.out) if out.anchor > line), None)
            entry = (comment.text, self.blank(line))
            if following is None:
                trailing_at_end.append(entry)
            else:
                own_line.setdefault(following, []).append(entry)
        merged: list[_Out] = []
        for index, line in enumerate(self.out):
            comments = own_line.get(index, [])
            for n, (text, blank) in enumerate(comments):
                first_in_block = not merged or merged[-1].text.endswith("{")
                if n == 0:
                    blank = blank or line.blank_before  # a blank line that had to be there stays first
                depth = line.depth + 1 if line.closing else line.depth
                merged.append(_Out(depth, text, line.anchor, blank_before=blank and not first_in_block))
            if comments:
                line.blank_before = self.blank(line.anchor) and not line.closing
            merged.append(line)
        for text, blank in trailing_at_end:
            merged.append(_Out(0, text, 10**9, blank_before=blank and bool(merged)))
        self.out = merged

    def render(self) -> str:
        lines: list[str] = []
        # Align trailing comments within each run of consecutive lines that have them.
        run: list[int] = []

        def flush() -> None:
            if run:
                column = max(len(INDENT * self.out[i].depth + self.out[i].text) for i in run) + 2
                for i in run:
                    code = INDENT * self.out[i].depth + self.out[i].text
                    lines[i_to_line[i]] = code.ljust(column) + self.out[i].comment
                run.clear()

        i_to_line: dict[int, int] = {}
        for index, line in enumerate(self.out):
            if line.blank_before and lines:
                flush()
                lines.append("")
            i_to_line[index] = len(lines)
            lines.append(INDENT * line.depth + line.text)
            if line.comment is not None and not line.text.startswith("#"):
                if run and self.out[run[-1]].depth != line.depth:
                    flush()
                run.append(index)
            else:
                flush()
        flush()
        return "\n".join(lines).rstrip() + "\n" if lines else ""


def _one_line(clause: ast.Clause) -> bool:
    return clause.span.line == clause.span.end_line
