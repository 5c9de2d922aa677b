"""Results: the published MNIST-1D baselines reproduced, what each trick buys, and the
GroupNorm batch-size study; writes docs/results.md and its plots (docs/results/*.png).

    python bench/results.py                      # everything: 3 seeds, 2 runs at a time
    python bench/results.py --seeds 0 1 2 3 4    # more seeds
    python bench/results.py --only baselines     # one part: baselines, recipes, ablation, groupnorm, plots

Every run is an ordinary `trickc run` of a spec: the baselines and recipes are the files in
specs/, the GroupNorm specs are generated from one base spec (with one change per row) and
written next to their runs (bench/out/results/specs/), and the ablation is `trickc ablate
--mode add-one-in` of one spec per dataset with every trick (trick.study; its variants and
runs in bench/out/results/ablation/DATASET/). A run whose
summary.json exists and whose spec has not changed is reused, and an interrupted run is
resumed, so an interrupted script loses nothing: run it again. Runs train one thread each,
`--jobs` of them at once (the small models here gain nothing from a second thread).

The last line printed is the headline: `best mnist1d test accuracy: 0.NNN` (the best mean
over the seeds of any MNIST-1D row).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
DOCS = ROOT / "docs"
PARTS = ("baselines", "recipes", "ablation", "groupnorm", "plots")

# ---- what is run -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One training run: a spec file, its seed, and where its run folder goes."""

    key: str  # the run folder's name under OUT/runs: part/row/seed
    spec: Path
    seed: int
    overrides: tuple[str, ...] = ()


# The MNIST-1D baselines: (row, spec, the project README's figure, the notebook's).
BASELINES = (
    ("logistic regression", "mnist1d_logreg", 32.0, 31.5),
    ("MLP 40-100-100-10", "mnist1d_mlp", 68.0, 65.1),
    ("CNN, 3 conv1d x 25", "mnist1d_cnn_baseline", 94.0, 92.3),
    ("GRU, bidirectional, 6", "mnist1d_gru_baseline", 91.0, 89.1),
)

# The language sketch's MNIST-1D recipes, with the tricks each one uses.
RECIPES = (
    ("E1", "mnist1d_cnn", "zscore; shift and noise augmentation; GroupNorm and BatchNorm; dropout 0.5; AdamW weight decay; cosine schedule with warm-up; label smoothing 0.1; early stopping with the best weights restored"),
    ("E3", "mnist1d_gru", "a layer-normalized GRU (64 units) read at its last step; gradient clipping"),
    ("E5", "mnist1d_fitnet", "FitNets: a deeper, thinner student (10 conv layers of 16 channels, BatchNorm) hinted by E1, then distilled from it (T=4)"),
    ("E7", "mnist1d_curriculum", "curriculum by E1's loss; FGSM adversarial examples; BatchNorm; SGD with momentum"),
)
# E3 with torch's GRU cell instead of the layer-normalized one (the only change): the control
# for what E3's layer norm does to a one-feature input. Generated next to the other specs.
E3_PLAIN = ("E3 without `norm=layer`", "mnist1d_gru_plain", "E3 with one change, `gru 64` (torch's nn.GRU) for `gru 64 norm=layer`")


def e3_plain_spec(folder: Path) -> Path:
    text = edited((SPECS / "mnist1d_gru.trick").read_text(), [("gru 64 norm=layer", "gru 64")], E3_PLAIN[1])
    return write_spec(folder, E3_PLAIN[1], text)

# The ablation's full networks: every trick of the table at once (the norms stacked, which no
# one would train). `trickc ablate --mode add-one-in` derives from each the plain network,
# without any of them, and the plain network with each one; only those are trained.
# `guided:` and `hidden:` only name a layer (for the FitNets rows); the teachers are written
# next to them.
MNIST1D_FULL = """spec ablation_mnist1d
import "TEACHER_MNIST1D" as teacher

data {
    source mnist1d
    validation 0.1
}

augment {
    shift 4
    noise std=0.05
}

model {
    input [1, 40]
    conv 32 k=5 pad=2 -> batchnorm -> groupnorm 8 -> layernorm -> relu
    guided: conv 64 k=3 pad=1 -> batchnorm -> groupnorm 8 -> layernorm -> relu
    maxpool 2
    flatten
    dense 128 dropconnect=0.3 -> batchnorm -> groupnorm 8 -> layernorm -> relu -> dropout 0.5
    dense 10
}

train {
    epochs 30
    batch 64
    optimizer adam lr=1e-3
    loss cross_entropy smoothing=0.1
    regularize l2 1e-3
    regularize l1 1e-5
    weight_noise std=0.01
    early_stop monitor=val.loss patience=5 restore=best
    adversarial fgsm eps=0.05 weight=0.5
    seed 0
}

curriculum {
    score self
    pace linear start=0.25 epochs=10
}

distill {
    teacher teacher
    hint teacher.block2 -> guided
    regressor conv
    hint_epochs 5
    temperature 4 weight=0.5
}
"""

