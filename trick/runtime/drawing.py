"""The network's picture without Graphviz: `trickc graph -o net.svg|.png` when `dot` is absent.

A simple layered drawing of exactly the nodes, edges and clusters that `to_dot` writes
(compiler/graph.py `to_picture`):

    rank of a node = the longest path to it from the input (edges with constraint=false,
    the residual skips, do not count); the nodes of a rank side by side in the order
    they were declared; clusters as boxes around their nodes, nested ones inside;
    edges as arrows (skip edges curved), dashed where DOT has them dashed.

matplotlib is imported when a picture is drawn; the file is replaced only by a whole one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..compiler.graph import Picture

_CHAR, _LINE, _PAD = 5.6, 11.0, 8.0  # points: a character's width and a line's height at size 8, padding
_RANK_GAP, _NODE_GAP = 26.0, 18.0
_MAX_PIXELS = 30000  # per side of a .png


def _size(label: str) -> tuple[float, float]:
    lines = label.split("\n")
    return max(len(line) for line in lines) * _CHAR + 2 * _PAD, len(lines) * _LINE + _PAD


def _ranks(picture: Picture) -> dict[str, int]:
    """Longest-path layering over the ranking edges (declaration order where there is a cycle)."""
    order = [node_id for node_id, _ in picture.nodes]
    into: dict[str, list[str]] = {n: [] for n in order}
    for a, b, attrs in picture.edges:
        if attrs.get("constraint") != "false" and a in into and b in into:
            into[b].append(a)
    rank: dict[str, int] = {}

    def visit(node: str, seen: frozenset) -> int:
        if node in rank:
            return rank[node]
        if node in seen:
            return 0
        rank[node] = max((visit(p, seen | {node}) + 1 for p in into[node]), default=0)
        return rank[node]

    for node in order:
        visit(node, frozenset())
    # A node that nothing leads into but the first (a teacher's soft targets) sits just above
    # the first node it leads to, as dot puts it, rather than beside the input.
    out: dict[str, list[str]] = {n: [] for n in order}
    for b, sources in into.items():
        for a in sources:
            out[a].append(b)
    for node in order[1:]:
        if not into[node] and out[node]:
            rank[node] = max(0, min(rank[b] for b in out[node]) - 1)
    return rank


def layout(picture: Picture) -> dict[str, tuple[float, float, float, float]]:
    """Each node's box (center x, center y, width, height) in points, y growing downwards.
    The nodes of a rank sit in equally wide slots, centered, so that the k-th node of each
    rank (the k-th head, say) lines up and the boxes around clusters do not overlap."""
    rank = _ranks(picture)
    sizes = {node_id: _size(attrs.get("label", node_id)) for node_id, attrs in picture.nodes}
    rows: dict[int, list[str]] = {}
    for node_id, _ in picture.nodes:
        rows.setdefault(rank[node_id], []).append(node_id)
    shared = [n for row in rows.values() if len(row) > 1 for n in row]
    slot = max((sizes[n][0] for n in shared), default=0.0) + 2 * _margin(picture) + _NODE_GAP
    boxes: dict[str, tuple[float, float, float, float]] = {}
    y = 0.0
    for r in sorted(rows):
        row = rows[r]
        height = max(sizes[n][1] for n in row)
        for k, n in enumerate(row):
            w, h = sizes[n]
            boxes[n] = ((k - (len(row) - 1) / 2) * slot, y + height / 2, w, h)
        y += height + _RANK_GAP
    return boxes


def _nesting(picture: Picture) -> list[int]:
    """How many clusters each cluster holds."""
    members = [set(c.members) for c in picture.clusters]
    return [sum(1 for j, other in enumerate(members) if j != i and other < mine) for i, mine in enumerate(members)]


def _margin(picture: Picture) -> float:
    """The padding of the widest cluster box around its nodes."""
    return 6.0 + 8.0 * max(_nesting(picture), default=0) if picture.clusters else 0.0


def draw(picture: Picture, path: str | Path) -> Path:
    """Draw `picture` into `path` (.svg or .png) with matplotlib; return the path."""
    from matplotlib import patches, rc_context
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    boxes = layout(picture)
    members = [set(c.members) for c in picture.clusters]
    inner = _nesting(picture)
    margin = _margin(picture) + 6
    left = min(x - w / 2 for x, _, w, _ in boxes.values()) - margin - 40
    right = max(x + w / 2 for x, _, w, _ in boxes.values()) + margin + 40
    top = min(y - h / 2 for _, y, _, h in boxes.values()) - margin - 24
    bottom = max(y + h / 2 for _, y, _, h in boxes.values()) + margin
    width, height = right - left, bottom - top
    dpi = min(100.0, _MAX_PIXELS / (max(width, height) / 72))
    with rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans"}):
        figure = Figure(figsize=(width / 72, height / 72), dpi=dpi)
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(left, right)
        axes.set_ylim(bottom, top)  # y grows downwards, as the ranks do
        axes.set_axis_off()
        axes.text((left + right) / 2, top + 12, picture.title, ha="center", va="center", fontsize=11)
        # clusters, outermost first, each a little larger than the ones it holds
        for i in sorted(range(len(picture.clusters)), key=lambda k: -len(members[k])):
            cluster, inside = picture.clusters[i], [boxes[n] for n in picture.clusters[i].members if n in boxes]
            if not inside:
                continue
            pad = 6.0 + 8.0 * inner[i]
            x0 = min(x - w / 2 for x, _, w, _ in inside) - pad
            x1 = max(x + w / 2 for x, _, w, _ in inside) + pad
            y0 = min(y - h / 2 for _, y, _, h in inside) - pad - 10
            y1 = max(y + h / 2 for _, y, _, h in inside) + pad
            axes.add_patch(patches.FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=6", facecolor="#f7f7f7" if not cluster.dashed else "none", edgecolor="#9a9a9a" if not cluster.dashed else "#6c8ebf", linestyle="--" if cluster.dashed else "-", linewidth=0.8, zorder=1))
            axes.text(x0 + 4, y0 + 7, cluster.label, ha="left", va="center", fontsize=7, color="#555555", zorder=2)
        for node_id, attrs in picture.nodes:
            x, y, w, h = boxes[node_id]
            edge = attrs.get("color", "#555555")
            dashed = "dashed" in attrs.get("style", "")
            style = {"facecolor": attrs.get("fillcolor", "#ffffff"), "edgecolor": edge, "linewidth": float(attrs.get("penwidth", "1")), "linestyle": "--" if dashed else "-", "zorder": 3}
            shape = attrs.get("shape", "box")
            if shape in ("oval", "circle"):
                axes.add_patch(patches.Ellipse((x, y), w + (0 if shape == "circle" else 10), h, **style))
            else:
                axes.add_patch(patches.FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=4", **style))
            axes.text(x, y, attrs.get("label", ""), ha="center", va="center", fontsize=8, color=attrs.get("fontcolor", "#222222"), zorder=4, linespacing=1.1)
        for a, b, attrs in picture.edges:
            if a not in boxes or b not in boxes:
                continue
            (xa, ya, wa, ha), (xb, yb, wb, hb) = boxes[a], boxes[b]
            skip = attrs.get("constraint") == "false"
            start = (xa, ya + ha / 2) if yb > ya else (xa, ya - ha / 2)
            end = (xb, yb - hb / 2) if yb > ya else (xb, yb + hb / 2)
            if skip:  # beside the layers it skips
                start, end = (xa + wa / 2, ya), (xb + wb / 2, yb)
            arrow = "<|-|>" if attrs.get("dir") == "both" else "-|>"
            colour = attrs.get("color", "#555555")
            axes.add_patch(patches.FancyArrowPatch(start, end, arrowstyle=arrow, mutation_scale=8, color=colour, linewidth=0.8, linestyle="--" if "dashed" in attrs.get("style", "") else "-", connectionstyle="arc3,rad=-0.5" if skip else "arc3", zorder=2, shrinkA=0, shrinkB=1))
            if attrs.get("label"):
                mx, my = (start[0] + end[0]) / 2 + (30 if skip else 4), (start[1] + end[1]) / 2
                axes.text(mx, my, attrs["label"], ha="left", va="center", fontsize=7, color=attrs.get("fontcolor", colour), zorder=4)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{fmt}")
        os.close(handle)
        try:
            figure.savefig(temporary, format=fmt, dpi=dpi)
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
