"""`trickc lsp`: the language server, driven with real LSP messages over stdio."""

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trick.compiler import clauses as R
from trick.compiler.pipeline import check_source
from trick.dsl.format import format_program
from trick.dsl.parser import parse_text
from trick.lsp import completions, from_utf16, hover_markdown, scan, utf16

pytest.importorskip("pygls")

ROOT = Path(__file__).resolve().parents[1]

BAD = """spec bad

data {
    source digits
    validation 0.1
}

model {
    input [64]
    dense 32 -> bachnorm -> relu
    conv 16 k=3
    dense 10 droppconnect=0.1
}

train {
    epochs 0
}
"""

SLOPPY = """spec sloppy
data {   source digits ;validation 0.1 }
model {
  input [64]
  dense 16->relu
    dense 10
}
"""


class Client:
    """A minimal LSP client: Content-Length framed JSON-RPC over the server's stdin/stdout."""

    def __init__(self, cwd: Path):
        self.log = cwd / "server.log"  # a file, not a pipe that nobody drains
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "trick", "lsp"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            headers = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
            self.messages.put(json.loads(stream.read(int(headers["content-length"])).decode("utf-8")))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict | None) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        reply = self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)
        assert "error" not in reply, reply
        return reply["result"]

    def wait(self, wanted, timeout: float = 20.0) -> dict:
        while True:
            try:
                message = self.messages.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no reply from the server; its stderr: {self.log.read_text(errors='replace')}") from None
            if wanted(message):
                return message


@pytest.fixture
def client(tmp_path):
    client = Client(tmp_path)
    yield client
    if client.process.poll() is None:
        client.process.kill()
        client.process.wait(10)


