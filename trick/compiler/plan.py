"""Lowering the plan: every clause outside the model, with its defaults, into a TrainingPlan.

The model's lowering (lower.py) mixes this in; the plan reads the checked clauses only, and
what it leaves to a default is written out, so that the plan says exactly what will run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..dsl import ast
from ..dsl.diagnostics import Span
from . import clauses as R
from . import ir
from .check import CheckedSpec
from .schema import REQUIRED
from .ir import show_shape as _show


class PlanLowering:
    """The plan half of the lowering (needs `spec`, `error`, `source` and `augment`)."""

    # -- clauses, with the defaults of their registry entries -----------------------------------

    def value(self, block: str, clause: str, param: str, absent: Any = None) -> Any:
        """A clause's argument; the entry's default when the spec leaves the clause out (or
        `absent` for a required argument of a clause that is not there: `weight_noise`)."""
        bound = self.spec.clause(block, clause)
        if bound is not None:
            return bound.values[param]
        schema = _schema(block, clause)
        default = schema.param(param).default
        return absent if default is REQUIRED else default

    def step(self, block: str, clause: str) -> ir.Step:
        """A clause with a kind (`optimizer adamw lr=...`), or its default kind with every
        default argument, at the block, when the spec leaves it out."""
        bound = self.spec.clause(block, clause)
        if bound is not None:
            return ir.Step(bound.kind, ir.plain(dict(bound.values)), bound.span)
        schema = _schema(block, clause)
        entry = schema.kind.get(schema.kind_default)
        defaults = {p.name: p.default for p in (*schema.params, *entry.params)}
        at = self.spec.program.block(block)
        return ir.Step(entry.name, ir.plain(defaults), at.span if at is not None else nowhere(self.spec))

    def block_span(self, block: str) -> Span | None:
        at = self.spec.program.block(block)
        return at.span if at is not None else None

    # -- the plan ---------------------------------------------------------------------------------

    def plan(self, graph: ir.ModelGraph | None) -> ir.TrainingPlan:
        spec, get, value = self.spec, self.spec.clause, self.value
        early_stop = self.early_stop()
        clip, adversarial, plot, batch = get("train", "clip_grad"), get("train", "adversarial"), get("report", "plot"), get("train", "batch")
        compiled = get("train", "compile")
        train_block = spec.program.block("train")
        return ir.TrainingPlan(
            spec=spec.program.name or "spec",
            spec_path=str(spec.loaded.path) if spec.loaded.path is not None else None,
            seed=value("train", "seed", "value"),
            device=value("train", "device", "name"),
            data=dataclasses.replace(self.data_plan(early_stop), regression=ir.regression_targets(graph, self.step("train", "loss").kind)),
            augment=self.augment(graph.input) if graph is not None else (),
            epochs=value("train", "epochs", "n"),
            batch=value("train", "batch", "size"),
            optimizer=self.step("train", "optimizer"),
            schedule=self.step("train", "schedule"),
            loss=self.step("train", "loss"),
            regularizers=tuple(ir.Step(b.kind, ir.plain(dict(b.values)), b.span) for b in spec.blocks.get("train", ()) if b.name == "regularize"),
            weight_noise=float(value("train", "weight_noise", "std", 0.0)),
            early_stop=early_stop,
            clip_grad=float(clip.values["max_norm"]) if clip else None,
            adversarial=ir.Step(adversarial.kind, ir.plain(dict(adversarial.values)), adversarial.span) if adversarial else None,
            evaluate=self.evaluate_plan(graph),
            transfer=self.transfer_plan(),
            distill=self.distill_plan(),
            curriculum=self.curriculum_plan(),
            plots=tuple(plot.extra) if plot else (),
            imports=tuple(self.imports()),
            batch_span=batch.span_of("size") if batch is not None else None,
            train_span=train_block.name_span if train_block is not None else None,
            compile=compiled.values["mode"] if compiled is not None and compiled.values["enabled"] else None,
            precision=value("train", "precision", "kind", "fp32"),
            channels_last=get("train", "channels_last") is not None and bool(get("train", "channels_last").values["enabled"]),
            speed_span=next((b.span for b in (compiled, get("train", "precision"), get("train", "channels_last")) if b is not None), None),
        )

    def early_stop(self) -> ir.EarlyStop | None:
        early = self.spec.clause("train", "early_stop")
        if early is None:
            return None
        v = early.values
        mode = v["mode"] if v["mode"] != "auto" else ("min" if v["monitor"].endswith(("loss", "mse", "mae")) else "max")
        return ir.EarlyStop(v["monitor"], mode, v["patience"], float(v["min_delta"]), v["restore"], early.span)

    def data_plan(self, early_stop: ir.EarlyStop | None) -> ir.DataPlan:
        spec, get = self.spec, self.spec.clause
        source, validation, test = self.source(), get("data", "validation"), get("data", "test")
        normalize, classes = get("data", "normalize"), get("data", "classes")
        return ir.DataPlan(
            source=ir.Step(source.kind, ir.plain(dict(source.values)), source.span) if source else ir.Step("none", {}, nowhere(spec)),
            validation=float(validation.values["fraction"]) if validation else (0.1 if early_stop and early_stop.monitor.startswith("val.") else 0.0),
            test=float(test.values["fraction"]) if test else (None if source is not None and _may_split_itself(source) else 0.2),
            normalize=ir.Step(normalize.kind, ir.plain(dict(normalize.values)), normalize.span) if normalize else None,
            classes=tuple(classes.values["labels"]) if classes else None,
            train_fraction=float(self.value("data", "train_fraction", "fraction", 1.0)),
            targets=tuple(ir.Target(t.name, expr_json(t.expr), t.span) for t in spec.targets),
            base_dir=str(spec.loaded.path.parent) if spec.loaded.path is not None else os.getcwd(),
            span=self.block_span("data") or nowhere(spec),
            columns=tuple(b.values["name"] for b in spec.blocks.get("curriculum", ()) if b.name == "score" and b.kind == "column"),
        )

    def evaluate_plan(self, graph: ir.ModelGraph | None) -> ir.Evaluate:
        tta, scales = self.spec.clause("evaluate", "tta"), self.spec.clause("evaluate", "scales")
        evaluate = ir.Evaluate(
            tta_hflip="hflip" in (tta.extra if tta else []),
            crops=tta.values["crops"] if tta else 1,
            scales=tuple(scales.values["sizes"]) if scales else (),
            span=self.block_span("evaluate"),
        )
        if (evaluate.tta_hflip or evaluate.crops > 1 or evaluate.scales) and graph is not None and len(graph.input) != 3:
            self.error(evaluate.span, f"test-time augmentation needs 2-D images, the data is {_show(graph.input)}")
        return evaluate

    def transfer_plan(self) -> ir.Transfer | None:
        source = self.spec.clause("transfer", "from")
        if source is None:
            return None
        v = source.values
        return ir.Transfer(
            v["model"],
            v["layers"],
            tuple(v["labels"]) if v["labels"] is not None else None,
            bool(self.value("transfer", "freeze", "value", False)) if self.spec.clause("transfer", "freeze") else False,
            float(self.value("transfer", "lr_scale", "scale", 1.0)),
            source.span,
        )

    def distill_plan(self) -> ir.Distill | None:
        teacher = self.spec.clause("distill", "teacher")
        if teacher is None:
            return None
        hints = tuple((b.values["hint"].split(".", 1)[1], b.arrow) for b in self.spec.blocks["distill"] if b.name == "hint" and b.arrow)
        return ir.Distill(
            teacher.values["model"],
            hints,
            self.value("distill", "regressor", "type"),
            self.value("distill", "hint_epochs", "n"),
            float(self.value("distill", "temperature", "value")),
            float(self.value("distill", "temperature", "weight")),
            self.block_span("distill"),
        )

    def curriculum_plan(self) -> ir.Curriculum | None:
        score = self.spec.clause("curriculum", "score")
        if score is None:
            return None
        return ir.Curriculum(ir.Step(score.kind, ir.plain(dict(score.values)), score.span), self.step("curriculum", "pace"), self.block_span("curriculum"))

    def imports(self):
        for imp in self.spec.program.imports:
            child = self.spec.imports.get(imp.alias)
            if child is None or child.loaded.path is None:
                continue
            yield ir.ImportPlan(imp.alias, str(child.loaded.path), child.program.name or imp.alias, content_hash(child), imp.span)


def _may_split_itself(source) -> bool:
    """Whether a source may bring its own test split (then `test` is None in the plan, and the
    runtime holds out 0.2 where it brings none): MNIST-1D, a folder (its test/ subfolder), a
    file with a split column."""
    return source.kind in R.SOURCES_WITH_TEST_SPLIT or source.kind == "folder" or (source.kind == "file" and source.values.get("split") is not None)


def _schema(block: str, clause: str):
    return next(r.get(clause) for r in R.BLOCK_CLAUSES[block] if clause in r)


def nowhere(spec: CheckedSpec) -> Span:
    return Span.point(spec.program.file, 1, 1)


def expr_json(expr) -> Any:
    if isinstance(expr, ast.Number):
        return expr.value
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Neg):
        return ["neg", expr_json(expr.operand)]
    return [expr.op, expr_json(expr.left), expr_json(expr.right)]


def content_hash(spec: CheckedSpec) -> str:
    """A hash of a spec file, the data file it reads (`source file`: its bytes) and,
    recursively, everything it imports."""
    import hashlib  # here: `trickc check` computes no hash, and importing it costs its start

    text = spec.program.text
    if spec.program.block("sweep") is not None:  # a sweep block changes no run
        from .sweep import sweep_free_text

        text = sweep_free_text(spec.program)
    digest = hashlib.sha256(text.encode("utf-8"))
    source = spec.clause("data", "source")
    if source is not None and source.kind in ("file", "folder"):
        base = spec.loaded.path.parent if spec.loaded.path is not None else os.getcwd()
        path = os.path.join(base, str(source.values["path"]))
        digest.update(b"\0data\0" + (_folder_digest(path) if source.kind == "folder" else _file_digest(path)).encode())
        labels = source.values.get("y")
        if source.kind == "file" and str(source.values["path"]).lower().endswith(".npy") and isinstance(labels, str):
            digest.update(b"\0labels\0" + _file_digest(os.path.join(base, labels)).encode())
    for alias in sorted(spec.imports):
        child = spec.imports[alias]
        digest.update(f"\0{alias}\0".encode())
        digest.update((content_hash(child) if child is not None else "missing").encode())
    return digest.hexdigest()[:16]


_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime) -> digest: each data file is read once per process


def _file_digest(path: str) -> str:
    """The sha256 of a file's bytes ("missing" when it cannot be read: the run reports why)."""
    try:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in _DIGESTS:
            import hashlib

            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            _DIGESTS[key] = digest.hexdigest()
        return _DIGESTS[key]
    except OSError:
        return "missing"


def _folder_digest(path: str) -> str:
    """A hash of an image folder's listing: every file's path, size and modification time (its
    images are not read: a changed image changes its size or time)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                stat = os.stat(full)
                digest.update(f"{os.path.relpath(full, path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    except OSError:
        return "missing"
    return digest.hexdigest()
