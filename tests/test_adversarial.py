"""Adversarial inputs: no spec text or command line makes trickc print a traceback, hang, or
say something false.

Each row is a bad input with the exact diagnostics it must get (file:line:col and message),
run in-process through `trick.cli.main` in an empty folder. The memory limit is fixed with
TRICK_MEMORY_LIMIT, so that the messages are the same on every machine. The tests further
down cover what needs more than `trickc check`: building and running models, generated
source, the summary, the language server.
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

import trick
from trick.cli import main
from trick.compiler.pipeline import check_source, compile_source

BASE = "spec t\ndata {{\n    source {source}\n}}\nmodel {{\n    input [{inp}]\n{model}\n}}\ntrain {{\n{train}\n}}\n{extra}"


def spec(model="    dense 2", source="playground spiral", inp="2", train="    epochs 1", extra="", name="t") -> str:
    return BASE.format(model=model, source=source, inp=inp, train=train, extra=extra).replace("spec t", f"spec {name}", 1)


IMAGES = {"source": "synthetic_images", "inp": "3, 16, 16"}


def importing(path: str) -> str:
    return f"spec t\nimport {path} as p\n" + spec().split("\n", 1)[1]


TOO_LARGE = "is too large; numbers in a spec are at most about 1.8e308 (the largest 64-bit float)"
LIMIT = "more than the memory limit TRICK_MEMORY_LIMIT=64G"
NEVER_CLOSED = "expected '}' before 'train': the model block (line 5) is never closed, and a train block cannot go inside it"

# (id, spec text, [(line, column, severity, message)]): every diagnostic `trickc check` prints.
CASES = [
    # 1. numbers: a 100,000-digit literal, integers beyond int64 or beyond their maxima, floats for integers
    ("long_integer", spec(model="    dense " + "9" * 100_000), [(7, 11, "error", f"the number 999999999999... (100,000 characters) {TOO_LARGE}")]),
    ("float_beyond_range", spec(train="    optimizer adam lr=1e400"), [(10, 23, "error", f"the number 1e400 {TOO_LARGE}")]),
    ("batch_beyond_int64", spec(train="    batch 99999999999999999999"), [(10, 11, "error", "batch: 99999999999999999999 is out of range; expected an integer in [1, 1000000]")]),
    ("seed_beyond_int64", spec(train="    seed 99999999999999999999"), [(10, 10, "error", "seed: 99999999999999999999 is out of range; expected an integer in [0, 9223372036854775807]")]),
    ("units_beyond_int64", spec(model="    dense 99999999999999999999 -> dense 2"), [(7, 11, "error", "dense: 99999999999999999999 is out of range; expected an integer in [1, 1000000]")]),
    ("epochs_as_a_float", spec(train="    epochs 1e20"), [(10, 12, "error", "epochs: expected an integer >= 1, found 1e20")]),
    ("units_as_a_float", spec(model="    dense 1e20 -> dense 2"), [(7, 11, "error", "dense: expected an integer >= 1, found 1e20")]),
    ("epochs_beyond_the_maximum", spec(train="    epochs 1000001"), [(10, 12, "error", "epochs: 1000001 is out of range; expected an integer in [1, 1000000]")]),
    # 2. memory: data and networks that cannot fit
    (
        "images_too_many",
        spec(source="synthetic_images n=100000000", inp="3, 16, 16", model="    flatten -> dense 4"),
        [(3, 31, "error", f"source synthetic_images needs about 573 GiB of memory for its data (100,000,000 samples × (768 values and a label) × 8 bytes), {LIMIT}")],
    ),
    (
        "points_too_many",
        spec(source="playground spiral n=10000000000"),
        [(3, 32, "error", f"source playground needs about 224 GiB of memory for its data (10,000,000,000 samples × (2 values and a label) × 8 bytes), {LIMIT}")],
    ),
    (
        "evaluation_scale_too_large",
        spec(**IMAGES, model="    flatten -> dense 4", extra="evaluate {\n    scales [100000]\n}\n"),
        [(13, 12, "error", f"evaluating at scale 100000 makes [3, 100000, 100000] test images, about 3.5 TiB a batch of 32, {LIMIT}")],
    ),
    (
        "crop_padding_too_large",
        spec(**IMAGES, model="    flatten -> dense 4", extra="augment {\n    crop 16 pad=100000\n}\n"),
        [(13, 5, "error", f"crop pad=100000 makes [3, 200016, 200016] images, about 14 TiB a batch of 32, {LIMIT}")],
    ),
    (
        "layers_too_wide",
        spec(model="    dense 100000 -> dense 100000 -> dense 2"),
        [(7, 21, "error", (
            "the model needs about 149 GiB of memory to train (10,000,600,002 parameters × 4 bytes × 4 for the weights, their gradients and Adam's two moments, "
            f"and the largest activation, dense1's [100000] × batch 32 × 4 bytes), {LIMIT}"
        ))],
    ),
    # 3. repeats that would expand without end: counted in linear time, reported at the outermost repeat
    ("repeats_nested_40_deep", spec(model="    " + "repeat 2 { " * 40 + "dense 2" + " }" * 40 + "\n    dense 2"), [(7, 5, "error", "this repeat expands to 1,099,511,627,776 layers; a model may have at most 100,000")]),
    ("repeat_a_billion_times", spec(model="    repeat 1000000000 { dense 8 }\n    dense 2"), [(7, 12, "error", "repeat: 1000000000 is out of range; expected an integer in [1, 1000000]")]),
    ("repeats_multiplied", spec(model="    repeat 1000 { repeat 1000 { dense 8 } }\n    dense 2"), [(7, 5, "error", "this repeat expands to 1,000,000 layers; a model may have at most 100,000")]),
    (
        "repeats_side_by_side",
        spec(model="    repeat 60000 { dense 8 }\n    repeat 60000 { dense 8 }\n    dense 2"),
        [(8, 5, "error", "the model has more than 100,000 layers by here (120,000 with every repeat expanded)")],
    ),
    # 4. wrong or misleading messages
    ("unterminated_string", spec(source='file "x.csv }'), [(3, 17, "error", "this string is never closed; expected '\"' before the end of the line")]),
    ("unknown_escape", spec(source='file "x\\q.csv"'), [(3, 19, "error", "unknown escape '\\q' in a string; the escapes are \\\", \\\\, \\n and \\t (write \\\\ for a backslash)")]),
    ("data_path_is_a_directory", spec(source='file "d.csv"'), [(3, 17, "error", "the data file 'd.csv' is a directory (d.csv); name a .npz, .npy or .csv file")]),
    (
        "target_overflows",
        spec(model="    dense 2\n    head big { dense 2 }").replace("playground spiral\n", "playground spiral\n    target big = label * 1e308 * 10\n"),
        [(4, 5, "error", "target big = label * 1e+308 * 10 overflows for label 1: its value is beyond the 64-bit float range (about 1.8e308)")],
    ),
    ("empty_residual", spec(model="    residual { }\n    dense 2"), [(7, 5, "error", "this residual block is empty: it would add its input to itself; put layers inside { }, or remove it")]),
    ("missing_brace_before_a_block", "spec t\ndata {\n    source playground spiral\n}\nmodel {\n    input [2]\n    dense 2\ntrain {\n    epochs 1\n}\n", [(8, 1, "error", NEVER_CLOSED)]),
    (
        "missing_brace_with_a_head",
        "spec t\ndata { source digits }\nmodel {\n    input [64]\n    head label { dense 10 }\n\ntrain { epochs 1 }\n",
        [(7, 1, "error", "expected '}' before 'train': the model block (line 3) is never closed, and a train block cannot go inside it")],
    ),
    # 5. a warm-up as long as the training is a warning
    (
        "warmup_as_long_as_training",
        spec(train="    epochs 1\n    schedule cosine warmup=1"),
        [(11, 28, "warning", "warmup=1 is not shorter than the 1 epoch: the learning rate never leaves the warm-up (it never reaches the schedule's rate)")],
    ),
    # 7. imports name specs; a file that is not one is never read, nor quoted
    ("import_a_non_spec", importing('"secret.txt"'), [(2, 8, "error", 'cannot import \'secret.txt\': it is not a .trick file (an import names a spec: import "FILE.trick" as NAME)')]),
    ("import_a_far_file", importing('"../../../../etc/passwd"'), [(2, 8, "error", 'cannot import \'../../../../etc/passwd\': it is not a .trick file (an import names a spec: import "FILE.trick" as NAME)')]),
    (
        "import_a_link_to_a_non_spec",
        importing('"link.trick"'),
        [(2, 8, "error", 'cannot import \'link.trick\': it leads to secret.txt, which is not a .trick file (an import names a spec: import "FILE.trick" as NAME)')],
    ),
]

_DIAGNOSTIC = re.compile(r"^s\.trick:(\d+):(\d+): (error|warning): (.*)$")
SECRET = "TOPSECRET {"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty working folder with a data directory and a secret non-spec file (and a .trick
    link to it); the memory limit fixed at 64 GiB."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRICK_MEMORY_LIMIT", "64G")
    (tmp_path / "d.csv").mkdir()
    (tmp_path / "secret.txt").write_text(SECRET + "\nroot:x:0:0\n")
    try:
        (tmp_path / "link.trick").symlink_to("secret.txt")
    except OSError:
        pass
    return tmp_path


def _check(text: str, capsys) -> tuple[int, str]:
    with open("s.trick", "w", encoding="utf-8") as handle:
        handle.write(text)
    code = main(["check", "s.trick"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name, text, expected", CASES, ids=[c[0] for c in CASES])
def test_every_bad_input_gets_its_message_at_its_place(folder, capsys, name, text, expected):
    if name == "import_a_link_to_a_non_spec" and not (folder / "link.trick").is_symlink():
        pytest.skip("no symbolic links here")
    code, err = _check(text, capsys)
    found = [(int(m[1]), int(m[2]), m[3], m[4]) for m in map(_DIAGNOSTIC.match, err.splitlines()) if m]
    assert found == expected
    assert code == (1 if any(e[2] == "error" for e in expected) else 0)
    assert "Traceback" not in err and SECRET not in err and "root:x" not in err


def test_the_cases_cover_every_kind_of_bad_input():
    names = {c[0] for c in CASES}
    assert {"long_integer", "seed_beyond_int64", "images_too_many", "layers_too_wide", "repeats_nested_40_deep", "unknown_escape", "empty_residual", "import_a_far_file"} <= names


# ---- 4. a command-line argument is a path, whatever its name ------------------------------------


@pytest.mark.parametrize("name", ["s.txt", "s.TRICK", "my{v2}.trick", "spec x"])
def test_an_argument_is_read_as_a_file_whatever_its_name(folder, capsys, name):
    (folder / name).write_text(spec(model="    dense 2 -> bachnorm"))
    assert main(["check", name]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{name}:7:16: error: unknown layer 'bachnorm'; did you mean 'batchnorm'?\n")
    assert trick.parse(name).name == "t"  # the API reads a string naming an existing file as that file


@pytest.mark.parametrize("verb", ["check", "fmt", "compile"])
def test_a_file_that_is_not_named_as_a_spec_is_never_quoted(folder, capsys, verb):
    assert main([verb, "secret.txt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("secret.txt:1:11: error: ") and SECRET not in err and "root:x" not in err


# ---- 5. --set ------------------------------------------------------------------------------------


MODEL_REFUSED = (
    "--set cannot change the model block ('{}'): its lines are layers, not settings, so there is no clause to set; "
    "edit the spec to change the network. --set changes the clauses of the other blocks, e.g. --set train.epochs=5 or --set data.validation=0.2"
)


@pytest.mark.parametrize("setting", ["model.dropout=0.5", "model.dense.units=4", "model.input=[3]"])
def test_the_model_cannot_be_set(folder, capsys, setting):
    (folder / "s.trick").write_text(spec())
    assert main(["run", "s.trick", "--set", setting]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "--set #1:1:1: error: " + MODEL_REFUSED.format(setting)
    assert "Traceback" not in err


def test_a_warmup_as_long_as_the_training_is_a_warning_under_set(folder):
    (folder / "s.trick").write_text(spec(train="    epochs 5\n    schedule cosine warmup=1"))
    result = check_source("s.trick", overrides=["train.epochs=1"])
    assert result.ok
    assert [(d.severity, d.line) for d in result.diagnostics] == [("warning", 11)]


# ---- 6. heads, class names, transfer through residual blocks -----------------------------------------


def _load_source(path, code: str):
    path.write_text(code)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


HEAD_NAMES = ["half", "type", "float", "to", "cuda", "training", "keys", "x_", "_y"]


def test_heads_may_be_named_like_module_attributes(folder):
    import torch

    targets = "".join(f"    target {n} = label % 2\n" for n in HEAD_NAMES)
    heads = "".join(f"    head {n} {{ dense 2 }}\n" for n in HEAD_NAMES)
    text = spec(model="    dense 4\n" + heads.rstrip("\n")).replace("playground spiral\n", "playground spiral\n" + targets)
    program = trick.compile(text)
    model = program.model(seed=0)
    x = torch.zeros(3, 2)
    outputs = model(x)
    assert list(outputs) == HEAD_NAMES and all(v.shape == (3, 2) for v in outputs.values())
    assert model.get_submodule("heads.half") is model.heads["half_"]  # the IR names a head by its target
    generated = _load_source(folder / "heads_model.py", program.source()).T()
    generated.load_state_dict(model.state_dict())
    again = generated(x)
    assert list(again) == HEAD_NAMES and all(torch.equal(again[k], outputs[k]) for k in HEAD_NAMES)


def test_a_spec_named_like_what_the_generated_module_imports(folder):
    import torch

    program = trick.compile(spec(model="    dense 4\n    residual { dense 4 }\n    dense 2", name="ordered_dict"))
    module = _load_source(folder / "ordered.py", program.source())
    assert module.OrderedDict.__module__ == "collections"
    assert module.OrderedDictModel()(torch.zeros(1, 2)).shape == (1, 2)


def test_transfer_counts_the_layers_inside_residual_blocks(folder, capsys):
    base = spec(model="    dense 8 -> batchnorm -> relu\n    residual { dense 8 -> relu -> dense 8 }\n    dense 2", name="base")
    (folder / "base.trick").write_text(base)
    student = base.replace("spec base", 'spec student\nimport "base.trick" as base', 1) + "transfer {\n    from base layers=3\n    freeze true\n}\n"
    (folder / "student.trick").write_text(student)
    program = compile_source("student.trick")
    copied = [layer.name for layer in program.graph.transferred(3, None)]
    assert copied == ["dense1", "batchnorm1", "residual1.dense2", "residual1.dense3"]
    assert main(["compile", "student.trick"]) == 0
    rows = {line.split()[0]: line.split()[-2:] for line in capsys.readouterr().out.splitlines() if line.startswith(("dense", "batchnorm", "residual", "  dense"))}
    assert rows == {"dense1": ["24", "0"], "batchnorm1": ["16", "0"], "residual1": ["144", "0"], "dense2": ["72", "0"], "dense3": ["72", "0"], "dense4": ["18", "18"]}
    assert program.summary().splitlines()[-1] == "total parameters: 202   trainable: 18   frozen: 184"


# ---- 8. the language server ---------------------------------------------------------------------------


def test_the_language_server_answers_bad_requests(folder):
    pytest.importorskip("pygls")
    from .test_lsp import Client

    client = Client(folder)
    try:
        client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        client.notify("initialized", {})
        never_opened = (folder / "s.trick").as_uri()
        (folder / "s.trick").write_text(spec())  # on disk, but never opened: the server does not read it
        assert client.request("textDocument/hover", {"textDocument": {"uri": never_opened}, "position": {"line": 0, "character": 0}}) is None
        assert client.request("textDocument/completion", {"textDocument": {"uri": never_opened}, "position": {"line": 0, "character": 0}})["items"] == []
        assert client.request("textDocument/formatting", {"textDocument": {"uri": (folder / "gone.trick").as_uri()}, "options": {"tabSize": 4, "insertSpaces": True}}) is None
        opened = (folder / "o.trick").as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": opened, "languageId": "trick", "version": 1, "text": spec()}})
        for position, field in (({"line": -1, "character": 0}, "line"), ({"line": 0, "character": -3}, "character")):
            client.next_id += 1
            client.send({"id": client.next_id, "method": "textDocument/hover", "params": {"textDocument": {"uri": opened}, "position": position}})
            reply = client.wait(lambda m: m.get("id") == client.next_id and "method" not in m)
            assert reply["error"]["code"] == -32602  # InvalidParams, as the protocol says
            assert f"Position.{field} should be in range" in reply["error"]["message"]
        assert client.request("textDocument/hover", {"textDocument": {"uri": opened}, "position": {"line": 10**6, "character": 10**6}}) is None
        assert client.request("shutdown", None) is None
        client.notify("exit", None)
        assert client.process.wait(20) == 0
    finally:
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait(10)


def test_no_bad_input_reaches_a_traceback_in_a_subprocess(folder):
    """One real `trickc check` run over the worst of the table, as a user would see it."""
    import subprocess
    import sys

    for name, text, _ in CASES[:3]:
        (folder / f"{name}.trick").write_text(text)
    env = {**os.environ, "TRICK_MEMORY_LIMIT": "64G"}
    result = subprocess.run([sys.executable, "-m", "trick", "check", *(f"{c[0]}.trick" for c in CASES[:3])], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
