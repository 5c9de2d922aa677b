"""`trickc graph`: the network as DOT text, and as SVG or PNG where Graphviz is installed.

The DOT text is always checked, with a small reader of the subset `to_dot` writes (every
statement on its own line); rendering is checked when Graphviz's `dot` is on the PATH.
"""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from trick.cli import main
from trick.compiler import graph as G
from trick.compiler.pipeline import compile_source

from ..conftest import SPECS

ROOT = Path(__file__).resolve().parents[2]
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")

_STRING = r'"(?:[^"\\]|\\.)*"'
_ATTRS = rf"(?:\s*\[((?:\w+={_STRING}(?:, )?)*)\])?"
NODE = re.compile(rf"^(n\d+){_ATTRS};$")
EDGE = re.compile(rf"^(n\d+) -> (n\d+){_ATTRS};$")


def unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])


def attrs(text: str | None) -> dict[str, str]:
    return {m.group(1): unquote(m.group(2)) for m in re.finditer(rf"(\w+)=({_STRING})", text or "")}


def read_dot(text: str) -> tuple[str, dict[str, dict], list[tuple[str, str, dict]], list[str]]:
    """(graph name, nodes with their attributes, edges, cluster labels); fails on anything
    that is not well formed."""
    lines = [line.strip() for line in text.splitlines()]
    head = re.fullmatch(rf"digraph ({_STRING}) \{{", lines[0])
    assert head, lines[0]
    assert lines[-1] == "}"
    nodes: dict[str, dict] = {}
    edges: list[tuple[str, str, dict]] = []
    clusters: list[str] = []
    depth = 1
    for line in lines[1:-1]:
        if match := NODE.match(line):
            assert match.group(1) not in nodes, f"node {match.group(1)} twice"
            nodes[match.group(1)] = attrs(match.group(2))
        elif match := EDGE.match(line):
            edges.append((match.group(1), match.group(2), attrs(match.group(3))))
        elif match := re.fullmatch(r"subgraph (cluster_\w+) \{", line):
            depth += 1
        elif line.startswith("label=") and depth > 1:
            clusters.append(unquote(re.match(rf"label=({_STRING});", line).group(1)))
        elif line == "}":
            depth -= 1
            assert depth >= 1
        else:
            assert re.fullmatch(rf"(graph|node|edge) \[.*\];", line), f"unexpected line: {line}"
    assert depth == 1, "unbalanced braces"
    for a, b, _ in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return unquote(head.group(1)), nodes, edges, clusters


def labels_of(nodes: dict[str, dict]) -> list[str]:
    return [n["label"] for n in nodes.values()]


def test_the_main_example():
    name, nodes, edges, clusters = read_dot(G.to_dot(compile_source(ROOT / "specs" / "mnist1d_cnn.trick")))
    assert name == "mnist1d_cnn"
    labels = labels_of(nodes)
    assert labels[0] == "input\n[1, 40]"
    assert "conv 32 k=5 pad=2\n[32, 40]\n192 params" in labels
    assert "maxpool 2\n[64, 20]" in labels and "flatten\n[1280]" in labels and "dropout 0.5\n[128]" in labels
    assert labels[-1] == "output\n[10]\ncross_entropy smoothing=0.1"
    assert clusters == ["block2:", "features:"]
    # a chain: input, 12 layers, output, each joined to the next
    assert len(nodes) == 14 and [(a, b) for a, b, _ in edges] == [(f"n{i}", f"n{i + 1}") for i in range(1, 14)]


def test_residual_blocks_have_their_skip_edge():
    program = compile_source("spec r\ndata { source digits }\nmodel {\n    input [64]\n    dense 32\n    x: residual { dense 32 -> relu }\n    dense 10\n}\n")
    _, nodes, edges, clusters = read_dot(G.to_dot(program))
    assert clusters == ["x: residual"]
    by_label = {a["label"]: n for n, a in nodes.items()}
    add, before, body_end = by_label["+"], by_label["dense 32\n[32]\n2,080 params"], by_label["relu\n[32]"]
    assert {(a, e.get("label")) for a, b, e in edges if b == add} == {(before, "skip"), (body_end, None)}
    assert (add, by_label["dense 10\n[10]\n330 params"]) in [(a, b) for a, b, _ in edges]


def test_nested_residual_blocks_are_separate_clusters():
    program = compile_source("spec r\ndata { source digits }\nmodel {\n    input [64]\n    dense 32\n    residual {\n        residual { dense 32 }\n        dense 32 -> relu\n    }\n    dense 10\n}\n")
    text = G.to_dot(program)
    _, nodes, edges, clusters = read_dot(text)
    assert clusters == ["residual", "residual"] and len(set(re.findall(r"subgraph (cluster_\w+)", text))) == 2
    assert sum(e.get("label") == "skip" for _, _, e in edges) == 2


def test_heads_each_have_their_loss():
    _, nodes, edges, clusters = read_dot(G.to_dot(compile_source(ROOT / "specs" / "digits_multitask.trick")))
    assert clusters == ["head label", "head parity", "head large"]
    outputs = [a["label"] for a in nodes.values() if a.get("shape") == "oval"][1:]
    assert outputs == ["label\n[10]\ncross_entropy\nweight 1", "parity\n[2]\ncross_entropy\nweight 0.3", "large\n[2]\ncross_entropy\nweight 0.3"]
    trunk_end = next(n for n, a in nodes.items() if a["label"].startswith("dropout 0.2"))
    assert sum(a == trunk_end for a, _, _ in edges) == 3  # the trunk feeds the three heads


def test_distillation_shows_the_guided_and_hint_layers():
    _, nodes, edges, _ = read_dot(G.to_dot(compile_source(ROOT / "specs" / "mnist1d_fitnet.trick")))
    guided = next(n for n, a in nodes.items() if "guided by teacher.block2" in a["label"])
    hint = next(n for n, a in nodes.items() if a["label"].startswith("hint teacher.block2"))
    assert nodes[hint]["label"] == "hint teacher.block2\n[64, 40]"  # the teacher's layer, with its shape
    regressor = next(n for n, a in nodes.items() if a["label"] == "regressor conv")
    assert (guided, regressor) in [(a, b) for a, b, _ in edges]
    assert any((a, b) == (regressor, hint) and "L_HT" in e["label"] for a, b, e in edges)
    assert any("teacher mnist1d_cnn" in a["label"] for a in nodes.values())


