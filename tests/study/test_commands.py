"""`trickc ablate`, `trickc sweep` and `trickc compare` end to end, in subprocesses, on tiny
specs (120 points of a spiral, 2 epochs); and a run that a study stops keeps its checkpoint."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trick.compiler.pipeline import compile_source

FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.slow


def trickc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trick", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablate")
    shutil.copy(FIXTURES / "tiny_ablate.trick", folder / "tiny.trick")
    done = trickc("ablate", "tiny.trick", "--seeds", "2", "--jobs", "2", "--out", "out", cwd=folder)
    return folder, done


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_ablate_writes_the_variants_their_runs_and_the_table(ablation):
    folder, done = ablation
    assert done.returncode == 0, done.stderr
    out = folder / "out"
    assert sorted(p.name for p in (out / "variants").iterdir()) == ["full.trick", "without_dropout.trick"]
    without = (out / "variants" / "without_dropout.trick").read_text()
    assert "hidden: dense 8 -> relu  # the one trick\n" in without and "dropout" not in without
    found = rows(out / "ablation.csv")
    assert [(r["variant"], r["status"], r["change"]) for r in found] == [
        ("full", "reference", "— (the spec as written)"),
        ("without_dropout", "ran", "without `dropout 0.2` (line 11)"),
    ]
    accuracy = {v: [json.loads((out / "runs" / v / f"seed{s}" / "summary.json").read_text())["test"]["accuracy"] for s in (0, 1)] for v in ("full", "without_dropout")}
    for row in found:
        assert [float(x) for x in row["per_seed"].split()] == pytest.approx(accuracy[row["variant"]], abs=1e-6)
        assert float(row["mean"]) == pytest.approx(sum(accuracy[row["variant"]]) / 2, abs=1e-6)
    difference = float(found[1]["difference"])
    assert difference == pytest.approx(sum(accuracy["without_dropout"]) / 2 - sum(accuracy["full"]) / 2, abs=1e-6)
    if found[1]["interval_low"]:
        assert float(found[1]["interval_low"]) <= difference <= float(found[1]["interval_high"])
        assert found[1]["beyond_seed_noise"] == str(not float(found[1]["interval_low"]) <= 0 <= float(found[1]["interval_high"])).lower()
    assert "| **full** | — (the spec as written) |" in (out / "ablation.md").read_text()
    assert (out / "ablation.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0


def test_a_second_ablate_reuses_every_run(ablation):
    folder, _ = ablation
    summaries = sorted((folder / "out" / "runs").glob("*/seed*/summary.json"))
    before = [p.stat().st_mtime_ns for p in summaries]
    again = trickc("ablate", "tiny.trick", "--seeds", "2", "--jobs", "2", "--out", "out", cwd=folder)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("(reused)") == 4 and [p.stat().st_mtime_ns for p in summaries] == before


def test_compare_shows_the_metrics_and_the_clause_that_differs(ablation):
    folder, _ = ablation
    done = trickc("compare", "out/runs/full/seed0", "out/runs/without_dropout/seed1", "-o", "cmp", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "~ model line 3: `hidden: dense 8 -> relu -> dropout 0.2` → `hidden: dense 8 -> relu`" in done.stdout
    assert "    seed: 0 → 1" in done.stdout  # a --set change, from the plans
    assert "| out/runs/without_dropout/seed1 | tiny_ablate |" in done.stdout
    assert (folder / "cmp" / "compare.md").read_text() == done.stdout and (folder / "cmp" / "curves.png").is_file()
    missing = trickc("compare", "out/runs/full", cwd=folder)
    assert missing.returncode == 2 and missing.stderr == "trickc: error: out/runs/full is not a finished run: it has no readable summary.json\n"


def test_sweep_runs_its_trials_writes_the_best_spec_and_continues(tmp_path):
    shutil.copy(FIXTURES / "tiny_sweep.trick", tmp_path / "tiny.trick")
    done = trickc("sweep", "tiny.trick", "--jobs", "2", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    trials = rows(out / "trials.csv")
    assert [r["state"] for r in trials] == ["complete"] * 3 and (out / "study.db").is_file() and (out / "sweep.png").is_file()
    number = done.stdout.splitlines()[1].split(",")[0].removeprefix("best: trial ")
    winner = next(r for r in trials if r["trial"] == number)
    assert float(winner["val.accuracy"]) == max(float(r["val.accuracy"]) for r in trials)
    program = compile_source(out / "best.trick", name=str(out / "best.trick"))  # checks clean
    summary = json.loads((out / winner["run_folder"] / "summary.json").read_text())
    assert program.content_hash == summary["content_hash"]  # the best trial's spec, so it reproduces that run
    assert f"lr={winner['train.optimizer.lr']}" in (out / "best.trick").read_text()
    more = trickc("sweep", "tiny.trick", "--jobs", "1", "--out", "out", "--trials", "4", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    again = rows(out / "trials.csv")
    assert len(again) == 4 and again[:3] == trials and again[3]["state"] in ("complete", "pruned")


def test_sweep_errors_exit_1_or_2(tmp_path):
    text = (FIXTURES / "tiny_sweep.trick").read_text().replace("log 1e-3..1e-1", "log 0..1e-1").replace("    validation 0.25\n", "    validation 0.25\n    normalize zscore\n")
    (tmp_path / "bad.trick").write_text(text.replace("log 0..1e-1", "log 1e-1..1e-3"))
    done = trickc("sweep", "bad.trick", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "bad.trick:27:33: error: vary train.optimizer.lr: the range 1e-1..1e-3 is empty; its low end must be below its high end"
    (tmp_path / "plain.trick").write_text((FIXTURES / "tiny_ablate.trick").read_text())
    none = trickc("sweep", "plain.trick", cwd=tmp_path)
    assert none.returncode == 2 and none.stderr.startswith("trickc: error: plain.trick has no sweep block; add one, e.g. sweep {")


def test_a_stopped_run_keeps_its_checkpoint_and_resumes(tmp_path):
    """What pruning and Ctrl-C rely on: a run the study stops (here once its first epoch is
    written, of 100 that take a second or two) ends 'pruned' with last.pt kept; run again, it
    resumes and finishes."""
    from trick.study.jobs import Job, Pool

    spec = tmp_path / "tiny.trick"
    spec.write_text((FIXTURES / "tiny_ablate.trick").read_text().replace("epochs 2", "epochs 100"))
    job = Job("one", tmp_path / "run", spec, name=str(spec), on_epoch=lambda record: record["epoch"] >= 1)
    pool = Pool(1)
    pool.start(job)
    ended = []
    while not ended:
        ended = pool.wait()
    stopped = ended[0]
    assert stopped.status == "pruned", stopped.error
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "run" / "summary.json").exists()
    first = [r["epoch"] for r in stopped.history]
    assert first == list(range(1, len(first) + 1)) and 1 <= len(first) < 100
    job.on_epoch = None
    pool.start(job)  # the same worker: its imports are done
    ended = []
    while not ended:
        ended = pool.wait()
    pool.close()
    finished = ended[0]
    assert finished.status == "finished" and [r["epoch"] for r in finished.history] == list(range(1, 101))
    assert finished.history[: len(first)] == stopped.history  # the epochs before the stop were kept, not trained again
