"""The stage boundaries of ARCHITECTURE.md, checked on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "trick"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "dsl").glob("*.py")), ids=lambda p: p.name)
def test_the_front_end_imports_only_lark_and_the_standard_library(path):
    import sys

    third_party = {m for m in imports_of(path) if m not in sys.stdlib_module_names and m != "__future__"}
    assert third_party <= {"lark"}, f"{path.name} imports {third_party}"


@pytest.mark.parametrize("name", ["check.py", "schema.py", "registry.py", "docs.py", "__init__.py"])
def test_the_checker_needs_no_torch(name):
    assert not imports_of(ROOT / "compiler" / name) & {"torch", "numpy"}
