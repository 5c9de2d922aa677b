"""Loading a spec with everything it imports.

Import paths are relative to the importing file (or to the working directory for text that
has no file). A missing file or a cycle is an error at the import line; errors inside an
imported file are reported at their own file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, Span, TrickError
from .parser import parse_text, read_source


@dataclass
class Loaded:
    """A parsed spec and the specs it imports, by alias (None where loading failed)."""

    program: ast.Program
    path: Path | None
    imports: dict[str, "Loaded | None"] = field(default_factory=dict)


@dataclass
class LoadResult:
    root: Loaded | None
    diagnostics: list[Diagnostic]
    programs: dict[str, ast.Program]  # every file read, by display path, for source lines


SPEC_SUFFIX = ".trick"


def is_path(source) -> bool:
    """Whether `trick.parse(x)` should read x as a path rather than as spec text: a path
    object, a string naming an existing file, or one line ending in `.trick` (a missing spec,
    which is then an error saying so). The command line passes paths, never text."""
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str) or "\n" in source:
        return False
    try:
        if os.path.isfile(source):
            return True
    except (ValueError, OSError):  # a NUL, a name too long
        pass
    return "{" not in source and source.strip().endswith(SPEC_SUFFIX)


def is_spec_name(path: str | os.PathLike) -> bool:
    """Whether a file is named as a spec (`*.trick`): only such files are imported, and only
    their lines are quoted in diagnostics."""
    return str(path).lower().endswith(SPEC_SUFFIX)


def load(source: str | os.PathLike, name: str | None = None, origin: str | os.PathLike | None = None) -> LoadResult:
    """Parse `source` (a path or spec text) and, recursively, its imports. Text may name
    the `origin` file it belongs to (an editor's unsaved buffer): its imports are relative to that."""
    diagnostics: list[Diagnostic] = []
    programs: dict[str, ast.Program] = {}
    cache: dict[Path, Loaded | None] = {}

    def parse_one(text: str | None, path: Path | None, display: str) -> ast.Program | None:
        quoted = path is None or is_spec_name(display)  # never the lines of a file that is not a spec
        try:
            if text is None:
                assert path is not None
                text = read_source(display)
            program = parse_text(text, display)
        except TrickError as err:
            diagnostics.extend(d if quoted else _unquoted(d) for d in err.diagnostics)
            return None
        if quoted:
            programs[display] = program
        return program

    def visit(program: ast.Program, path: Path | None, stack: tuple[Path, ...]) -> Loaded:
        loaded = Loaded(program, path)
        base = path.parent if path is not None else Path.cwd()
        for imp in program.imports:
            try:
                target = (base / imp.path).resolve()
                display = _display(base / imp.path)
                exists, is_file, is_dir = target.exists(), target.is_file(), target.is_dir()
            except (OSError, ValueError, RuntimeError) as err:  # too long, a NUL, unencodable, a symlink loop
                diagnostics.append(Diagnostic(imp.path_span, f"cannot import '{imp.path}': {getattr(err, 'strerror', None) or 'not a usable file name'}"))
                loaded.imports[imp.alias] = None
                continue
            if not is_spec_name(imp.path) or not is_spec_name(target):
                why = f"it leads to {_display(target)}, which is not a .trick file" if is_spec_name(imp.path) else "it is not a .trick file"
                diagnostics.append(Diagnostic(imp.path_span, f"cannot import '{imp.path}': {why} (an import names a spec: import \"FILE.trick\" as NAME)"))
                loaded.imports[imp.alias] = None
                continue
            if target in stack:
                cycle = " -> ".join(_display(p) for p in stack[stack.index(target):] + (target,))
                diagnostics.append(Diagnostic(imp.path_span, f"import cycle: {cycle}"))
                loaded.imports[imp.alias] = None
                continue
            if target in cache:
                loaded.imports[imp.alias] = cache[target]
                continue
            if not is_file:
                where = "a directory" if is_dir else "not a regular file" if exists else "no such file"
                diagnostics.append(Diagnostic(imp.path_span, f"cannot import '{imp.path}': {where} ({display})"))
                loaded.imports[imp.alias] = cache[target] = None
                continue
            child_program = parse_one(None, target, display)
            if child_program is None:
                diagnostics.append(Diagnostic(imp.path_span, f"the imported spec '{imp.path}' has errors"))
                loaded.imports[imp.alias] = cache[target] = None
                continue
            child = visit(child_program, target, stack + (target,))
            loaded.imports[imp.alias] = cache[target] = child
        return loaded

    if is_path(source):
        display = name or str(source)
        try:
            path = Path(source).resolve()
        except (OSError, ValueError, RuntimeError) as err:  # a NUL or unencodable name, a symlink loop
            diagnostics.append(Diagnostic(Span.point(display, 1, 1), f"cannot read the file: {getattr(err, 'strerror', None) or 'not a usable file name'}"))
            return LoadResult(None, diagnostics, programs)
        program = parse_one(None, path, display)
        root = visit(program, path, (path,)) if program is not None else None
    else:
        program = parse_one(str(source), None, name or "<string>")
        origin = Path(origin).resolve() if origin is not None else None
        root = visit(program, origin, (origin,) if origin is not None else ()) if program is not None else None
    return LoadResult(root, diagnostics, programs)


def _unquoted(diagnostic: Diagnostic) -> Diagnostic:
    return Diagnostic(diagnostic.span, diagnostic.message, diagnostic.severity, diagnostic.suggestion)


def _display(path: Path) -> str:
    """A path as shown in messages: relative to the working directory when inside it."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
