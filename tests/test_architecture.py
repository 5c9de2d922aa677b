"""The stage boundaries of ARCHITECTURE.md, checked on the source: every import, relative ones
included, against a table of allowed arrows; no cycles; no torch or numpy behind `trickc check`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "trick"

# Where each part of the package may point (a module of `trick` names its part: trick.dsl.*
# is "dsl", trick.compiler.build is "compiler.build", ...). Arrows point one way:
# dsl -> compiler -> runtime -> driver -> cli/lsp; `layers` (what torch lacks) is a leaf.
ALLOWED: dict[str, set[str]] = {
    "dsl": {"dsl"},
    "layers": set(),
    "compiler": {"dsl", "compiler", "compiler.ir", "compiler.graph", "compiler.build"},  # build only lazily (Program.model)
    "compiler.ir": {"dsl", "compiler.ir"},
    "compiler.graph": {"dsl", "compiler", "compiler.ir"},
    "compiler.build": {"dsl", "compiler", "compiler.ir", "layers"},
    "runtime": {"dsl", "compiler.ir", "compiler.graph", "layers", "runtime"},
    "driver": {"dsl", "runtime"},
    "study": {"dsl", "compiler", "runtime", "driver"},  # ablate, sweep, compare: many runs of a spec, above the driver
    "cli": {"dsl", "compiler", "compiler.graph", "runtime", "driver", "lsp", "study"},
    "lsp": {"dsl", "compiler"},
    "pygments_lexer": {"compiler"},
    "package": {"dsl", "compiler", "runtime", "driver", "cli"},  # trick/__init__.py and __main__.py (runtime: Program.augment's hook)
}
THIRD_PARTY: dict[str, set[str]] = {
    "dsl": {"lark"},
    "layers": {"torch"},
    "compiler": {"torch"},  # Program.model seeds torch (lazily; the test below keeps `check` free of it)
    "compiler.ir": set(),
    "compiler.graph": set(),
    "compiler.build": {"torch"},
    "runtime": {"torch", "numpy", "tqdm", "matplotlib", "mnist1d", "sklearn", "PIL", "onnx", "onnxruntime"},  # onnx*: `trickc export` only, the `export` extra
    "driver": set(),
    "study": {"torch", "optuna", "matplotlib", "tqdm", "scipy"},  # scipy: Student's t quantile (scikit-learn's dependency)
    "cli": {"torch"},  # only to recognize a lost distributed peer
    "lsp": {"pygls", "lsprotocol"},
    "pygments_lexer": {"pygments"},
    "package": set(),
}


def part_of(module: str) -> str:
    """`trick.compiler.lower` -> "compiler"; `trick.compiler.build` -> "compiler.build"."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("__init__", "__main__"):
        return "package"
    if parts[0] == "compiler" and len(parts) > 1 and parts[1] in ("build", "ir", "graph"):
        return "compiler." + parts[1]
    return parts[0]


def allowed_part(source_part: str, target_part: str) -> bool:
    return target_part == source_part or target_part in ALLOWED[source_part]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names if target.startswith("trick") and _is_module(f"{target}.{a.name}")}
            found |= submodules  # `from . import ir` imports the module trick.compiler.ir
            if len(submodules) < len(node.names):
                found.add(target)
    return found


def _is_module(name: str) -> bool:
    path = ROOT.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_module_belongs_to_a_part_of_the_table():
    for path in MODULES:
        part = part_of(module_name(path))
        assert part in ALLOWED and part in THIRD_PARTY, f"{path}: {part} is not in the table of arrows"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_arrows(path):
    source = part_of(module_name(path))
    bad = []
    for target in imports_of(path):
        top = target.split(".")[0]
        if top == "trick":
            if target == "trick":
                continue
            if not allowed_part(source, part_of(target)):
                bad.append(target)
        elif top not in sys.stdlib_module_names and top != "__future__":
            if not any(target == t or target.startswith(t + ".") or top == t for t in THIRD_PARTY[source]):
                bad.append(target)
    assert not bad, f"{module_name(path)} ({source}) imports {sorted(bad)}"


def test_there_are_no_import_cycles_between_modules():
    graph = {module_name(p): {t for t in imports_of(p) if t.startswith("trick.") and t != module_name(p)} for p in MODULES}
    known = set(graph)
    graph = {m: {t for t in ts if t in known} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_table_catches_a_relative_import_against_the_arrows(tmp_path):
    """The check itself: a compiler module importing the runtime relatively is caught."""
    fake = ROOT / "compiler" / "_arrow_probe.py"
    assert not fake.exists()
    fake.write_text("from ..runtime import trainer\n")
    try:
        target = imports_of(fake)
        assert "trick.runtime.trainer" in target
        assert not allowed_part(part_of(module_name(fake)), part_of("trick.runtime.trainer"))
    finally:
        fake.unlink()


def test_trickc_check_imports_neither_torch_nor_numpy():
    spec = Path(__file__).resolve().parents[1] / "specs" / "mnist1d_fitnet.trick"
    code = (
        "import sys\nfrom trick.cli import main\n"
        f"code = main(['check', {str(spec)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