def _position_of(text: str, needle: str, inside: int = 1) -> dict:
    offset = text.index(needle) + inside
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def test_a_session_of_an_editor(client, tmp_path):
    path = tmp_path / "bad.trick"
    path.write_text(BAD)
    uri = path.as_uri()
    init = client.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}})
    capabilities = init["capabilities"]
    assert capabilities["hoverProvider"] and capabilities["documentFormattingProvider"] and "completionProvider" in capabilities
    assert init["serverInfo"]["name"] == "trickc"
    client.notify("initialized", {})

    # diagnostics: those of `trickc check`, at 0-based positions
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "trick", "version": 1, "text": BAD}})
    published = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")["params"]
    assert published["uri"] == uri
    expected = check_source(str(path)).diagnostics
    assert len(expected) >= 3
    got = [(d["range"]["start"]["line"], d["range"]["start"]["character"], d["range"]["end"]["line"], d["range"]["end"]["character"], d["message"], d["severity"]) for d in published["diagnostics"]]
    want = [(d.line - 1, d.column - 1, d.span.end_line - 1, d.span.end_column - 1, d.message, 1 if d.severity == "error" else 2) for d in expected]
    assert got == want
    assert "unknown layer 'bachnorm'; did you mean 'batchnorm'?" in [d["message"] for d in published["diagnostics"]]
    assert all(d["source"] == "trick" for d in published["diagnostics"])

    # as the user types, the fixed text is checked again
    fixed = BAD.replace("bachnorm", "batchnorm").replace("    conv 16 k=3\n", "").replace("droppconnect", "dropconnect").replace("epochs 0", "epochs 3")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]})
    published = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")["params"]
    assert published["diagnostics"] == [] and published["version"] == 2

    # hover: a clause (a layer) and an option show the registry's documentation
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(fixed, "batchnorm")})
    assert hover["contents"]["kind"] == "markdown"
    assert R.LAYERS.get("batchnorm").doc in hover["contents"]["value"]
    assert hover["range"]["start"] == _position_of(fixed, "batchnorm", 0)
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(fixed, "validation 0.1", 3)})
    assert R.DATA.get("validation").doc in hover["contents"]["value"]
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(fixed, "dropconnect=", 2)})
    param = R.LAYERS.get("dense").param("dropconnect")
    assert param.doc in hover["contents"]["value"] and param.type.describe() in hover["contents"]["value"]
    nothing = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 0}})
    assert nothing is None

    # completion inside the model block: the layers (and the model's own clauses)
    in_model = fixed.index("    dense 10")
    position = {"line": fixed.count("\n", 0, in_model), "character": 4}
    listed = client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": position})
    labels = {item["label"] for item in listed["items"]}
    assert set(R.LAYERS.names()) | set(R.MODEL.names()) <= labels
    assert "epochs" not in labels and "source" not in labels
    conv = next(item for item in listed["items"] if item["label"] == "conv")
    assert R.LAYERS.get("conv").doc in conv["documentation"]["value"]

    # formatting: one edit to the canonical layout
    sloppy_uri = (tmp_path / "sloppy.trick").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": sloppy_uri, "languageId": "trick", "version": 1, "text": SLOPPY}})
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": sloppy_uri}, "options": {"tabSize": 4, "insertSpaces": True}})
    canonical = format_program(parse_text(SLOPPY))
    lines = SLOPPY.split("\n")
    assert edits == [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": len(lines) - 1, "character": len(lines[-1])}}, "newText": canonical}]
    client.notify("textDocument/didChange", {"textDocument": {"uri": sloppy_uri, "version": 2}, "contentChanges": [{"text": canonical}]})
    assert client.request("textDocument/formatting", {"textDocument": {"uri": sloppy_uri}, "options": {"tabSize": 4, "insertSpaces": True}}) == []

    assert client.request("shutdown", None) is None
    client.notify("exit", None)
    assert client.process.wait(20) == 0


def test_imports_are_relative_to_the_document(client):
    """An unsaved buffer of a spec that imports another is checked from its own folder."""
    path = ROOT / "specs" / "mnist1d_fitnet.trick"
    text = path.read_text().replace("hint_epochs 10", "hint_epochs 10 extra=1")
    client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    client.notify("initialized", {})
    client.notify("textDocument/didOpen", {"textDocument": {"uri": path.as_uri(), "languageId": "trick", "version": 1, "text": text}})
    published = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")["params"]
    messages = [d["message"] for d in published["diagnostics"]]
    assert len(messages) == 1 and "extra" in messages[0], messages
    assert client.request("shutdown", None) is None
    client.notify("exit", None)


# ---- the pieces, without a server --------------------------------------------------------------------


def test_the_scanner_knows_where_the_cursor_is():
    text = 'spec x\nmodel {\n    head label { dense 10 } loss='
    ctx = scan(text, len(text))
    assert (ctx.bodies, ctx.words, ctx.option) == (["model"], ["head", "label"], "loss")
    text = "spec x\ndata { source mnist1d; validation 0.1 }\ntrain {\n    optimizer adamw lr=1e-3 "
    ctx = scan(text, len(text))
    assert (ctx.bodies, ctx.words, ctx.options, ctx.option) == (["train"], ["optimizer", "adamw"], ["lr"], None)
    text = 'spec x\ndistill {\n    hint teacher.block2 -> '
    assert scan(text, len(text)).after_arrow_of is R.DISTILL.get("hint")


@pytest.mark.parametrize(
    "text, present, absent",
    [
        ("spec x\n", {"data", "model", "train", "report", "import"}, {"conv", "epochs"}),
        ("spec x\ntrain {\n    optimizer ", {"sgd", "adam", "adamw"}, {"epochs"}),
        ("spec x\nmodel {\n    dropout 0.5 mode=", {"inverted", "scale_at_test"}, {"p"}),
        ("spec x\ndata {\n    source playground ", {"spiral", "circle", "xor", "gaussian", "n", "noise"}, {"mnist1d"}),
        ("spec x\nreport {\n    plot ", {"curves", "weights", "decision_boundary"}, set()),
        ("spec x\nmodel {\n    conv 32 k=5 ", {"stride", "pad", "bias", "dropconnect"}, {"k", "channels", "relu"}),
        ("spec x\nmodel {\n    conv 32 k=5 -> ", {"relu", "batchnorm"}, {"stride", "data"}),
    ],
)
def test_completions_fit_the_place(text, present, absent):
    lines = text.split("\n")
    labels = {c.label for c in completions(text, len(lines) - 1, len(lines[-1]))}
    assert present <= labels and not absent & labels


def test_hover_on_a_kind_and_a_value():
    text = "spec x\ntrain {\n    optimizer adamw lr=1e-3\n    early_stop monitor=val.loss\n}\n"
    markdown, start, stop = hover_markdown(text, 2, 15)
    assert R.OPTIMIZERS.get("adamw").doc in markdown and (start, stop) == (14, 19)
    markdown, _, _ = hover_markdown(text, 3, 25)
    assert R.TRAIN.get("early_stop").param("monitor").doc in markdown


def test_columns_count_utf16_units():
    line = "dense 16  # 𝜆 → ok"
    assert utf16(line) == len(line) + 1  # 𝜆 is outside the BMP: two units
    assert from_utf16(line, utf16(line[:13])) == 13


def test_the_editor_tools_need_no_torch():
    """The language server, the lexer and `trickc graph` answer without loading torch, numpy
    or matplotlib, as `trickc check` does."""
    spec = ROOT / "specs" / "mnist1d_fitnet.trick"
    code = (
        "import sys, io, contextlib; import trick.lsp, trick.pygments_lexer; from trick.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): rc = main(['graph', %r])\n"
        "trick.lsp.check_document(open(%r).read(), %r)\n"
        "print(rc, [m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules])" % (str(spec), str(spec), spec.as_uri())
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stderr


# ---- fuzzing the language server ---------------------------------------------------------------------
#
# Random texts and positions (negative ones, past the end, inside multi-unit characters) for
# the pieces the requests use, and one session of random requests to the real server: every
# request gets a reply (a result, or the error response the protocol prescribes), and the
# server never logs a traceback of its own code.

import os  # noqa: E402
import random  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import trick.lsp  # noqa: E402
from trick.lsp import check_document, formatted, lsp_range  # noqa: E402

_SCALE = float(os.environ.get("TRICK_FUZZ_SCALE", "1"))
_SPEC_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "specs").glob("*.trick"))]
_ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyz_0123456789 .,=-><[]{}()\"#;:\n\t\\") + ["\u00e9", "𝜆", "\r\n", "model", "dense", "->", "head", "{ ", "}\n", "repeat 2 {"])
_TEXTS = st.one_of(st.sampled_from(_SPEC_TEXTS + [BAD, SLOPPY, ""]), st.lists(_ALPHABET, max_size=80).map("".join), st.tuples(st.sampled_from(_SPEC_TEXTS), st.integers(0, 4000), st.lists(_ALPHABET, max_size=10).map("".join)).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]))
_POSITIONS = st.integers(-3, 200)