DIGITS_FULL = """spec ablation_digits
import "TEACHER_DIGITS" as teacher

data {
    source digits
    test 0.2
    validation 0.1
}

augment {
    crop 8 pad=1
    noise std=0.5
}

model {
    input [1, 8, 8]
    flatten
    dense 128 -> batchnorm -> groupnorm 8 -> layernorm -> relu
    hidden: dense 128 dropconnect=0.3 -> batchnorm -> groupnorm 8 -> layernorm -> relu -> dropout 0.5
    dense 10
}

train {
    epochs 40
    batch 32
    optimizer adam lr=1e-3
    loss cross_entropy smoothing=0.1
    regularize l2 1e-3
    regularize l1 1e-5
    weight_noise std=0.01
    early_stop monitor=val.loss patience=5 restore=best
    adversarial fgsm eps=1.0 weight=0.5
    seed 0
}

curriculum {
    score self
    pace linear start=0.25 epochs=10
}

distill {
    teacher teacher
    hint teacher.hint -> hidden
    regressor dense
    hint_epochs 5
    temperature 4 weight=0.5
}
"""

DIGITS_TEACHER = """spec digits_teacher
data {
    source digits
    test 0.2
    validation 0.1
    normalize zscore
}

model {
    input [1, 8, 8]
    flatten
    dense 512 -> batchnorm -> relu
    hint: dense 256 -> batchnorm -> relu -> dropout 0.3
    dense 10
}

train {
    epochs 40
    batch 32
    optimizer adam lr=1e-3
    loss cross_entropy
    early_stop monitor=val.loss patience=8 restore=best
    seed 0
}
"""

ABLATIONS = {"mnist1d": MNIST1D_FULL, "digits": DIGITS_FULL}

# Rows that are no trick of the registry (input normalization, a second head): the plain
# variant with one edit each, run and tabulated with the others.
EXTRA_ROWS = {
    "zscore": [("    validation 0.1\n", "    validation 0.1\n    normalize zscore\n")],
    "multi-task": [
        ("    validation 0.1\n", "    validation 0.1\n    target parity = label % 2\n"),
        ("    dense 10\n", "    head label { dense 10 } loss=cross_entropy weight=1.0\n    head parity { dense 2 } loss=cross_entropy weight=0.3\n"),
    ],
}

# The GroupNorm study: one CNN, its norm layers BatchNorm or GroupNorm, at several batch sizes
# for the same number of epochs (so the small batches take many more steps).
GROUPNORM_BASE = """spec norm_batch_NORM
data {
    source mnist1d
    validation 0.1
    normalize zscore
}

model {
    input [1, 40]
    conv 32 k=5 pad=2 -> NORM -> relu
    conv 64 k=3 pad=1 -> NORM -> relu
    maxpool 2
    flatten
    dense 128 -> NORM -> relu
    dense 10
}

train {
    epochs 10
    batch 64
    optimizer adam lr=1e-3
    loss cross_entropy
    seed 0
}
"""
NORMS = {"batchnorm": "batchnorm", "groupnorm": "groupnorm 8"}
BATCHES = (2, 4, 16, 64)

# The plots' spirals. E8 as written (2-16-16-2 tanh, SGD at lr 0.03, L1 1e-3) stays close to
# a straight boundary on this spiral with or without its penalty, so the comparison uses a
# wider network that can overfit (2-64-64-2, Adam at lr 0.01, 400 points): without a penalty,
# with L1 and with L2 at 1e-4. E8 itself is drawn too.
SPIRAL = SPECS / "spiral_l1.trick"
_E8_PENALTY = "    regularize l1 1e-3  # sparsity shows in the weight plot\n"  # as specs/spiral_l1.trick writes it (trickc fmt)
_WIDE = [("n=1000", "n=400"), ("dense 16 -> tanh\n    dense 16 -> tanh", "dense 64 -> tanh\n    dense 64 -> tanh"), ("optimizer sgd lr=0.03", "optimizer adam lr=0.01")]
SPIRAL_VARIANTS = {
    "E8 as written (L1 1e-3)": [],
    "wide, no penalty": [*_WIDE, (_E8_PENALTY, "")],
    "wide, L1 1e-4": [*_WIDE, (_E8_PENALTY, "    regularize l1 1e-4\n")],
    "wide, L2 1e-4": [*_WIDE, (_E8_PENALTY, "    regularize l2 1e-4\n")],
}
HISTOGRAMS = ("wide, L1 1e-4", "wide, L2 1e-4")


