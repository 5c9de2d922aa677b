"""`trickc`: exit codes, output, and the front end's promise not to import torch or numpy."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trick.cli import main

from .conftest import ROOT, SPECS

BAD = "spec t\ndata { source digits }\nmodel {\n    input [64]\n    dense 10 -> bachnorm\n}\n"


def run(*args, cwd=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "trick", *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)


def test_check_clean_specs_exits_0(capsys):
    assert main(["check", *map(str, SPECS)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{p}: ok" for p in SPECS]


def test_check_errors_exit_1_with_file_line_col(in_tmp, capsys):
    (in_tmp / "bad.trick").write_text(BAD)
    assert main(["check", "bad.trick"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "bad.trick:5:17: error: unknown layer 'bachnorm'; did you mean 'batchnorm'?\n"
        "        dense 10 -> bachnorm\n"
        "                    ^~~~~~~~\n"
        "bad.trick: 1 error\n"
    )


def test_check_json(in_tmp, capsys):
    (in_tmp / "bad.trick").write_text(BAD)
    assert main(["check", "--json", "bad.trick"]) == 1
    (d,) = json.loads(capsys.readouterr().out)
    assert (d["path"], d["line"], d["column"], d["suggestion"]) == ("bad.trick", 5, 17, "batchnorm")


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "missing.trick"], "trickc: error: no such file: missing.trick"),
        (["check", "."], "trickc: error: . is a directory; name the .trick files"),
    ],
)
def test_usage_errors_exit_2(in_tmp, capsys, args, message):
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == message


def test_bad_arguments_exit_2():
    result = run("check")
    assert result.returncode == 2
    assert "usage: trickc check" in result.stderr
    assert run("frobnicate").returncode == 2


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage", b"spec t\r\nmodel {\r\n\tdense 10 k=\r\n", b'spec "t', b"{" * 10000])
def test_no_input_gives_a_traceback(in_tmp, content):
    (in_tmp / "x.trick").write_bytes(content)
    result = run("check", "x.trick", cwd=in_tmp)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("x.trick:")


def test_fmt_rewrites_and_check_reports(in_tmp, capsys):
    (in_tmp / "a.trick").write_text("spec  a\n")
    (in_tmp / "b.trick").write_text("spec b\n")
    assert main(["fmt", "--check", "a.trick", "b.trick"]) == 1
    assert capsys.readouterr().out == "would reformat a.trick\n"
    assert (in_tmp / "a.trick").read_text() == "spec  a\n"
    assert main(["fmt", "a.trick", "b.trick"]) == 0
    assert capsys.readouterr().out == "reformatted a.trick\n"
    assert (in_tmp / "a.trick").read_text() == "spec a\n"
    assert main(["fmt", "--check", "a.trick", "b.trick"]) == 0


def test_fmt_leaves_a_file_with_syntax_errors_alone(in_tmp, capsys):
    (in_tmp / "a.trick").write_text("spec  a\nmodel {\n")
    assert main(["fmt", "a.trick"]) == 1
    assert capsys.readouterr().err.startswith("a.trick:2:7: error: this '{' is never closed")
    assert (in_tmp / "a.trick").read_text() == "spec  a\nmodel {\n"


def test_fmt_stdin_to_stdout():
    result = run("fmt", "-", stdin="spec   t\n")
    assert (result.returncode, result.stdout) == (0, "spec t\n")


def test_check_imports_neither_torch_nor_numpy():
    e1 = ROOT / "specs" / "mnist1d_cnn.trick"
    code = (
        "import sys; from trick.cli import main; rc = main(['check', %r]); "
        "bad = [m for m in ('torch', 'numpy') if m in sys.modules]; print(rc, bad)" % str(e1)
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "0 []"


def test_the_console_script_is_installed():
    import shutil

    script = shutil.which("trickc")
    assert script is not None, "pip install -e . installs the trickc command"
    result = subprocess.run([script, "check", str(SPECS[0])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0


def test_every_shipped_spec_is_formatted():
    """`trickc fmt --check specs/*.trick` passes: the examples are in the canonical layout."""
    result = run("fmt", "--check", *map(str, SPECS), cwd=ROOT)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize("name", ["s.txt", "s.TRICK", "my{v2}.trick"])
def test_an_argument_is_a_path_whatever_its_name(in_tmp, capsys, name):
    (in_tmp / name).write_text(BAD)
    assert main(["check", name]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{name}:5:17: error: unknown layer 'bachnorm'")
    assert ("dense 10 -> bachnorm" in err) == name.lower().endswith(".trick")  # only a spec's lines are quoted


# ---- fuzzing the command line ---------------------------------------------------------------------------
#
# Random command lines for check, compile and fmt over a folder of good, bad and strange files:
# every one ends with exit code 0, 1 or 2 and no traceback. In-process (trick.cli.main with its
# output captured), so that hundreds of command lines take seconds.

import contextlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCALE = float(os.environ.get("TRICK_FUZZ_SCALE", "1"))
_NESTED = "spec n\ndata { source digits }\nmodel {\n    input [64]\n    " + "repeat 2 { " * 40 + "dense 10" + " }" * 40 + "\n}\n"
FILES = {
    "good.trick": (SPECS[0]).read_text(encoding="utf-8"),
    "bad.trick": BAD,
    "s.txt": BAD,
    "my{v2}.trick": "spec  v\n",
    "empty.trick": "",
    "binary.trick": "spec t\x00\n",
    "huge.trick": "spec h\ndata { source playground spiral n=10000000000 }\nmodel {\n    input [2]\n    dense " + "9" * 5000 + "\n}\n",
    "nested.trick": _NESTED,
    "escape.trick": 'spec e\ndata { source file "x\\q.csv" }\nmodel { input [2]; dense 2 }\n',
    "import.trick": 'spec i\nimport "../../../../etc/passwd" as p\nimport "cycle.trick" as c\ndata { source digits }\nmodel { input [64]; dense 10 }\n',
    "cycle.trick": 'spec c\nimport "import.trick" as i\ndata { source digits }\nmodel { input [64]; dense 10 }\n',
    "brace.trick": "spec b\ndata { source digits }\nmodel {\n    input [64]\ntrain { epochs 1 }\n",
}
WORDS = [*FILES, "missing.trick", "folder", "folder/", "-", "", "--json", "--check", "-o", "out.py", "--plan", "plan.json", "--", "-x", "--set", "--help", "out/x.py", "\u00e9.trick", " "]


def _argv():
    return st.tuples(st.sampled_from(["check", "compile", "fmt", "run", "graph", "bogus"]), st.lists(st.sampled_from(WORDS), max_size=5)).map(lambda t: [t[0], *t[1]])


@settings(max_examples=max(1, int(120 * _SCALE)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=_argv(), stdin=st.text(max_size=200))
def test_no_command_line_gives_a_traceback(argv, stdin):
    if argv[0] in ("run", "graph"):
        argv = [argv[0], "--help"] if "--help" in argv else ["check", *argv[1:]]  # run trains and graph may call dot: their arguments only
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            for name, text in FILES.items():
                with open(name, "w", encoding="utf-8", newline="") as handle:
                    handle.write(text)
            os.mkdir("folder")
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _stdin(stdin):
                try:
                    code = main(argv)
                except SystemExit as exit:  # argparse: usage errors, --help
                    code = exit.code
        finally:
            os.chdir(old)
    assert code in (0, 1, 2), (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue(), (argv, err.getvalue())


@contextlib.contextmanager
def _stdin(text: str):
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved
