"""The network as a picture: Graphviz DOT text from the IR (`trickc graph`).

    digraph -> input -> layer ... -> output          one box per layer: the clause, its output
                                                    shape and its parameter count
    cluster "block2:"                               the layers of a labelled line
    cluster "residual" + a dashed skip edge to (+)  a residual block
    cluster "head parity"                           an output head with its loss
    teacher.block2 <- regressor <- guided           a FitNets hint (distill), dashed

`to_dot` needs neither torch nor Graphviz; `render` runs Graphviz's `dot` when it is installed.
`to_picture` gives the same nodes, edges and clusters as data, which trick/runtime/drawing.py
lays out and draws with matplotlib when `dot` is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import clauses as R
from . import ir
from .ir import show_shape

# Fill colours by the layer's role (its registry entry), so that the structure shows at a glance.
_COLOURS = {
    "weights": "#dbe9f6",  # layers with weights: blue
    "norm": "#dff0d8",  # normalization: green
    "activation": "#fcf3cf",  # activations: yellow
    "noise": "#ececec",  # regularizing noise: gray
    "reshape": "#e8e0f3",  # reshaping: lavender
}
_HINT = "#d9822b"  # the distillation hint and the guided layer
FORMATS = ("svg", "png", "dot")


def clause_text(layer: ir.Layer) -> str:
    """The layer as a clause, with the arguments that differ from their defaults:
    `conv 32 k=5 pad=2`, `dropout 0.5`."""
    schema = R.LAYERS.get(layer.op)
    if schema is None:
        return layer.op
    parts = [layer.op]
    for param in schema.params:
        value = layer.args.get(param.name, param.default)
        if param.positional and value is not None:
            parts.append(_value(value))
        elif (layer.op, param.name) == ("conv", "k"):  # the kernel size says what a conv is
            parts.append(f"k={_value(value)}")
        elif value != param.default and not (param.default is None and value is None):
            parts.append(f"{param.name}={_value(value)}")
    return " ".join(parts)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _quote(text: str) -> str:
    """A DOT string: double quotes, with quotes and backslashes escaped, lines as \\n."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs) -> str:
    shown = [f"{key}={_quote(str(value))}" for key, value in attrs.items() if value is not None]
    return " [" + ", ".join(shown) + "]" if shown else ""


@dataclass
class Cluster:
    """A box around nodes: a labelled line, a residual block (dashed) or a head."""

    label: str
    dashed: bool
    members: list[str]  # node ids, of nested clusters too


@dataclass
class Picture:
    """The network as plain data: what `to_dot` writes, for a drawing without Graphviz.
    Nodes and edges carry their DOT attributes (label, shape, fillcolor, style, ...)."""

    title: str
    nodes: list[tuple[str, dict[str, str]]]
    edges: list[tuple[str, str, dict[str, str]]]
    clusters: list[Cluster]


