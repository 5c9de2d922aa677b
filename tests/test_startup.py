"""What makes `trickc check` start fast (trick/dsl/startup.py, the plain `check` in trick/cli.py)
changes nothing but the speed: the cached dataclass code gives the same classes, a damaged
cache is rebuilt, Lark runs without `regex`, and a plain `check` is read as the parser reads it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trick import cli

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: imports the front end, uses its dataclasses, and reports what the
# code cache did (compiled anew, the cache file) and whether `regex` was imported.
PROBE = """
import json, sys
import trick.compiler.pipeline as pipeline
from trick.dsl import startup
from trick.dsl.ast import Number
from trick.dsl.diagnostics import Span
a, b = Number(3, Span.point("f", 1, 1), "3"), Number(3, None, "3.0")
try:
    a.value = 4
    frozen = False
except Exception as err:
    frozen = type(err).__name__
checked = pipeline.check_source(sys.argv[1])
print(json.dumps({"new": len(startup._new), "known": len(startup._known), "file": startup._FILE,
                  "eq": a == b, "hash": hash(a) == hash(b), "repr": repr(a), "frozen": frozen,
                  "ok": checked.ok, "regex": "regex" in sys.modules}))
"""


def probe(tmp_path: Path, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "TRICK_NO_CODE_CACHE"}
    environment.update(XDG_CACHE_HOME=str(tmp_path / "cache"), **env)
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "specs" / "mnist1d_cnn.trick")], capture_output=True, text=True, cwd=ROOT, env=environment, check=True)
    return json.loads(out.stdout)


def test_the_second_start_compiles_no_dataclass_code_and_gets_the_same_classes(tmp_path):
    first = probe(tmp_path)
    assert first["new"] > 50 and first["known"] == 0  # everything compiled, then written at exit
    cache = Path(first["file"])
    assert cache.is_file() and cache.parent == tmp_path / "cache" / "trick"
    second = probe(tmp_path)
    assert second["new"] == 0 and second["known"] == first["new"]  # nothing compiled again
    for key in ("eq", "hash", "repr", "frozen", "ok"):
        assert first[key] == second[key]
    assert second["eq"] and second["hash"] and second["repr"] == "Number(value=3)" and second["frozen"] == "FrozenInstanceError"


def test_a_damaged_cache_file_is_compiled_again_and_replaced(tmp_path):
    cache = Path(probe(tmp_path)["file"])
    cache.write_bytes(b"\x00garbage, not marshal data")
    again = probe(tmp_path)
    assert again["known"] == 0 and again["new"] > 50 and again["ok"]
    assert probe(tmp_path)["new"] == 0  # rewritten whole


def test_the_cache_can_be_turned_off(tmp_path):
    off = probe(tmp_path, TRICK_NO_CODE_CACHE="1")
    assert off["file"] is None and off["new"] == 0 and off["ok"]
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(importlib.util.find_spec("regex") is None, reason="the regex package is not installed")
def test_lark_is_imported_without_regex_which_stays_importable(tmp_path):
    assert probe(tmp_path)["regex"] is False
    code = "import trick.dsl, regex, lark.utils; print(lark.utils._has_regex, regex.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "regex"]


@pytest.mark.parametrize(
    "words",
    [
        ["check", "a.trick"],
        ["check", "a.trick", "b.trick"],
        ["check", "--json", "a.trick"],
        ["check", "a.trick", "--json", "--json"],
        ["check", "--json", "a.trick", "b.trick", "--json"],
    ],
)
def test_a_plain_check_is_read_as_the_parser_reads_it(words):
    quick = cli._plain_check(words)
    assert quick is not None
    assert vars(quick) == vars(cli._parser().parse_args(words))


@pytest.mark.parametrize("words", [["check"], ["check", "--json"], ["check", "-", "a.trick"], ["check", "a.trick", "--json", "b.trick"], ["check", "--js", "a.trick"], ["check", "-h"], ["fmt", "a.trick"], []])
def test_anything_else_goes_through_the_parser(words):
    assert cli._plain_check(words) is None
