"""`trickc ablate SPEC`: what each of a spec's tricks buys.

One variant per trick (variants.py): leave-one-out runs the full spec and the spec without
each trick; add-one-in runs the plain spec (without every trick) and the plain spec with
each one. Every variant is written to DIR/variants/NAME.trick and trained for every seed
into DIR/runs/NAME/seedS (a normal run folder: finished runs are reused while their content
hash is unchanged, so a second call only redraws). A variant that does not check is skipped,
with the reason. DIR gets:

    ablation.md, ablation.csv  one row per variant: the change, the test metric's mean ± std,
                               its difference from the reference (the full spec, or the
                               plain one) with Welch's 95% interval, and whether that
                               interval excludes 0 (a difference beyond the seed noise)
    ablation.png               the means with the standard deviations as error bars
    curves.png                 the validation curves, averaged over the seeds, overlaid
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..compiler.pipeline import compile_source, run_pipeline
from ..dsl.diagnostics import TrickCheckError, TrickError, TrickUsageError
from ..dsl.format import format_program
from . import plots
from .jobs import Job, Outcome, run_all
from .stats import Difference, mean_std, welch
from .variants import Trick, find_tricks, relocated, without, without_sweep

MODES = ("leave-one-out", "add-one-in")


@dataclass
class Variant:
    name: str  # the file's stem: full, plain, without_dropout, with_dropout
    change: str  # what differs from the reference, for the table
    path: Path
    reference: bool = False
    skipped: str | None = None
    program: object = field(default=None, repr=False)


@dataclass
class Row:
    variant: Variant
    values: list[float]
    failed: list[str]
    difference: Difference | None
    histories: list[list[dict]]
    epochs: list[int]


@dataclass
class Ablation:
    spec: str
    mode: str
    metric: str
    seeds: list[int]
    rows: list[Row]
    out: Path


def write_variants(spec: Path, out: Path, mode: str, overrides: tuple[str, ...] = ()) -> list[Variant]:
    """The variants of `spec` as .trick files in out/variants (each checked; one that does
    not check, or is the same spec as another, is marked skipped)."""
    compiled = run_pipeline(spec, str(spec))
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    if errors:
        raise TrickCheckError(errors)
    program = without_sweep(compiled.spec.program)
    tricks = find_tricks(program)
    if not tricks:
        raise TrickUsageError(f"{spec} has no tricks to ablate: no normalization or noise layer, dropconnect=, smoothing=, regularize, weight_noise, early_stop, schedule, adversarial, augmentation, tta, transfer, distill or curriculum")
    folder = out / "variants"
    folder.mkdir(parents=True, exist_ok=True)

    def make(name: str, removed: list[Trick], change: str, reference: bool = False) -> Variant:
        text = format_program(relocated(without(program, removed), spec.parent, folder))
        path = folder / f"{name}.trick"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        return Variant(name, change, path, reference)

    if mode == "leave-one-out":
        variants = [make("full", [], "— (the spec as written)", True)]
        variants += [make(f"without_{t.slug}", [t], f"without {t.describe()}") for t in tricks]
    else:
        variants = [make("plain", tricks, "— (the spec without any of its tricks)", True)]
        variants += [make(f"with_{t.slug}", [o for o in tricks if o is not t], f"plain + {t.describe()}") for t in tricks]
    seen: dict[str, str] = {}
    for variant in variants:
        text = variant.path.read_text(encoding="utf-8")
        if text in seen:
            variant.skipped = f"the same spec as {seen[text]}"
            continue
        seen[text] = variant.name
        try:
            variant.program = compile_source(variant.path, name=str(variant.path), overrides=list(overrides))
        except TrickError as err:
            first = err.diagnostics[0].message if err.diagnostics else str(err)
            variant.skipped = f"does not check: {first}"
    if variants[0].skipped:
        raise TrickUsageError(f"the reference spec {variants[0].path} {variants[0].skipped}")
    return variants


def ablate(
    spec: Path, out: Path, *, seeds: int = 3, jobs: int = 1, mode: str = "leave-one-out", metric: str | None = None, overrides: tuple[str, ...] = (), stream: TextIO | None = sys.stderr
) -> Ablation:
    """Run the ablation (see the module's docstring) and write its outputs into `out`;
    `overrides` are --set settings for every run."""
    if mode not in MODES:
        raise TrickUsageError(f"--mode must be {' or '.join(MODES)}, found '{mode}'")
    if seeds < 1:
        raise TrickUsageError(f"--seeds must be at least 1, found {seeds}")
    spec, out = Path(spec), Path(out)
    variants = write_variants(spec, out, mode, tuple(overrides))
    first = variants[0].program.plan.seed
    return run_variants(str(spec), mode, variants, out, [first + i for i in range(seeds)], jobs=jobs, metric=metric, overrides=overrides, stream=stream)


def run_variants(
    spec: str, mode: str, variants: list[Variant], out: Path, seeds: list[int], *, jobs: int = 1, metric: str | None = None,
    overrides: tuple[str, ...] = (), runs: Path | None = None, stream: TextIO | None = sys.stderr,
) -> Ablation:
    """Train every variant that is not skipped for every seed (the first variant is the
    reference), and write the outputs; `runs` is where the imports' runs go (default: next to
    each imported spec, as `trickc run` puts them)."""
    job_list = [
        Job(f"{v.name}/seed{s}", out / "runs" / v.name / f"seed{s}", v.path, overrides=(*overrides, f"train.seed={s}"), name=str(v.path), runs=runs)
        for v in variants
        if not v.skipped
        for s in seeds
    ]
    for v in variants:
        if v.skipped and stream is not None:
            print(f"skipping {v.name}: {v.skipped}", file=stream)
    outcomes = run_all(job_list, jobs, stream, "ablation runs")
    recorded = sorted({k for o in outcomes.values() if o.ok for k in o.summary.get("test", {})})
    if metric is not None and recorded and metric not in recorded:
        raise TrickUsageError(f"the runs record no test metric '{metric}'; they record {', '.join(recorded)}")
    metric = metric or _default_metric(outcomes.values())
    result = Ablation(spec, mode, metric, list(seeds), _rows(variants, outcomes, seeds, metric), out)
    write_outputs(result)
    return result


def _default_metric(outcomes) -> str:
    for outcome in outcomes:
        test = (outcome.summary or {}).get("test", {})
        for name in ("accuracy", "r2", "loss"):
            if name in test:
                return name
    return "accuracy"


def _rows(variants: list[Variant], outcomes: dict[str, Outcome], seeds: list[int], metric: str) -> list[Row]:
    rows = []
    for v in variants:
        mine = [outcomes[f"{v.name}/seed{s}"] for s in seeds] if not v.skipped else []
        values = [o.summary["test"][metric] for o in mine if o.ok and metric in o.summary.get("test", {})]
        failed = [f"seed {o.job.overrides[-1].split('=')[1]}: {(o.error or o.status).splitlines()[0]}" for o in mine if not o.ok]
        epochs = [o.summary["epochs_run"] for o in mine if o.ok]
        rows.append(Row(v, values, failed, None, [o.history for o in mine if o.ok], epochs))
    reference = rows[0].values
    for row in rows[1:]:
        if row.values and reference:
            row.difference = welch(reference, row.values)
    return rows


CURVE_KEYS = ("val.accuracy", "val.label.accuracy", "val.r2", "val.loss", "train.loss")


def curve_key(groups: list[list[list[dict]]]) -> str | None:
    """The metric to draw: the first of CURVE_KEYS that every group of runs records (else
    that any does)."""
    has = [[key for key in CURVE_KEYS if any(key in r for h in histories for r in h)] for histories in groups if histories]
    for key in CURVE_KEYS:
        if has and all(key in h for h in has):
            return key
    return next((key for h in has for key in h), None)


def mean_curve(histories: list[list[dict]], key: str) -> list[tuple[int, float]]:
    """The mean over the runs of `key` per epoch, over the runs that reached that epoch."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for record in history:
            if key in record:
                by_epoch.setdefault(record["epoch"], []).append(record[key])
    return [(epoch, sum(v) / len(v)) for epoch, v in sorted(by_epoch.items())]