class _Dot:
    def __init__(self, graph: ir.ModelGraph):
        self.graph = graph
        self.lines: list[str] = []
        self.count = 0
        self.clusters = 0
        self.ids: dict[str, str] = {}  # layer name -> node id
        self.edges: list[str] = []  # at the top level: an edge inside a cluster would pull its nodes in
        self.picture = Picture("", [], [], [])  # the same nodes, edges and clusters as data
        self.open: list[Cluster] = []  # the clusters being emitted, outermost first

    def emit(self, text: str, depth: int) -> None:
        self.lines.append("    " * depth + text)

    def node(self, depth: int, **attrs) -> str:
        self.count += 1
        node_id = f"n{self.count}"
        self.emit(node_id + _attrs(**attrs) + ";", depth)
        self.picture.nodes.append((node_id, {k: str(v) for k, v in attrs.items() if v is not None}))
        for cluster in self.open:
            cluster.members.append(node_id)
        return node_id

    def edge(self, a: str, b: str, **attrs) -> None:
        self.edges.append(f"{a} -> {b}" + _attrs(**attrs) + ";")
        self.picture.edges.append((a, b, {k: str(v) for k, v in attrs.items() if v is not None}))

    def begin(self, name: str, label: str, style: str, depth: int) -> None:
        """Open a cluster (`subgraph cluster_...`) with its label line and style."""
        self.emit(f"subgraph {name} {{", depth)
        self.emit(f"label={_quote(label)}; {style}", depth + 1)
        cluster = Cluster(label, "dashed" in style, [])
        self.picture.clusters.append(cluster)
        self.open.append(cluster)

    def end(self, depth: int) -> None:
        self.emit("}", depth)
        self.open.pop()

    def layer(self, layer: ir.Layer, depth: int, marks: dict[str, str]) -> str:
        params = f"\n{layer.params:,} params" if layer.params else ""
        mark = marks.get(layer.name)
        label = f"{clause_text(layer)}\n{show_shape(layer.output)}{params}" + (f"\n{mark}" if mark else "")
        hinted = mark is not None and mark.startswith("guided")
        node_id = self.node(
            depth,
            label=label,
            tooltip=f"{layer.name}: {layer.op} {show_shape(layer.input)} -> {show_shape(layer.output)} (line {layer.span.line})",
            fillcolor=_COLOURS.get(layer.role, "#ffffff"),
            color=_HINT if hinted else None,
            penwidth="2" if mark else None,
        )
        self.ids[layer.name] = node_id
        return node_id

    def sequence(self, layers: tuple[ir.Layer, ...], previous: str, depth: int, marks: dict[str, str]) -> str:
        """Emit `layers` after node `previous`; the id of the last node."""
        index = 0
        while index < len(layers):
            layer = layers[index]
            line = _labelled_line(layers, index)
            if line is not None:  # a labelled line: its layers in a cluster named by the label
                end = index + line
                label = layers[end].label
                self.clusters += 1
                self.begin(f"cluster_label_{self.clusters}", label + ":", 'style="rounded,filled"; fillcolor="#f7f7f7"; color="#9a9a9a";', depth)
                for inner in layers[index : end + 1]:
                    previous = self.one(inner, previous, depth + 1, marks)
                self.end(depth)
                index = end + 1
                continue
            previous = self.one(layer, previous, depth, marks)
            index += 1
        return previous

    def one(self, layer: ir.Layer, previous: str, depth: int, marks: dict[str, str]) -> str:
        if layer.op != "residual":
            node_id = self.layer(layer, depth, marks)
            self.edge(previous, node_id)
            return node_id
        # residual: the body in a cluster, and the block's input added to the body's output
        self.clusters += 1
        title = (f"{layer.label}: " if layer.label else "") + "residual"
        self.begin(f"cluster_residual_{self.clusters}", title, 'style="rounded,dashed"; color="#6c8ebf";', depth)
        last = self.sequence(layer.body, previous, depth + 1, marks)
        add = self.node(depth + 1, label="+", shape="circle", fillcolor="#ffffff", width="0.3", tooltip=f"{layer.name}: input + body {show_shape(layer.output)}")
        self.end(depth)
        self.ids[layer.name] = add
        self.edge(last, add)
        self.edge(previous, add, style="dashed", color="#6c8ebf", label="skip", constraint="false")
        return add


def _labelled_line(layers: tuple[ir.Layer, ...], index: int) -> int | None:
    """If layers[index] starts a labelled line of several layers (`block2: conv -> bn -> relu`),
    how many more layers the line has; else None. A line is the layers of one source line up
    to the one that carries the label (as `transfer labels=[...]` reads it)."""
    first = layers[index]
    end = index
    while end < len(layers) and layers[end].label is None and layers[end].span.line == first.span.line and layers[end].op != "residual":
        end += 1
    if end >= len(layers) or layers[end].span.line != first.span.line or layers[end].label is None or layers[end].op == "residual":
        return None
    return end - index


def to_dot(program) -> str:
    """DOT text for a compiled Program (its `.graph`, with the plan's transfer and distill)."""
    return "\n".join(_draw(program).lines) + "\n"


def to_picture(program) -> Picture:
    """The same nodes, edges and clusters as `to_dot`, as data (for a drawing without dot)."""
    return _draw(program).picture