@settings(max_examples=max(1, int(300 * _SCALE)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=_TEXTS, line=_POSITIONS, character=_POSITIONS)
def test_hover_and_completion_take_any_position(text, line, character):
    found = hover_markdown(text, line, character)
    assert found is None or (isinstance(found[0], str) and found[1] <= found[2])
    assert all(c.label for c in completions(text, line, character))
    scan(text, max(0, min(len(text), line * 10 + character)))
    lines = text.split("\n")
    if 0 <= line < len(lines):
        assert 0 <= from_utf16(lines[line], character) <= len(lines[line])


@settings(max_examples=max(1, int(40 * _SCALE)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=_TEXTS, span=st.tuples(_POSITIONS, _POSITIONS, _POSITIONS, _POSITIONS))
def test_diagnostics_and_formatting_take_any_text(text, span):
    for (start_line, start, end_line, end), _ in check_document(text, "file:///tmp/fuzz/x.trick"):
        assert 0 <= start_line <= end_line and start >= 0 and end >= 0
    assert formatted(text, "untitled:x") is None or isinstance(formatted(text, "untitled:x"), str)
    lines = text.split("\n")
    assert all(v >= 0 for v in lsp_range(lines, *span))


def test_random_requests_all_get_a_reply(client, tmp_path):
    """A session of random requests, some with parameters the protocol forbids: each gets a
    result or an error response, and the session ends cleanly."""
    rng = random.Random(16)
    client.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}})
    client.notify("initialized", {})
    uris = [(tmp_path / f"doc{i}.trick").as_uri() for i in range(3)] + ["untitled:Untitled-1", "file:///nowhere/x.trick"]
    for uri in uris[:2]:
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "trick", "version": 1, "text": rng.choice(_SPEC_TEXTS)}})
    client.notify("textDocument/didChange", {"textDocument": {"uri": uris[3], "version": 2}, "contentChanges": [{"text": "spec x\n"}]})  # never opened
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uris[0]}})  # malformed: no reply is due, and none may break the session
    errors = 0
    for _ in range(40):
        method = rng.choice(["textDocument/hover", "textDocument/completion", "textDocument/formatting", "textDocument/definition"])
        position = {"line": rng.choice([-1, 0, 1, 5, 40, 10**6, "x"]), "character": rng.choice([-2, 0, 3, 17, 10**6])}
        params = {"textDocument": {"uri": rng.choice(uris)}, "position": position}
        if method == "textDocument/formatting":
            params = {"textDocument": params["textDocument"], "options": {"tabSize": 4, "insertSpaces": True}}
        if rng.random() < 0.1:
            params = {"position": position}  # no document at all
        client.next_id += 1
        client.send({"id": client.next_id, "method": method, "params": params})
        reply = client.wait(lambda m: m.get("id") == client.next_id and "method" not in m)
        assert ("result" in reply) != ("error" in reply), reply
        errors += "error" in reply
    assert errors  # some of them were refused, with an error response
    assert client.request("shutdown", None) is None
    client.notify("exit", None)
    assert client.process.wait(20) == 0
    package = str(Path(trick.lsp.__file__).parent)
    assert not [line for line in client.log.read_text(errors="replace").splitlines() if line.strip().startswith(f'File "{package}')]
