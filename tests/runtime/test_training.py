"""The training loop, run folders, checkpoints and resuming, on small specs."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import trick
from trick.compiler import ir
from trick.runtime import checkpoint as ckpt
from trick.runtime.objectives import Penalty, cross_entropy, smoothed_targets
from trick.runtime.optim import lr_factor

TINY = Path(__file__).parent / "fixtures" / "tiny.trick"


def compile_tiny(*overrides):
    from trick.compiler.pipeline import compile_source

    return compile_source(TINY, overrides=list(overrides))


# ---- objectives ---------------------------------------------------------------------------------------


def test_label_smoothing_is_the_lecture_s():
    targets = smoothed_targets(torch.tensor([2, 0]), 5, 0.1)
    expected = torch.full((2, 5), 0.1 / 4)
    expected[0, 2] = expected[1, 0] = 0.9
    torch.testing.assert_close(targets, expected)
    logits = torch.randn(2, 5)
    torch.testing.assert_close(cross_entropy(logits, torch.tensor([2, 0]), 0.1), -(expected * logits.log_softmax(1)).sum(1).mean())


def test_penalties_follow_their_formulas():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    plan = lambda kind, include="weights": ir.Step(kind, {"strength": 0.5, "include": include}, None)  # noqa: E731
    layers = (ir.Layer("dense", "0", {}, (3,), (2,), 8, None, role="weights"), ir.Layer("batchnorm", "1", {}, (2,), (2,), 4, None, role="norm"))
    graph = ir.ModelGraph("t", (3,), layers, (), (2,), None)  # the Sequential's submodules 0 and 1
    w = model[0].weight
    torch.testing.assert_close(Penalty(model, graph, (plan("l2"),))(), 0.5 * 0.5 * (w**2).sum())
    torch.testing.assert_close(Penalty(model, graph, (plan("l1"),))(), 0.5 * w.abs().sum())
    everything = sum(p.abs().sum() for p in model.parameters())
    torch.testing.assert_close(Penalty(model, graph, (plan("l1", "all"),))(), 0.5 * everything)


@pytest.mark.parametrize(
    "kind, args, progress, factor",
    [
        ("constant", {"warmup": 0}, 3.0, 1.0),
        ("constant", {"warmup": 2}, 0.5, 0.25),
        ("step", {"warmup": 0, "every": 2, "gamma": 0.1}, 4.5, 0.01),
        ("cosine", {"warmup": 0, "min_lr": 0.0}, 5.0, 0.5),
        ("cosine", {"warmup": 2, "min_lr": 0.0}, 2.0, 1.0),
        ("cosine", {"warmup": 0, "min_lr": 0.01}, 10.0, 0.1),
    ],
)
def test_learning_rate_schedules(kind, args, progress, factor):
    assert lr_factor(ir.Step(kind, args, None), 0.1, 10, progress) == pytest.approx(factor)


# ---- runs -----------------------------------------------------------------------------------------------


def test_a_run_leaves_its_folder(tmp_path):
    result = trick.run(compile_tiny(), tmp_path / "run")
    folder = tmp_path / "run"
    assert result.run_dir == folder
    assert {p.name for p in folder.iterdir()} == {"spec.trick", "plan.json", "metrics.jsonl", "last.pt", "best.pt", "summary.json", "curves.png", "weights.png", "data.json"}
    assert (folder / "spec.trick").read_text() == TINY.read_text()
    assert ir.from_json(ir.TrainingPlan, json.loads((folder / "plan.json").read_text())) == compile_tiny().plan
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    assert {"train.loss", "train.accuracy", "val.loss", "val.accuracy", "lr", "seconds"} <= set(lines[0])
    summary = json.loads((folder / "summary.json").read_text())
    assert {"test", "best_epoch", "epochs_run", "wall_seconds"} <= set(summary)
    assert set(summary["test"]) == {"loss", "accuracy"}
    assert summary["epochs_run"] == 4 and summary == result.summary
    assert summary["test"]["accuracy"] > 0.8
    assert result.history == lines


def test_a_seed_fixes_everything(tmp_path):
    a = trick.run(compile_tiny(), tmp_path / "a")
    b = trick.run(compile_tiny(), tmp_path / "b")
    c = trick.run(compile_tiny("train.seed=2"), tmp_path / "c")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert strip(a.history) != strip(c.history)


def test_default_run_folders_are_numbered(in_tmp):
    first = trick.run(compile_tiny("train.epochs=2"))
    second = trick.run(compile_tiny("train.epochs=2"))
    assert (first.run_dir, second.run_dir) == (Path("runs/tiny/1"), Path("runs/tiny/2"))


def test_an_existing_run_is_not_overwritten(tmp_path):
    trick.run(compile_tiny("train.epochs=2"), tmp_path / "r")
    with pytest.raises(trick.TrickError, match="already holds a run; use --resume"):
        trick.run(compile_tiny("train.epochs=2"), tmp_path / "r")


def test_early_stopping_restores_the_best_weights(tmp_path):
    program = compile_tiny("train.epochs=30", "train.early_stop.patience=2", "train.optimizer.lr=0.5")
    result = trick.run(program, tmp_path / "r")
    s = result.summary
    losses = [r["val.loss"] for r in result.history]
    best = min(range(len(losses)), key=losses.__getitem__) + 1
    assert s["stopped_early"] and s["epochs_run"] < 30
    assert s["best_epoch"] == best and s["epochs_run"] == best + 2
    assert s["weights"] == "best"
    best_state = ckpt.load(tmp_path / "r" / "best.pt")["model"]
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, best_state[key])


def test_a_non_finite_loss_stops_with_an_error(tmp_path):
    np.savez(tmp_path / "huge.npz", x=np.full((40, 4), 3e38, np.float32), y=np.arange(40) % 2)
    spec = tmp_path / "nan.trick"
    spec.write_text('spec nan\ndata { source file "huge.npz" }\nmodel {\n    input [4]\n    dense 2\n}\ntrain {\n    epochs 2\n    batch 8\n    optimizer sgd lr=1e6\n}\n')
    with pytest.raises(trick.TrickError) as info:
        trick.run(spec, tmp_path / "r")
    (d,) = info.value.diagnostics
    assert d.message.startswith("the loss became ") and "at epoch 1, step " in d.message
    assert d.message.endswith("no epoch had finished, so there is no checkpoint. A smaller learning rate or clip_grad may help")
    assert d.path == str(spec)


# ---- checkpoints and resuming ------------------------------------------------------------------------------


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    trick.run(compile_tiny("train.epochs=2"), tmp_path / "r")
    last = tmp_path / "r" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    (tmp_path / "r" / "summary.json").unlink()
    with pytest.raises(trick.TrickError) as info:
        trick.run(compile_tiny("train.epochs=2"), tmp_path / "r", resume=True)
    assert info.value.diagnostic.message.startswith("the checkpoint is corrupt or truncated and cannot be loaded (")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoints_never_run_pickled_code(in_tmp):
    path = in_tmp / "evil.pt"
    torch.save({"format": 1, "x": _Exploit()}, path)
    with pytest.raises(trick.TrickError):
        ckpt.load(path)
    assert not (in_tmp / "pwned").exists()
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(trick.TrickError):
        ckpt.load(path)


def test_resume_refuses_a_changed_spec(tmp_path):
    trick.run(compile_tiny("train.epochs=2"), tmp_path / "r")
    (tmp_path / "r" / "summary.json").unlink()
    with pytest.raises(trick.TrickError, match="the spec has changed since"):
        trick.run(compile_tiny("train.epochs=3"), tmp_path / "r", resume=True)


def _final(folder: Path):
    metrics = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return metrics, ckpt.load(folder / "last.pt")["model"], json.loads((folder / "summary.json").read_text())["test"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_exactly_the_same_result(tmp_path):
    args = [sys.executable, "-m", "trick", "run", str(TINY), "--set", "train.epochs=40", "--quiet"]
    subprocess.run(args + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    process = subprocess.Popen(args + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it in the middle: after some epochs, before the end
        lines = (killed / "metrics.jsonl").read_text().count("\n") if (killed / "metrics.jsonl").exists() else 0
        if lines >= 5:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "summary.json").exists(), "the run finished before it could be killed"
    done = (killed / "metrics.jsonl").read_text().count("\n")
    assert 5 <= done < 40

    resumed = subprocess.run(args + ["--out", str(killed), "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    metrics_a, weights_a, test_a = _final(tmp_path / "whole")
    metrics_b, weights_b, test_b = _final(killed)
    assert metrics_a == metrics_b
    assert test_a == test_b
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key


# ---- the command line ---------------------------------------------------------------------------------------


def test_trickc_run_prints_epochs_and_a_final_table(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "trick", "run", str(TINY), "--set", "train.epochs=2", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert "train.loss" in epochs[0] and "val.accuracy" in epochs[0]
    assert result.stdout.split()[:2] == ["run", str(tmp_path / "r")]
    assert any(line.startswith("test accuracy ") for line in result.stdout.splitlines())


def test_trickc_run_reports_a_bad_override_at_the_override(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trick", "run", str(TINY), "--set", "train.epochs=0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("--set #1:1:16: error: epochs: 0 is out of range; expected an integer >= 1")


def test_a_terminal_gets_a_progress_bar():
    import io

    from trick.runtime.run import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress = Progress(screen, epochs=3)
    progress.start_epoch(1, 10)
    for step in range(1, 11):
        progress.step(step, 10, 0.5)
    progress.end_epoch({"epoch": 1, "train.loss": 0.5, "seconds": 0.1})
    text = screen.getvalue()
    assert "epoch 1/3:" in text and "/10 [" in text  # tqdm's bar (it redraws at most every 0.1 s), then the line
    assert text.rstrip().splitlines()[-1].startswith("epoch 1/3  train.loss 0.5000")


def test_run_folder_problems_are_usage_errors(tmp_path):
    args = [sys.executable, "-m", "trick", "run", str(TINY), "--set", "train.epochs=2", "--quiet"]
    nothing = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (nothing.returncode, nothing.stderr) == (2, f"trickc: error: there is no run of 'tiny' to resume in {Path('runs/tiny')}\n")
    assert subprocess.run(args + ["--out", "r"], capture_output=True, timeout=300, cwd=tmp_path).returncode == 0
    again = subprocess.run(args + ["--out", "r"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (again.returncode, again.stderr) == (2, "trickc: error: r already holds a run; use --resume to continue it, or choose another --out\n")


def test_an_interrupt_while_a_checkpoint_is_written_waits_for_the_file(tmp_path, monkeypatch):
    """A Ctrl-C inside torch's writer would end as torch's RuntimeError and a broken file;
    held until the file is complete, it is an interrupt, and the checkpoint loads."""
    import _thread

    from trick.runtime import checkpoint as ckpt

    real_save = ckpt.torch.save

    def save_interrupted(data, handle):
        _thread.interrupt_main()  # as a study's stop, or a Ctrl-C, arriving mid-write
        real_save(data, handle)

    monkeypatch.setattr(ckpt.torch, "save", save_interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(tmp_path / "last.pt", {"format": ckpt.FORMAT, "x": torch.arange(3)})
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert torch.equal(ckpt.load(tmp_path / "last.pt")["x"], torch.arange(3))