def _draw(program) -> _Dot:
    graph: ir.ModelGraph = program.graph
    plan: ir.TrainingPlan | None = getattr(program, "plan", None)
    dot = _Dot(graph)
    total = f"{graph.params:,} parameters"
    dot.picture.title = f"{graph.name} — {total}"
    dot.emit(f"digraph {_quote(graph.name)} {{", 0)
    dot.emit(f"graph [label={_quote(f'{graph.name} — {total}')}, labelloc=\"t\", fontname=\"Helvetica\", fontsize=14, rankdir=\"TB\", nodesep=0.3, ranksep=0.3];", 1)
    dot.emit('node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize=10, fillcolor="#ffffff", color="#555555"];', 1)
    dot.emit('edge [fontname="Helvetica", fontsize=9, color="#555555", arrowsize=0.7];', 1)

    marks: dict[str, str] = {}
    if plan is not None and plan.transfer is not None:
        from .program import transferred_layers

        how = "frozen" if plan.transfer.freeze else f"lr ×{plan.transfer.lr_scale:g}"
        for name in transferred_layers(graph, plan.transfer):  # `residual1.dense2` inside a residual block
            marks[name.rsplit(".", 1)[-1]] = f"from {plan.transfer.source} ({how})"
    guided: dict[str, str] = {}  # guided layer name -> teacher label
    if plan is not None and plan.distill is not None:
        labels = graph.labels()
        for hint_label, guided_label in plan.distill.hints:
            if guided_label in labels:
                marks[labels[guided_label].name] = f"guided by {plan.distill.teacher}.{hint_label}"
                guided[labels[guided_label].name] = hint_label

    source = dot.node(1, label=f"input\n{show_shape(graph.input)}", shape="oval", fillcolor="#ffffff")
    trunk = dot.sequence(graph.layers, source, 1, marks)
    if graph.heads:
        for head in graph.heads:
            dot.begin(f"cluster_head_{head.target}", f"head {head.target}", 'style="rounded"; color="#9a9a9a";', 1)
            last = dot.sequence(head.layers, trunk, 2, marks)
            loss = f"{head.loss}" + (f" smoothing={head.smoothing:g}" if head.smoothing else "") + f"\nweight {head.weight:g}"
            out = dot.node(2, label=f"{head.target}\n{show_shape(head.layers[-1].output) if head.layers else ''}\n{loss}", shape="oval", fillcolor="#ffffff")
            dot.end(1)
            dot.edge(last, out)
    else:
        loss = ""
        if plan is not None:
            smoothing = plan.loss.args.get("smoothing")
            loss = f"\n{plan.loss.kind}" + (f" smoothing={smoothing:g}" if smoothing else "")
        out = dot.node(1, label=f"output\n{show_shape(graph.output)}{loss}", shape="oval", fillcolor="#ffffff")
        dot.edge(trunk, out)

    if plan is not None and plan.distill is not None:
        distill = plan.distill
        teacher = _teacher_graph(program, distill.teacher)
        teacher_labels = teacher.labels() if teacher is not None else {}
        for name, hint_label in guided.items():
            hint = teacher_labels.get(hint_label)
            shape = f"\n{show_shape(hint.output)}" if hint is not None else ""
            hint_node = dot.node(1, label=f"hint {distill.teacher}.{hint_label}{shape}", style="rounded,dashed", color=_HINT, fontcolor=_HINT, penwidth="2")
            regressor = dot.node(1, label=f"regressor {distill.regressor}", style="rounded,dashed", color=_HINT, shape="box")
            dot.edge(dot.ids[name], regressor, style="dashed", color=_HINT)
            dot.edge(regressor, hint_node, style="dashed", color=_HINT, label=f"L_HT, {distill.hint_epochs} epochs", fontcolor=_HINT, dir="both")
        if not graph.heads:
            soft = dot.node(1, label=f"teacher {teacher.name if teacher is not None else distill.teacher}\nsoft targets T={distill.temperature:g}", style="rounded,dashed", color=_HINT, fontcolor=_HINT)
            dot.edge(soft, out, style="dashed", color=_HINT, label=f"KD weight {distill.weight:g}", fontcolor=_HINT)
    for edge in dot.edges:
        dot.emit(edge, 1)
    dot.emit("}", 0)
    return dot


def _teacher_graph(program, alias: str) -> ir.ModelGraph | None:
    """The imported teacher's network (for the hint layer's shape), from the compiled import."""
    other = getattr(program, "imports", {}).get(alias)
    return other.graph if other is not None else None


def dot_program() -> str | None:
    """Graphviz's `dot` command, if it is installed."""
    return shutil.which("dot")


class NoGraphviz(Exception):
    """An .svg or .png was asked for, and Graphviz's `dot` is not installed."""


def render(dot_text: str, path: str | Path) -> Path:
    """Write the picture of `dot_text` to `path` (.svg, .png or .dot); return the file written.

    .svg and .png need Graphviz's `dot`: without it nothing is written and NoGraphviz is
    raised (the caller may draw the picture another way). Raises OSError when a file cannot
    be written and RuntimeError when `dot` fails; `path` is replaced only by a whole picture."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"cannot write a graph as '{path.suffix or path.name}'; name a .svg, .png or .dot file")
    if fmt == "dot":
        path.write_text(dot_text, encoding="utf-8")
        return path
    program = dot_program()
    if program is None:
        raise NoGraphviz(f"Graphviz's dot is not installed, so it cannot draw {path}")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{fmt}")
    os.close(handle)
    try:
        done = subprocess.run([program, f"-T{fmt}", "-o", temporary], input=dot_text.encode("utf-8"), capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode("utf-8", "replace").strip() or f"dot exited with status {done.returncode}")
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # as a file written directly would be
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