def edited(base: str, changes: list[tuple[str, str]], name: str) -> str:
    """`base` with each change made once (each `old` must occur), renamed `name`."""
    text = base
    for old, new in changes:
        if old not in text:
            raise ValueError(f"{name}: {old!r} is not in the base spec")
        text = text.replace(old, new, 1)
    first = text.index("\n")
    return f"spec {name}" + text[first:]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def write_spec(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.trick"
    folder.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def ablation_variants(folder: Path, out: Path | None = None) -> dict[str, list]:
    """{dataset: variants}: `trickc ablate --mode add-one-in`'s variants of each full spec
    (written to `folder`; the plain variant first, then the plain one with each trick), in
    out/DATASET/variants/ (default: folder/ablation/DATASET/variants/), and the EXTRA_ROWS after them."""
    from trick.compiler.pipeline import compile_source
    from trick.study.ablate import Variant, write_variants

    teachers = {"TEACHER_MNIST1D": str(SPECS / "mnist1d_cnn.trick"), "TEACHER_DIGITS": str(write_spec(folder, "digits_teacher", DIGITS_TEACHER))}
    found = {}
    for dataset, full in ABLATIONS.items():
        for marker, path in teachers.items():
            full = full.replace(marker, path)
        variants = write_variants(write_spec(folder, f"ablation_{dataset}", full), (out or folder / "ablation") / dataset, "add-one-in")
        plain = variants[0].path.read_text()
        for row, changes in EXTRA_ROWS.items():
            text = plain
            for old, new in changes:
                if old not in text:
                    raise ValueError(f"{dataset} {row}: {old!r} is not in the plain spec")
                text = text.replace(old, new, 1)
            path = write_spec(variants[0].path.parent, f"with_{slug(row)}", text)
            change = "plain + " + ", ".join(_change_text(old, new) for old, new in changes)
            variants.append(Variant(f"with_{slug(row)}", change, path, program=compile_source(path, name=str(path))))
        found[dataset] = variants
    return found


def groupnorm_specs(folder: Path) -> dict[str, Path]:
    return {norm: write_spec(folder, f"norm_batch_{norm}", GROUPNORM_BASE.replace("NORM", layer).replace(f"spec norm_batch_{layer}", f"spec norm_batch_{norm}")) for norm, layer in NORMS.items()}


def spiral_specs(folder: Path) -> dict[str, Path]:
    base = SPIRAL.read_text()
    return {label: write_spec(folder, f"spiral_{slug(label)}", edited(base, changes, f"spiral_{slug(label)}")) for label, changes in SPIRAL_VARIANTS.items()}


# ---- running -------------------------------------------------------------------------------------------------


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def train(job: Job, out: Path, extra: tuple[str, ...]) -> dict:
    """Run (or reuse, or resume) one job; its results as plain data."""
    from trick.compiler.pipeline import compile_source
    from trick.driver import train as execute

    program = compile_source(job.spec, overrides=[f"train.seed={job.seed}", *job.overrides, *extra])
    folder = out / "runs" / job.key
    summary_path = folder / "summary.json"
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("content_hash") != program.content_hash:
        shutil.rmtree(folder)  # the spec changed since: run it again
    elif folder.is_dir() and not summary_path.is_file() and not (folder / "last.pt").is_file():
        shutil.rmtree(folder)  # interrupted before its first epoch ended
    resume = folder.is_dir()
    reused = summary_path.is_file()
    try:
        result = execute(program, folder, resume=resume, stream=None, runs=out / "imports")
    except Exception as error:  # a changed spec under --resume, say: start it over once
        if not resume:
            raise
        print(f"{job.key}: {error}; starting it again", file=sys.stderr)
        shutil.rmtree(folder)
        result = execute(program, folder, stream=None, runs=out / "imports")
    history = [r for r in result.history if r.get("stage", "train") == "train"]
    return {"key": job.key, "summary": result.summary, "history": history, "best_val_accuracy_epoch": best_accuracy_epoch(history), "reused": reused}


def best_accuracy_epoch(history: list[dict]) -> int | None:
    """The first epoch with the highest validation accuracy (of the main head)."""
    key = next((k for k in ("val.accuracy", "val.label.accuracy") if history and k in history[0]), None)
    if key is None:
        return None
    best = max(r[key] for r in history)
    return next(r["epoch"] for r in history if r[key] == best)


def run_all(jobs: list[Job], out: Path, processes: int, extra: tuple[str, ...]) -> dict[str, dict]:
    """Every job's results by key, `processes` at a time, with a line per finished run."""
    results: dict[str, dict] = {}
    started = time.perf_counter()
    if processes <= 1:
        _worker_init()
        for i, job in enumerate(jobs, 1):
            results[job.key] = train(job, out, extra)
            _progress(i, len(jobs), results[job.key], started)
        return results
    import multiprocessing

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init) as pool:
        futures = {pool.submit(train, job, out, extra): job for job in jobs}
        for i, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results[result["key"]] = result
            _progress(i, len(jobs), result, started)
    return results


