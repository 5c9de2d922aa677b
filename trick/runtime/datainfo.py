"""`data.json` of a run folder: what the model's inputs and outputs mean.

Written before training (run.py), read by prediction, evaluation and export: the input shape
and, for a .csv, the input columns' names; a folder's image size and colour; per target
whether it is a class (with the class names, by index) or a number (with the training split's
mean and standard deviation: the model's output · std + mean is the value); the fitted input
normalization.

    {"inputs": {"shape": [4], "kind": "table", "names": ["sepal_length", ...], "source": "file"},
     "targets": {"label": {"task": "classification", "classes": ["setosa", ...], "column": "species"},
                 "price": {"task": "regression", "mean": 181000.0, "std": 79000.0, "column": "price"}},
     "normalizer": {...}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..compiler import ir

FILE = "data.json"


def describe(plan: ir.TrainingPlan, graph: ir.ModelGraph, splits) -> dict[str, Any]:
    source = plan.data.source
    kind = "images" if source.kind in ("folder", "synthetic_images") else ("table" if source.kind == "file" and str(source.args.get("path", "")).lower().endswith(".csv") else "arrays")
    inputs: dict[str, Any] = {"shape": list(graph.input), "kind": kind, "names": splits.names, "source": source.kind}
    if source.kind == "folder":
        images = splits.raw_inputs("train").images
        inputs.update(size=images.size, color=images.color)
    targets: dict[str, Any] = {}
    for target in [h.target for h in graph.heads] or ["label"]:
        column = source.args.get("y") if target == "label" and source.kind == "file" else None
        if target in splits.scales:
            mean, std = splits.scales[target]
            targets[target] = {"task": "regression", "mean": mean, "std": std, "column": column}
        else:
            targets[target] = {"task": "classification", "classes": splits.class_names(target), "column": column}
    return {"inputs": inputs, "targets": targets, "normalizer": splits.normalizer.state_dict()}


def write(folder: Path, description: dict[str, Any]) -> None:
    (Path(folder) / FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