def test_transferred_layers_are_marked():
    _, nodes, _, _ = read_dot(G.to_dot(compile_source(ROOT / "specs" / "digits_transfer.trick")))
    marked = [a["label"].split("\n")[0] for a in nodes.values() if "from base (frozen)" in a["label"]]
    assert marked == ["dense 256", "batchnorm", "dense 256", "layernorm"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_reads_back(path):
    program = compile_source(path)
    _, nodes, _, _ = read_dot(G.to_dot(program))
    assert len(nodes) >= len([l for l in program.graph.all_layers() if l.op != "residual"]) + 2


def test_quotes_and_backslashes_are_escaped():
    assert G._quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


# ---- trickc graph ----------------------------------------------------------------------------------


def test_without_output_it_prints_the_dot_text(capsys):
    assert main(["graph", str(ROOT / "specs" / "mnist1d_gru.trick")]) == 0
    name, nodes, _, _ = read_dot(capsys.readouterr().out)
    assert name == "mnist1d_gru" and "gru 64 norm=layer\n[64, 40]\n12,864 params" in labels_of(nodes)


def test_dot_output(in_tmp, capsys):
    assert main(["graph", str(ROOT / "specs" / "mnist1d_cnn.trick"), "-o", "net.dot"]) == 0
    assert capsys.readouterr().out == "wrote net.dot (DOT text)\n"
    read_dot((in_tmp / "net.dot").read_text())


def test_without_graphviz_it_draws_the_picture_with_matplotlib(in_tmp, capsys, monkeypatch):
    monkeypatch.setattr(G, "dot_program", lambda: None)
    (in_tmp / "net.dot").write_text("mine\n")  # a file that was not named stays as it was
    assert main(["graph", str(ROOT / "specs" / "digits_multitask.trick"), "-o", "net.svg"]) == 0
    assert capsys.readouterr().out == "wrote net.svg (drawn with matplotlib, as Graphviz's dot is not installed; with Graphviz the layout is better)\n"
    assert (in_tmp / "net.dot").read_text() == "mine\n"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["net.dot", "net.svg"]
    root = ET.parse(in_tmp / "net.svg").getroot()
    svg = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{svg}svg"
    texts = {t.text for t in root.iter(f"{svg}text")}
    _, nodes, _, clusters = read_dot(G.to_dot(compile_source(ROOT / "specs" / "digits_multitask.trick")))
    lines = {line for label in labels_of(nodes) for line in label.split("\n")}
    assert lines | set(clusters) <= texts  # every node's text and every cluster's label
    assert main(["graph", str(ROOT / "specs" / "mnist1d_fitnet.trick"), "-o", "net.png"]) == 0
    from PIL import Image

    with Image.open(in_tmp / "net.png") as image:
        image.load()
        assert image.format == "PNG"
        width, height = image.size
    assert height > 3 * width > 300  # 30 layers in a column


def test_the_drawing_has_the_nodes_edges_and_clusters_of_the_dot_text():
    from trick.runtime.drawing import layout

    for path in SPECS:
        program = compile_source(path)
        picture = G.to_picture(program)
        _, nodes, edges, clusters = read_dot(G.to_dot(program))
        assert [n for n, _ in picture.nodes] == list(nodes) and [attrs for _, attrs in picture.nodes] == list(nodes.values())
        assert picture.edges == edges and [c.label for c in picture.clusters] == clusters
        boxes = layout(picture)
        for a, b, attrs in picture.edges:  # every edge but a skip points down the page
            assert attrs.get("constraint") == "false" or boxes[a][1] < boxes[b][1], (path.name, a, b)


def test_without_graphviz_or_matplotlib_it_fails_and_writes_nothing(in_tmp, capsys, monkeypatch):
    import builtins

    monkeypatch.setattr(G, "dot_program", lambda: None)
    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.endswith("drawing") or name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["graph", str(ROOT / "specs" / "mnist1d_cnn.trick"), "-o", "net.svg"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trickc: error: cannot draw net.svg: Graphviz's dot is not installed, nor is matplotlib (")
    assert err.endswith("install either, or write DOT text with -o net.dot\n")
    assert list(in_tmp.iterdir()) == []


def test_an_unwritable_picture_is_a_usage_error(in_tmp, capsys, monkeypatch):
    monkeypatch.setattr(G, "dot_program", lambda: None)
    assert main(["graph", str(ROOT / "specs" / "mnist1d_cnn.trick"), "-o", "missing/net.svg"]) == 2
    assert capsys.readouterr().err.startswith("trickc: error: cannot write missing/net.svg: ")
    assert list(in_tmp.iterdir()) == []


def test_usage_and_spec_errors(in_tmp, capsys):
    assert main(["graph", str(ROOT / "specs" / "mnist1d_cnn.trick"), "-o", "net.jpg"]) == 2
    assert "name a .svg, .png or .dot file" in capsys.readouterr().err
    (in_tmp / "bad.trick").write_text("spec bad\ndata { source digits }\nmodel {\n    input [64]\n    dense 10 -> bachnorm\n}\n")
    assert main(["graph", "bad.trick", "-o", "net.svg"]) == 1
    assert "bad.trick:5:17: error: unknown layer 'bachnorm'" in capsys.readouterr().err
    assert main(["graph", "missing.trick"]) == 2


@needs_dot
def test_svg(in_tmp, capsys):
    assert main(["graph", str(ROOT / "specs" / "digits_multitask.trick"), "-o", "net.svg"]) == 0
    assert capsys.readouterr().out == "wrote net.svg (drawn with Graphviz's dot)\n"
    root = ET.parse(in_tmp / "net.svg").getroot()
    svg = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{svg}svg"
    groups = root.iter(f"{svg}g")
    classes = [g.get("class") for g in groups]
    _, nodes, edges, clusters = read_dot(G.to_dot(compile_source(ROOT / "specs" / "digits_multitask.trick")))
    assert classes.count("node") == len(nodes) and classes.count("edge") == len(edges) and classes.count("cluster") == len(clusters)
    texts = {t.text for t in root.iter(f"{svg}text")}
    assert {"dense 128", "[128]", "head parity", "weight 0.3"} <= texts


@needs_dot
def test_png(in_tmp):
    from PIL import Image

    assert main(["graph", str(ROOT / "specs" / "mnist1d_fitnet.trick"), "-o", "net.png"]) == 0
    with Image.open(in_tmp / "net.png") as image:
        image.load()
        assert image.format == "PNG"
        width, height = image.size
    assert height > 3 * width > 300  # 30 layers in a column


@needs_dot
def test_dot_itself_accepts_every_example(tmp_path):
    for path in SPECS:
        done = subprocess.run(["dot", "-Tsvg"], input=G.to_dot(compile_source(path)), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and not done.stderr, (path.name, done.stderr)
        ET.fromstring(done.stdout)


def test_transferred_layers_inside_a_residual_block_are_marked(tmp_path):
    base = "spec base\ndata { source digits }\nmodel {\n    input [64]\n    dense 32\n    residual { dense 32 -> relu }\n    dense 10\n}\n"
    (tmp_path / "base.trick").write_text(base)
    student = base.replace("spec base", 'spec student\nimport "base.trick" as base') + "transfer {\n    from base layers=2\n    freeze true\n}\n"
    (tmp_path / "student.trick").write_text(student)
    _, nodes, _, _ = read_dot(G.to_dot(compile_source(tmp_path / "student.trick")))
    marked = [a["label"].split("\n")[0] for a in nodes.values() if "from base (frozen)" in a["label"]]
    assert marked == ["dense 32", "dense 32"]