def _progress(i: int, n: int, result: dict, started: float) -> None:
    s = result["summary"]
    print(f"[{i}/{n} {time.perf_counter() - started:6.0f}s] {result['key']}: test accuracy {s['test']['accuracy']:.4f}, {s['epochs_run']} epochs, {s['wall_seconds']:.1f}s", flush=True)


def pretrain_imports(specs: list[Path], out: Path) -> None:
    """Train the specs the jobs import, once, before the jobs run in parallel (two processes
    must not both train the same teacher)."""
    from trick.compiler.pipeline import compile_source
    from trick.driver import ensure_trained

    seen = set()
    for spec in specs:
        program = compile_source(spec)
        for imp in program.plan.imports:
            if imp.content_hash not in seen:
                seen.add(imp.content_hash)
                print(f"training the import {imp.name} first", flush=True)
                ensure_trained(imp, program.imports[imp.alias], out / "imports", None, None)


# ---- the tables ------------------------------------------------------------------------------------------------


def accuracies(results: dict[str, dict], prefix: str) -> list[float]:
    return [100 * r["summary"]["test"]["accuracy"] for key, r in sorted(results.items()) if key.rsplit("/", 1)[0] == prefix]


def mean_std(values: list[float], digits: int = 1) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def baseline_table(results: dict[str, dict]) -> tuple[str, dict[str, float]]:
    rows = [
        "| model | spec | command (per seed) | paper README | notebook | trick, mean ± std | per seed | vs notebook |",
        "|---|---|---|---|---|---|---|---|",
    ]
    means = {}
    for label, spec, readme, notebook in BASELINES:
        values = accuracies(results, f"baselines/{spec}")
        if not values:
            continue
        mean = statistics.mean(values)
        means[spec] = mean
        within = "within 3" if abs(mean - notebook) <= 3 else "**off by more than 3**"
        rows.append(
            f"| {label} | `specs/{spec}.trick` | `trickc run specs/{spec}.trick --seed N` | {readme:.0f} | {notebook} | {mean_std(values)} | "
            f"{' / '.join(f'{v:.1f}' for v in values)} | {mean - notebook:+.1f} ({within}) |"
        )
    return "\n".join(rows), means


def recipe_table(results: dict[str, dict], best_baseline: tuple[str, float] | None) -> tuple[str, dict[str, float]]:
    against = f"vs {best_baseline[0]} ({best_baseline[1]:.1f})" if best_baseline else "vs the best baseline"
    rows = [f"| recipe | spec | mean ± std | per seed | {against} | beats every baseline | tricks |", "|---|---|---|---|---|---|---|"]
    means = {}
    for label, spec, tricks in (*RECIPES, E3_PLAIN):
        values = accuracies(results, f"recipes/{spec}")
        if not values:
            continue
        mean = statistics.mean(values)
        means[spec] = mean
        margin = f"{mean - best_baseline[1]:+.1f} points" if best_baseline else "—"
        beats = "yes" if best_baseline and mean > best_baseline[1] else "no"
        where = "bench/out/results/specs" if spec == E3_PLAIN[1] else "specs"
        rows.append(f"| {label} | `{where}/{spec}.trick` | {mean_std(values)} | {' / '.join(f'{v:.1f}' for v in values)} | {margin} | {beats} | {tricks} |")
    return "\n".join(rows), means


def _change_text(old: str, new: str) -> str:
    """A change as one cell: the lines it adds (or the fragment it rewrites), on one line."""
    kept = {line.strip() for line in old.splitlines()}
    lines = [line.strip() for line in new.splitlines() if line.strip() and line.strip() not in kept]
    text = ""
    for line in lines:
        text += line if not text or text.endswith("{ ") else "; " + line
        if line.endswith("{"):
            text += " "
    text = text.replace("{ ;", "{") + " }" * (text.count("{") - text.count("}"))
    return f"`{text}`".replace("|", "\\|")


