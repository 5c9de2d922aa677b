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