# ---- outputs -------------------------------------------------------------------------------------------


def _pct(x: float, metric: str) -> str:
    return f"{100 * x:.2f}" if metric == "accuracy" else f"{x:.4f}"


def _cells(row: Row, metric: str) -> dict[str, str]:
    mean, std = mean_std(row.values) if row.values else (None, None)
    d = row.difference
    return {
        "mean": "—" if mean is None else _pct(mean, metric),
        "std": "—" if std is None else _pct(std, metric),
        "diff": "" if d is None else ("+" if d.value >= -1e-12 else "") + _pct(d.value if abs(d.value) > 1e-12 else 0.0, metric),  # no "-0.00" from rounding
        "interval": "" if d is None or d.low is None else f"[{_pct(d.low, metric)}, {_pct(d.high, metric)}]",
        "beyond": "" if d is None or d.beyond_noise is None else ("yes" if d.beyond_noise else "no"),
    }


def table(result: Ablation) -> str:
    """The markdown table of an ablation."""
    unit = " %" if result.metric == "accuracy" else ""
    reference = "full" if result.mode == "leave-one-out" else "plain"
    lines = [
        f"| variant | change | test {result.metric}{unit}, mean ± std | per seed | vs {reference} | 95% interval | beyond seed noise | epochs run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result.rows:
        v = row.variant
        if v.skipped:
            lines.append(f"| {v.name} | {v.change} | skipped: {v.skipped} | | | | | |")
            continue
        c = _cells(row, result.metric)
        per_seed = " / ".join(_pct(x, result.metric) for x in row.values) + (f" ({len(row.failed)} failed)" if row.failed else "")
        epochs = " / ".join(map(str, row.epochs))
        lines.append(f"| {'**' + v.name + '**' if v.reference else v.name} | {v.change} | {c['mean']} ± {c['std']} | {per_seed} | {c['diff']} | {c['interval']} | {c['beyond']} | {epochs} |".replace(" ± —", ""))
    return "\n".join(lines) + "\n"


def write_outputs(result: Ablation) -> None:
    out = result.out
    reference = "the full spec" if result.mode == "leave-one-out" else "the plain spec"
    failures = [f"- {row.variant.name}, {f}" for row in result.rows for f in row.failed]
    text = (
        f"# Ablation of {result.spec}\n\n"
        f"Mode {result.mode}; seeds {', '.join(map(str, result.seeds))}; test {result.metric} of each run (the weights the run kept). "
        f"A difference is from {reference}, with Welch's 95% t interval over the seeds; it is beyond the seed noise when the interval excludes 0. "
        f"The variants are in variants/, their runs in runs/NAME/seedS.\n\n"
        + table(result)
        + ("\nRuns that failed:\n\n" + "\n".join(failures) + "\n" if failures else "")
        + "\n![test metric per variant](ablation.png)\n\n![validation curves](curves.png)\n"
    )
    (out / "ablation.md").write_text(text, encoding="utf-8")
    with open(out / "ablation.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "change", "status", "metric", "mean", "std", "per_seed", "difference", "interval_low", "interval_high", "beyond_seed_noise", "file"])
        for row in result.rows:
            v = row.variant
            mean, std = mean_std(row.values) if row.values else (None, None)
            d = row.difference
            writer.writerow([
                v.name, v.change, f"skipped: {v.skipped}" if v.skipped else ("reference" if v.reference else "ran"), f"test.{result.metric}",
                _num(mean), _num(std), " ".join(f"{x:.6g}" for x in row.values), _num(d.value if d else None), _num(d.low if d else None), _num(d.high if d else None),
                "" if d is None or d.beyond_noise is None else str(d.beyond_noise).lower(), str(v.path.relative_to(out)) if v.path.is_relative_to(out) else str(v.path),
            ])
    ran = [r for r in result.rows if r.values]
    if ran:
        plots.bars(out / "ablation.png", [(r.variant.name, mean_std(r.values)[0], mean_std(r.values)[1], r.variant.reference) for r in ran], result.metric, f"{result.spec}: {result.mode}, {len(result.seeds)} seed{'s' * (len(result.seeds) != 1)}")
        key = curve_key([r.histories for r in ran])
        if key is not None:
            series = {r.variant.name: mean_curve(r.histories, key) for r in ran}
            plots.curves(out / "curves.png", series, key, f"{result.spec}: {key}, mean over the seeds", highlight=ran[0].variant.name if ran[0].variant.reference else None)


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"