def groupnorm_table(results: dict[str, dict]) -> tuple[str, dict[str, dict[int, list[float]]]]:
    found: dict[str, dict[int, list[float]]] = {norm: {} for norm in NORMS}
    rows = ["| batch | steps per epoch | BatchNorm test accuracy % | GroupNorm (8 groups) test accuracy % | GN − BN |", "|---|---|---|---|---|"]
    for batch in BATCHES:
        cells = []
        for norm in NORMS:
            values = accuracies(results, f"groupnorm/{norm}/batch{batch}")
            found[norm][batch] = values
            cells.append(mean_std(values))
        bn, gn = found["batchnorm"][batch], found["groupnorm"][batch]
        gap = f"{statistics.mean(gn) - statistics.mean(bn):+.1f}" if bn and gn else "—"
        rows.append(f"| {batch} | {math.ceil(3600 / batch)} | {cells[0]} | {cells[1]} | {gap} |")
    return "\n".join(rows), found


# ---- plots ------------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_e1_curves(results: dict[str, dict], path: Path) -> str | None:
    """E1's learning curves (seed 0, or the first seed) with the early-stopping point."""
    runs = sorted(key for key in results if key.startswith("recipes/mnist1d_cnn/"))
    if not runs:
        return None
    from trick.compiler.pipeline import compile_source
    from trick.runtime.report import plot_curves

    result = results[runs[0]]
    plan = compile_source(SPECS / "mnist1d_cnn.trick").plan
    plot_curves(path, plan, result["history"], result["summary"])
    return runs[0]


