"""`trickc compare RUN...`: finished runs side by side.

A table of the runs' test metrics with each one's difference from the first run; the
clause-level differences of each run's spec.trick from the first's (a clause of a block is
known by its block and name, and by its kind where the block may hold several, as
`regularize l1` and `regularize l2`; the model's lines are compared in order); and, with -o,
compare.md and curves.png (validation accuracy and loss per epoch, overlaid) in that folder.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from ..compiler import clauses as R
from ..dsl import ast
from ..dsl.diagnostics import TrickError, TrickUsageError
from ..dsl.format import statement_text
from ..dsl.parser import parse_text
from . import plots
from .jobs import read_history, read_summary


def _run(folder: Path) -> tuple[dict, str | None, list[dict]]:
    summary = read_summary(folder)
    if not folder.is_dir():
        raise TrickUsageError(f"{folder} is not a folder; name run folders (runs/SPEC/N)")
    if summary is None:
        raise TrickUsageError(f"{folder} is not a finished run: it has no readable summary.json")
    spec = folder / "spec.trick"
    return summary, spec.read_text(encoding="utf-8") if spec.is_file() else None, read_history(folder)


def clauses(text: str, name: str = "spec.trick") -> dict[str, str]:
    """The clauses of a spec outside the model, by `block.clause` (with the kind, for the
    clauses a block may hold several of), as text; and `spec` and the imports."""
    program = parse_text(text, name)
    found: dict[str, str] = {}
    if program.name:
        found["spec"] = program.name
    for imp in program.imports:
        found[f"import {imp.alias}"] = f'"{imp.path}"'
    for block in program.blocks:
        if block.name == "model":
            continue
        for statement in block.body or ():
            if isinstance(statement, ast.Target):
                found[f"{block.name}.target {statement.name}"] = statement_text(statement)
                continue
            clause = statement.chain[0]
            key = f"{block.name}.{clause.name}"
            schema = next((r.get(clause.name) for r in R.BLOCK_CLAUSES.get(block.name, ()) if clause.name in r), None)
            if schema is not None and schema.repeatable and clause.args and isinstance(clause.args[0], ast.Ref):
                key += f" {clause.args[0].name}"
            while key in found:  # the same clause twice (repeatable without a kind: augmentations)
                key += "'"
            found[key] = statement_text(statement)
    return found


def model_lines(text: str, name: str = "spec.trick") -> list[str]:
    """The model's lines, each on one line as the formatter writes it."""
    program = parse_text(text, name)
    block = program.block("model")
    return [statement_text(s) for s in (block.body or ())] if block is not None else []


def spec_diff(first: str, other: str) -> list[str]:
    """What `other` changes of `first`, one line per clause: `~ train.optimizer: a -> b`,
    `+ train.regularize l2: regularize l2 1e-4`, `- model: dropout 0.5`."""
    a, b = clauses(first), clauses(other)
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        if key in a and key in b and a[key] != b[key]:
            out.append(f"~ {key}: `{a[key]}` → `{b[key]}`")
        elif key in a and key not in b:
            out.append(f"- {key}: `{a[key]}`")
        elif key not in a:
            out.append(f"+ {key}: `{b[key]}`")
    old, new = model_lines(first), model_lines(other)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:
            out += [f"~ model line {j1 + k + 1}: `{old[i1 + k]}` → `{new[j1 + k]}`" for k in range(i2 - i1)]
        elif tag != "equal":
            out += [f"- model: `{line}`" for line in old[i1:i2]]
            out += [f"+ model line {j1 + k + 1}: `{line}`" for k, line in enumerate(new[j1:j2])]
    return out


def _flat(value, prefix: str = "") -> dict[str, object]:
    """A plan as `key.path: value`, without source positions and paths of files."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            if not (k.endswith("span") or k in ("spec_path", "base_dir")):
                out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(_strip(value)) if isinstance(value, list) else value}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.endswith("span")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def plan_diff(first: Path, other: Path) -> list[str]:
    """The resolved settings (plan.json) in which two runs differ: what --set changed too."""
    try:
        a, b = (_flat(json.loads((f / "plan.json").read_text(encoding="utf-8"))) for f in (first, other))
    except (OSError, ValueError):
        return []
    return [f"{key}: {a.get(key, '—')} → {b.get(key, '—')}" for key in list(a) + [k for k in b if k not in a] if a.get(key) != b.get(key)]


def _number(key: str, value: float) -> str:
    return f"{100 * value:.2f}" if key.endswith("accuracy") else f"{value:.4f}"


def compare(runs: list[Path], out: Path | None = None) -> str:
    """The comparison as markdown; with `out`, also compare.md and curves.png there."""
    loaded = [(Path(r), *_run(Path(r))) for r in runs]
    metrics: list[str] = []
    for _, summary, _, _ in loaded:
        metrics += [k for k in summary.get("test", {}) if k not in metrics and isinstance(summary["test"][k], (int, float))]
    first = loaded[0][1].get("test", {})
    head = ["run", "spec"] + [f"test {m}{' %' if m.endswith('accuracy') else ''}" for m in metrics] + ["epochs", "seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, (folder, summary, _, _) in enumerate(loaded):
        cells = [str(folder), summary.get("spec", "")]
        for m in metrics:
            value = summary.get("test", {}).get(m)
            if value is None:
                cells.append("—")
            elif index == 0 or m not in first:
                cells.append(_number(m, value))
            else:
                delta = value - first[m]
                cells.append(f"{_number(m, value)} ({'+' if delta >= 0 else '−'}{_number(m, abs(delta))})")
        cells += [str(summary.get("epochs_run", "")), str(summary.get("seed", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    text = "# Comparison\n\n" + "\n".join(lines) + "\n\nDifferences are from the first run.\n"
    base = loaded[0][2]
    for folder, _, spec, _ in loaded[1:]:
        if base is None or spec is None:
            text += f"\n## {folder}\n\nno spec.trick to compare\n"
            continue
        try:
            changes = spec_diff(base, spec)
        except TrickError as err:
            changes = [f"cannot read a spec.trick: {err.diagnostics[0].message if err.diagnostics else err}"]
        text += f"\n## {folder} against {loaded[0][0]}\n\n" + ("\n".join(f"    {c}" for c in changes) if changes else "the same spec") + "\n"
        settings = plan_diff(loaded[0][0], folder)
        if settings:
            text += "\nresolved settings (plan.json; --set changes show here):\n\n" + "\n".join(f"    {s}" for s in settings) + "\n"
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        panes = []
        for key in ("val.accuracy", "val.loss"):
            series = {str(folder): [(r["epoch"], r[key]) for r in history if key in r] for folder, _, _, history in loaded}
            if any(series.values()):
                panes.append((key, series))
        if not panes:
            panes = [("train.loss", {str(f): [(r["epoch"], r["train.loss"]) for r in h if "train.loss" in r] for f, _, _, h in loaded})]
        plots.panels(out / "curves.png", panes, "learning curves")
        text += "\n![learning curves](curves.png)\n"
        (out / "compare.md").write_text(text, encoding="utf-8")
    return text
