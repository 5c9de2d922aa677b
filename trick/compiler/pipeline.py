"""The one pipeline: load -> check -> lower -> link, each stage once per file.

    load    parse the spec and, recursively, its imports (each file once; dsl/imports.py)
    check   bind every clause against its registry entry, run the registered checks
    lower   shape inference and the IR: a ModelGraph and a TrainingPlan
    link    the checks that join a spec to its imports (transfer, distillation), on the
            imports' graphs from their own lowering

Each loaded file goes through the stages once per call (an import shared by two specs too),
and the compiled program carries its compiled imports, so nothing later compiles again.
No torch, no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..dsl.diagnostics import Diagnostic, SourceLines, Span, TrickCheckError
from ..dsl.imports import Loaded, load
from . import ir
from .check import CheckedSpec, Checker
from .link import link
from .lower import lower
from .plan import content_hash, nowhere
from .program import Program


@dataclass
class Unit:
    """One spec through the stages: its checked form, its IR (None after an error), and the
    diagnostics each stage found in it."""

    loaded: Loaded
    checked: CheckedSpec
    graph: ir.ModelGraph | None
    plan: ir.TrainingPlan | None
    diagnostics: list[Diagnostic]
    imports: dict[str, Unit | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.graph is not None and self.plan is not None and not any(d.severity == "error" for d in self.diagnostics)


@dataclass
class Compiled:
    """What the pipeline found: the root spec's unit, every diagnostic in line order, and
    the source lines they point into."""

    root: Unit | None
    diagnostics: list[Diagnostic]
    lines: SourceLines
    overrides: tuple[str, ...] = ()
    _programs: dict[int, Program] = field(default_factory=dict, repr=False)

    @property
    def spec(self) -> CheckedSpec | None:
        return self.root.checked if self.root is not None else None

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def program(self) -> Program:
        """The compiled root spec; a TrickCheckError with every error if there are any."""
        errors = [d for d in self.diagnostics if d.severity == "error"]
        if errors:
            raise TrickCheckError(errors)
        if self.root is None or not self.root.ok:  # a stage stopped without saying why: never silently
            raise TrickCheckError([Diagnostic(nowhere(self.root.checked) if self.root else Span.point("<spec>", 1, 1), "the model could not be built")])
        return self._program(self.root, self.overrides)

    def _program(self, unit: Unit, overrides: tuple[str, ...] = ()) -> Program:
        key = id(unit)
        if key not in self._programs:
            assert unit.graph is not None and unit.plan is not None
            imports = {alias: self._program(child) for alias, child in unit.imports.items() if child is not None and child.ok}
            warnings = [d for d in self.diagnostics if d.severity == "warning"] if unit is self.root else [d for d in unit.diagnostics if d.severity == "warning"]
            self._programs[key] = Program(unit.graph, unit.plan, warnings, unit.checked.program.text, content_hash(unit.checked), imports, overrides, self.lines)
        return self._programs[key]


def run_pipeline(source, name: str | None = None, overrides: list[str] | None = None, origin=None) -> Compiled:
    """Every stage on `source` (a path or spec text) and its imports, after applying
    `--set`-style `overrides` to it. Text may name the file `origin` it is the (unsaved)
    content of, which its imports and data files are relative to."""
    result = load(source, name, origin)
    lines = SourceLines()
    for display, program in result.programs.items():
        lines.add(display, program.text)
    if overrides and result.root is not None:
        from .overrides import apply

        program, texts = apply(result.root.program, overrides)
        result.root.program = program
        for display, text in texts.items():
            lines.add(display, text)
    diagnostics = list(result.diagnostics)
    units: dict[int, Unit] = {}

    def visit(loaded: Loaded) -> Unit:
        key = id(loaded)
        if key not in units:
            imports = {alias: (visit(child) if child is not None else None) for alias, child in loaded.imports.items()}
            checker = Checker(loaded)
            checked = checker.run({alias: (u.checked if u is not None else None) for alias, u in imports.items()})
            found = list(checker.diagnostics)
            graph = plan = None
            if not any(d.severity == "error" for d in found):
                graph, plan, errors = lower(checked)
                found += errors
                if graph is not None and plan is not None and not any(d.severity == "error" for d in errors):  # lowering's warnings too
                    found += link(plan, graph, {alias: (u.graph if u is not None and u.ok else None) for alias, u in imports.items()})
            units[key] = Unit(loaded, checked, graph, plan, found, imports)
            diagnostics.extend(found)
        return units[key]

    root = visit(result.root) if result.root is not None else None
    unique: dict[tuple, Diagnostic] = {}
    for d in diagnostics:
        unique.setdefault((d.span, d.message), lines.attach(d) if d.source_line is None else d)
    first = root.checked.program.file if root is not None else ""
    ordered = sorted(unique.values(), key=lambda d: (d.span.file != first, d.span.file, d.span.line, d.span.column))
    return Compiled(root, ordered, lines, tuple(overrides or ()))


def check_source(source, name: str | None = None, overrides: list[str] | None = None, origin=None) -> Compiled:
    """Every diagnostic of a spec and its imports (`.diagnostics`, `.ok`); `trickc check`."""
    return run_pipeline(source, name, overrides, origin)


def compile_source(source, name: str | None = None, overrides: list[str] | None = None) -> Program:
    """Check, lower and link a spec (text or path), with `--set` overrides; raise a
    TrickError with every error."""
    return run_pipeline(source, name, overrides).program()