def plot_groupnorm(found: dict[str, dict[int, list[float]]], path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    for norm, colour in zip(NORMS, ("C0", "C1")):
        batches = [b for b in BATCHES if found[norm].get(b)]
        means = [statistics.mean(found[norm][b]) for b in batches]
        stds = [statistics.stdev(found[norm][b]) if len(found[norm][b]) > 1 else 0.0 for b in batches]
        axes.errorbar(batches, means, yerr=stds, marker="o", capsize=4, color=colour, label={"batchnorm": "BatchNorm", "groupnorm": "GroupNorm, 8 groups"}[norm])
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(BATCHES), [str(b) for b in BATCHES])
    axes.set_xlabel("batch size (samples per step)")
    axes.set_ylabel("MNIST-1D test accuracy % (mean ± std)")
    axes.set_title("BatchNorm and GroupNorm against the batch size (10 epochs)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _spiral_model(result: dict, spec: Path):
    """The trained model of a spiral run (the weights its test used) and its data."""
    from trick.compiler.pipeline import compile_source
    from trick.runtime import checkpoint as ckpt
    from trick.runtime.data import load_splits

    program = compile_source(spec, overrides=[f"train.seed={result['summary']['seed']}"])
    model = program.model()
    folder = Path(result["summary"]["run_dir"])
    model.load_state_dict(ckpt.load(folder / ("best.pt" if result["summary"]["weights"] == "best" else "last.pt"))["model"])
    model.eval()
    splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
    return program, model, splits


def plot_spirals(results: dict[str, dict], specs: dict[str, Path], boundary_path: Path, weights_path: Path) -> dict[str, dict]:
    """The decision boundaries without and with regularization, and the histogram of the
    weights under L1 next to L2; the share of near-zero weights of each."""
    import numpy as np
    import torch

    from trick.runtime.report import layer_weights

    plt = _pyplot()
    shown = [label for label in SPIRAL_VARIANTS if f"plots/{slug(label)}/seed0" in results]
    figure, panels = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.2), squeeze=False)
    stats: dict[str, dict] = {}
    weights = {}
    for axes, label in zip(panels[0], shown):
        result = results[f"plots/{slug(label)}/seed0"]
        program, model, splits = _spiral_model(result, specs[label])
        x, y = splits.x_train, splits.y_train  # the spiral is not normalized: these are the plane's coordinates
        lo, hi = x.min(0).values - 0.3, x.max(0).values + 0.3
        gx, gy = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), 300), torch.linspace(float(lo[1]), float(hi[1]), 300), indexing="xy")
        with torch.no_grad():
            logits = model(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))
        probability = logits.softmax(-1)[:, 1].reshape(gx.shape)
        axes.contourf(gx.numpy(), gy.numpy(), probability.numpy(), levels=20, cmap="RdBu_r", alpha=0.7)
        axes.contour(gx.numpy(), gy.numpy(), probability.numpy(), levels=[0.5], colors="k", linewidths=1.5)
        axes.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=y.numpy(), cmap="RdBu_r", s=6, edgecolors="k", linewidths=0.2)
        accuracy = 100 * result["summary"]["test"]["accuracy"]
        axes.set_title(f"{label}\ntest accuracy {accuracy:.1f}%", fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
        flat = torch.cat([w for _, w in layer_weights(program.graph, model)]).numpy()
        weights[label] = flat
        stats[label] = {"accuracy": accuracy, "near_zero": float(np.mean(np.abs(flat) < 1e-2)), "count": int(flat.size), "mean_abs": float(np.mean(np.abs(flat)))}
    figure.tight_layout()
    figure.savefig(boundary_path, dpi=100)
    plt.close(figure)

    pair = [label for label in HISTOGRAMS if label in weights]
    if pair:
        figure, panels = plt.subplots(1, len(pair), figsize=(5 * len(pair), 3.8), sharey=True, squeeze=False)
        edges = np.linspace(-max(np.abs(weights[p]).max() for p in pair), max(np.abs(weights[p]).max() for p in pair), 61)
        for axes, label in zip(panels[0], pair):
            axes.hist(weights[label], bins=edges, color="C3" if "L1" in label else "C0")
            axes.set_yscale("log")
            axes.set_title(f"{label}: {100 * stats[label]['near_zero']:.0f}% of weights |w| < 0.01", fontsize=10)
            axes.set_xlabel("weight")
        panels[0][0].set_ylabel("weights (log scale)")
        figure.suptitle("The wide spiral network's weights after 200 epochs (all dense layers)")
        figure.tight_layout()
        figure.savefig(weights_path, dpi=100)
        plt.close(figure)
    return stats


# ---- the document ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2: this machine's cores)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "results", help="run folders and generated specs")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where results.md and results/*.png go")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="an override for every run (e.g. train.epochs=1 for a smoke test)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; the parts are {', '.join(PARTS)}")
    started = time.perf_counter()
    out: Path = args.out.resolve()
    generated = out / "specs"
    jobs: list[Job] = []
    if "baselines" in parts:
        jobs += [Job(f"baselines/{spec}/seed{s}", SPECS / f"{spec}.trick", s) for _, spec, _, _ in BASELINES for s in args.seeds]
    if "recipes" in parts:
        jobs += [Job(f"recipes/{spec}/seed{s}", SPECS / f"{spec}.trick", s) for _, spec, _ in RECIPES for s in args.seeds]
        jobs += [Job(f"recipes/{E3_PLAIN[1]}/seed{s}", e3_plain_spec(generated), s) for s in args.seeds]
    variants = ablation_variants(generated, out / "ablation") if "ablation" in parts else {}
    if "groupnorm" in parts:
        for norm, spec in groupnorm_specs(generated).items():
            jobs += [Job(f"groupnorm/{norm}/batch{b}/seed{s}", spec, s, (f"train.batch={b}",)) for b in BATCHES for s in args.seeds]
    spirals = spiral_specs(generated) if "plots" in parts else {}
    jobs += [Job(f"plots/{slug(label)}/seed0", spec, 0) for label, spec in spirals.items()]
    # The longest runs first, so that the last ones do not leave a core idle.
    order = {"groupnorm": 0, "recipes": 1, "baselines": 2, "ablation": 3, "plots": 4}
    jobs.sort(key=lambda j: (order[j.key.split("/")[0]], "batch2/" not in j.key, "gru" not in j.key, j.key))
    pretrain_imports(sorted({j.spec for j in jobs}), out)
    results = run_all(jobs, out, args.jobs, tuple(args.extra))
    ablations = {}  # the ablation, by `trickc ablate`'s machinery (trick.study): its runs in OUT/ablation/DATASET
    for dataset, found in variants.items():
        from trick.study.ablate import run_variants

        print(f"ablation of {dataset}: {len(found)} variants x {len(args.seeds)} seeds", flush=True)
        ablations[dataset] = run_variants(f"ablation_{dataset}", "add-one-in", found, out / "ablation" / dataset, args.seeds, jobs=args.jobs, overrides=tuple(args.extra), runs=out / "imports", stream=sys.stdout)
    elapsed = time.perf_counter() - started

    figures = args.docs / "results"
    figures.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(figures, args.docs)
    doc: dict[str, str] = {}
    import torch

    seeds = " ".join(map(str, args.seeds))
    ablation_runs = [json.loads(p.read_text()) for dataset in ablations for p in (out / "ablation" / dataset / "runs").glob("*/seed*/summary.json")]
    training = sum(r["summary"]["wall_seconds"] for r in results.values()) + sum(s["wall_seconds"] for s in ablation_runs)
    doc["head"] = (
        "# Results\n\n"
        "What the project's specs reach, produced by one script:\n\n"
        "```\npython bench/results.py"
        + (f" --seeds {seeds}" if args.seeds != [0, 1, 2] else "")
        + (f" --only {','.join(parts)}" if parts != list(PARTS) else "")
        + "".join(f" --set {e}" for e in args.extra)
        + "\n```\n\n"
        f"Seeds {', '.join(map(str, args.seeds))} for every row (`--seeds`); test accuracy in percent, mean ± sample standard deviation over the seeds. "
        f"{len(jobs) + len(ablation_runs)} runs, {training / 60:.1f} minutes of training in all (the runs' own wall times), "
        f"{args.jobs} at a time with one thread each (about {training / 60 / args.jobs:.0f} minutes "
        f"of wall time from scratch); this invocation reused {sum(r.get('reused', False) for r in results.values())} finished runs (and the ablation's, as it says) and took "
        f"{elapsed / 60:.1f} minutes, on this machine "
        f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, CPU). "
        "A run whose summary.json is already in bench/out/results is reused while its spec is unchanged, so a second run of the script "
        "only redraws the tables and plots; delete that folder to train everything again.\n"
    )
    best_mnist1d: list[tuple[float, str]] = []
    best_baseline = None
    if "baselines" in parts:
        table, means = baseline_table(results)
        best_mnist1d += [(m, f"baseline {s}") for s, m in means.items()]
        if means:
            spec = max(means, key=means.get)
            best_baseline = (next(label for label, s, _, _ in BASELINES if s == spec), means[spec])
        doc["baselines"] = (
            "## 1. The MNIST-1D baselines\n\n"
            "MNIST-1D (Greydanus, *Scaling down deep learning*, 2020) with the `mnist1d` package's default arguments, which give "
            "the published dataset: 4000 training and 1000 test samples of 40 values. The paper's README reports 32 / 68 / 94 / 91% "
            "(human: 96%); the authors' notebook, whose training these specs copy (Adam, lr 1e-2, batch 100, 6000 steps = 150 epochs, "
            "no validation split, no normalization, the last weights tested), printed 31.5 / 65.1 / 92.3 / 89.1%. The GRU's spec is "
            "`mnist1d_gru_baseline.trick` because `mnist1d_gru.trick` is the language sketch's example E3.\n\n" + table + "\n"
        )
    if "recipes" in parts:
        table, means = recipe_table(results, best_baseline)
        best_mnist1d += [(m, f"recipe {s}") for s, m in means.items()]
        doc["recipes"] = (
            "### The recipes with tricks\n\n"
            "The language sketch's MNIST-1D examples, as written in specs/, against the best baseline row. E1 and E5 are the recipes "
            "with tricks meant to win; E7 shows curriculum learning and FGSM with a one-layer CNN and SGD. E3 reads the last step of a "
            "layer-normalized GRU. Its cell normalizes the summed inputs of each gate group (Ba et al. 2016, LN(W_x·x_t + W_h·h_{t-1}), "
            "the reset and update gates together, the candidate on its own); an earlier cell normalized the input projection W_x·x_t on "
            "its own, which with one input feature per step is x_t times a fixed vector, so LN(W_x·x_t) = sign(x_t)·LN(W_x): the GRU saw "
            "only the signs of the series and reached 21.5 %. The last row is the control: E3 with torch's GRU cell and nothing else "
            "changed. (The ablation below measures each trick on its own.)\n\n" + table + "\n"
        )
    if "ablation" in parts:
        from trick.study.ablate import table as ablation_table

        sections = []
        for dataset, result in ablations.items():
            if dataset == "mnist1d":
                best_mnist1d += [(100 * statistics.mean(r.values), f"ablation row {r.variant.name}") for r in result.rows if r.values]
            where = (
                "MNIST-1D, 3600 training / 400 validation / 1000 test samples"
                if dataset == "mnist1d"
                else "scikit-learn's digits, a stratified 80/20 test split and 10% of the rest for validation (1293 / 144 / 360); "
                "references: scikit-learn's example reaches 97% with an SVC on a 50/50 split, a scaled MLPClassifier 97.5–98% on 80/20"
            )
            picture = f"ablation_{dataset}.png"
            if (result.out / "ablation.png").is_file():
                shutil.copyfile(result.out / "ablation.png", figures / picture)
            plain = result.rows[0].variant.path.read_text()
            sections.append(
                f"### {'MNIST-1D' if dataset == 'mnist1d' else 'Digits'}\n\n{where}. The rows are `trickc ablate --mode add-one-in`'s variants of a spec "
                f"with every trick at once (bench/out/results/specs/ablation_{dataset}.trick): the plain spec below, which has none, and the plain spec "
                f"with each trick (bench/out/results/ablation/{dataset}/variants/), and two rows that are no trick of the registry (input normalization, "
                "a second head). The interval is Welch's 95% t interval of the difference from the plain spec over the seeds; 'beyond seed noise' "
                "when it excludes 0.\n\n"
                f"```trick\n{plain}```\n\n{ablation_table(result)}\n![{dataset} ablation]({rel}/{picture})\n"
            )
        doc["ablation"] = (
            "## 2. What each trick buys\n\nOne network with and without each trick, every other setting the same. The seed-to-seed "
            "standard deviation is about one point, so a difference under about 1.5 points between two rows is not a finding unless its "
            "interval says otherwise. The settings (30 or 40 epochs, one strength per trick) are fixed in advance for every row, not tuned "
            "per trick: a trick that does not help here may help with another strength or a longer schedule.\n\n" + "\n".join(sections)
        )
    if "groupnorm" in parts:
        table, found = groupnorm_table(results)
        plot_groupnorm(found, figures / "groupnorm_batch.png")
        best_mnist1d += [(statistics.mean(v), f"groupnorm study {n} batch {b}") for n, by in found.items() for b, v in by.items() if v]
        doc["groupnorm"] = (
            "## 3. GroupNorm against BatchNorm at small batches\n\n"
            "Wu & He (2018), ResNet-50 on ImageNet: BN 23.6% vs GN 24.1% top-1 error at 32 images per GPU, but BN 34.7% vs GN 24.1% at 2. "
            "Here one CNN (below, NORM = `batchnorm` or `groupnorm 8`, after both convolutions and the hidden dense layer) trains "
            "for 10 epochs at each batch size with Adam at lr 1e-3, so a batch of 2 takes 32 times the steps of a batch of 64.\n\n"
            f"```trick\n{GROUPNORM_BASE}```\n\n{table}\n\n![BN and GN against the batch size]({rel}/groupnorm_batch.png)\n\n"
            "Why a batch of 2 is the extreme case: batch normalization of a feature over two samples gives exactly −1 and +1 "
            "(x − μ = ±d/2 and σ = d/2), so after the dense layer's BatchNorm each feature only says which of the two samples is "
            "larger, and the running statistics that evaluation uses are averages over such pairs. GroupNorm normalizes each sample "
            "on its own, so it does not depend on the batch at all.\n"
        )
    if "plots" in parts:
        lines = ["## 4. Plots\n"]
        e1 = plot_e1_curves(results, figures / "e1_curves.png")
        if e1:
            lines.append(f"E1's learning curves ({e1}); the dotted line is the epoch whose weights early stopping restored, the shaded span the patience it waited:\n\n![E1 learning curves]({rel}/e1_curves.png)\n")
        stats = plot_spirals(results, spirals, figures / "spiral_boundaries.png", figures / "l1_vs_l2_weights.png")
        if stats:
            described = "; ".join(f"{label}: test accuracy {s['accuracy']:.1f}%, {100 * s['near_zero']:.0f}% of the {s['count']} weights below 0.01 in size, mean |w| {s['mean_abs']:.3f}" for label, s in stats.items())
            lines.append(
                "E8's spiral (`specs/spiral_l1.trick`: 2-16-16-2 tanh, SGD at lr 0.03, L1 1e-3) as written, and the same data and "
                "200 epochs with a network wide enough to overfit (2-64-64-2, Adam at lr 0.01, 400 points) without a penalty, with "
                f"L1 1e-4 and with L2 1e-4 (seed 0; specs in bench/out/results/specs/spiral_*.trick): {described}.\n\n"
                f"![decision boundaries]({rel}/spiral_boundaries.png)\n\n![L1 and L2 weights]({rel}/l1_vs_l2_weights.png)\n"
            )
        doc["plots"] = "\n".join(lines)
    headline = max(best_mnist1d) if best_mnist1d else None
    if headline:
        doc["headline"] = f"## Headline\n\nThe best MNIST-1D row: {headline[1]}, {headline[0]:.1f}% mean test accuracy over seeds {', '.join(map(str, args.seeds))}.\n"
    (args.docs / "results.md").write_text("\n".join(part for part in doc.values() if part) + "\n")
    print(f"wrote {args.docs / 'results.md'} ({elapsed / 60:.1f} minutes)")
    if headline:
        print(f"best mnist1d test accuracy: {headline[0] / 100:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
