"""Memory estimates at check time: a spec whose data or network cannot fit is refused before
anything is loaded or built.

Three estimates, each a lower bound of what training needs (so that a spec refused here
could never run):

- the data a source generates: its entry's `data_bytes` (clauses/data.py), from the arguments;
- the network: parameters × 4 bytes × 4 (the weights, their gradients and Adam's two
  moments), and the largest activation (one layer's output) × the batch × 4 bytes;
- the images that augmentation (`crop` with `pad`, `scale`) and evaluation (`scales`) make,
  a batch at a time × 4 bytes.

Each is refused above the memory limit: the machine's physical memory (os.sysconf), or
TRICK_MEMORY_LIMIT (bytes, or a number with K, M, G or T, e.g. `64G`) when it is set. No torch.
"""

from __future__ import annotations

import math
import os
import re

from ..dsl.diagnostics import Diagnostic, Span
from . import ir

FLOAT_BYTES = 4
TRAINING_COPIES = 4  # weights, gradients, and Adam's first and second moments
LIMIT_ENV = "TRICK_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_limit() -> tuple[int | None, str]:
    """(bytes, what they are) of the limit: TRICK_MEMORY_LIMIT, else this machine's memory
    (None where neither is known: nothing is refused)."""
    setting = os.environ.get(LIMIT_ENV, "").strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", setting, re.IGNORECASE)
    if match:
        return int(float(match.group(1)) * _UNITS[match.group(2).upper()]), f"the memory limit {LIMIT_ENV}={setting}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None, ""
    return (total, f"this machine's memory ({gib(total)})") if total > 0 else (None, "")


def gib(n: int | float) -> str:
    """A byte count in words: `372 GiB`, `1.5 GiB`, `12 MiB`."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            value = n / size
            return f"{value:,.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n:,.0f} bytes"


def estimates(spec, graph: ir.ModelGraph | None, plan: ir.TrainingPlan | None) -> list[tuple[int, Span, str]]:
    """(bytes, where, what needs them) for each part of training that can be estimated."""
    found: list[tuple[int, Span, str]] = []
    source = spec.clause("data", "source")
    entry = source.schema.kind.get(source.kind) if source is not None else None
    if entry is not None and entry.data_bytes is not None:
        size, how = entry.data_bytes(source.values)
        where = source.span_of("n") if "n" in source.given else source.clause.name_span
        found.append((size, where, f"source {source.kind} needs about {{size}} of memory for its data ({how})"))
    if graph is None or plan is None:
        return found
    batch = plan.batch
    layers = graph.all_layers()
    params = graph.params
    if layers:
        widest = max(layers, key=lambda layer: math.prod(layer.output))
        heaviest = max(layers, key=lambda layer: layer.params if not layer.body else 0)
        activation = math.prod(widest.output) * batch * FLOAT_BYTES
        weights = params * FLOAT_BYTES * TRAINING_COPIES
        where = heaviest.span if weights >= activation else widest.span
        found.append((
            weights + activation,
            where,
            f"the model needs about {{size}} of memory to train ({params:,} parameters × {FLOAT_BYTES} bytes × {TRAINING_COPIES} for the weights, "
            f"their gradients and Adam's two moments, and the largest activation, {widest.name}'s {ir.show_shape(widest.output)} × batch {batch} × {FLOAT_BYTES} bytes)",
        ))
    if len(graph.input) == 3:
        channels, height, width = graph.input
        side = (height, width)
        for step in plan.augment:
            if step.kind == "crop" and step.args.get("pad"):
                pad = step.args["pad"]
                h, w = side[0] + 2 * pad, side[1] + 2 * pad
                found.append((batch * channels * h * w * FLOAT_BYTES, step.span, f"crop pad={pad} makes {ir.show_shape((channels, h, w))} images, about {{size}} a batch of {batch}"))
            elif step.kind == "scale":
                short = max(step.args["short_side"])
                h, w = _resized(side, short)
                found.append((batch * channels * h * w * FLOAT_BYTES, step.span, f"scale to a short side of {short} makes {ir.show_shape((channels, h, w))} images, about {{size}} a batch of {batch}"))
            if step.kind in ("crop", "scale"):
                side = (step.args["size"], step.args["size"])
        scales = spec.clause("evaluate", "scales")
        for short in plan.evaluate.scales:
            h, w = _resized((height, width), short)
            where = scales.span_of("sizes") if scales is not None else plan.evaluate.span or graph.span
            found.append((batch * channels * h * w * FLOAT_BYTES, where, f"evaluating at scale {short} makes {ir.show_shape((channels, h, w))} test images, about {{size}} a batch of {batch}"))
    return found


def _resized(side: tuple[int, int], short: int) -> tuple[int, int]:
    ratio = short / min(side)
    return math.floor(side[0] * ratio + 0.5), math.floor(side[1] * ratio + 0.5)


def check_memory(spec, graph: ir.ModelGraph | None, plan: ir.TrainingPlan | None) -> list[Diagnostic]:
    """An error for each estimate above the memory limit."""
    limit, what = memory_limit()
    if limit is None:
        return []
    return [
        Diagnostic(where, message.format(size=gib(size)) + f", more than {what}")
        for size, where, message in estimates(spec, graph, plan)
        if size > limit
    ]
