"""Issue 16, the runtime and command-line half: no input makes `trickc run` or `trickc graph`
print a traceback, hang, say something false, or lose or overwrite anything.

One table of inputs -> the exact message and exit code, each run as `python -m trick ...` in
a subprocess in its own folder; then what each leaves behind (nothing, for an error), and a
few in-process checks of what a subprocess cannot set up (a read-only place, as root)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

import trick
from trick.compiler.pipeline import compile_source

SPEC = """spec t
data {{ source file "{data}" }}
model {{
    input [{width}]
    {layers}
}}
train {{
    epochs 1
    batch {batch}
}}
"""


def spec(folder: Path, name: str = "t.trick", data: str = "d.npz", width: int = 4, layers: str = "dense 2", batch: int = 8, spec_name: str = "t") -> Path:
    path = folder / name
    path.write_text(SPEC.format(data=data, width=width, layers=layers, batch=batch).replace("spec t\n", f"spec {spec_name}\n"))
    return path


def npz(folder: Path, name: str = "d.npz", n: int = 40, width: int = 4, labels=(0, 1)) -> Path:
    rng = np.random.default_rng(0)
    y = np.array(labels)[np.arange(n) % len(labels)]
    x = rng.normal(size=(n, width)).astype(np.float32) + y[:, None]
    np.savez(folder / name, x=x, y=y)
    return folder / name


def trickc(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "trick", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=environment)


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every file under `folder` with its bytes (folders as None): what must not change."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def finished_run(folder: Path, out: str = "r") -> None:
    """A finished run of t.trick in folder/out (trained in this process: a subprocess is slow)."""
    trick.run(compile_source(spec(folder)), folder / out) if npz(folder) else None


def interrupted_run(folder: Path) -> None:
    """A run whose summary is gone: it looks interrupted after its one epoch."""
    finished_run(folder)
    (folder / "r" / "summary.json").unlink()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@dataclass
class Case:
    id: str
    setup: Callable[[Path], None]
    args: list[str]
    code: int
    message: str  # the first line of standard error, exactly
    after: Callable[[Path], None] = field(default=lambda folder: None)  # more checks of what is left
    env: dict = field(default_factory=dict)
    writes: bool = False  # whether it may write; else the folder must be left exactly as it was


def _file(folder: Path) -> None:
    spec(folder)
    npz(folder)
    (folder / "afile").write_text("keep me\n")


def _not_a_run(folder: Path) -> None:
    spec(folder)
    npz(folder)
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.txt").write_text("keep me\n")


def _other_spec(folder: Path) -> None:
    finished_run(folder)
    (folder / "r" / "summary.json").unlink()
    spec(folder, "other.trick", spec_name="other")


def _last_pt(content: bytes | None) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        interrupted_run(folder)
        last = folder / "r" / "last.pt"
        last.unlink()
        if content is None:
            last.mkdir()
        elif content == b"pickle":
            torch.save({"format": 1, "x": _Exploit()}, last)
        else:
            last.write_bytes(content)

    return setup


def _bad_input(folder: Path) -> None:
    spec(folder, width=5)
    npz(folder)


def _no_folder(name: str = "r") -> Callable[[Path], None]:
    def check(folder: Path) -> None:
        assert not (folder / name).exists()

    return check


def _csv(text: str, **kwargs) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / "d.csv").write_text(text)
        spec(folder, data="d.csv", **kwargs)

    return setup


def _csv_labels(folder: Path) -> None:
    rows = "".join(f"{i % 7 * 0.1},{(i % 3) * 0.2},{[0, 5, 9][i % 3]}\n" for i in range(60))
    _csv("f1,f2,y\n" + rows, width=2, layers="dense 3")(folder)


CASES = [
    Case("out names a file", _file, ["run", "t.trick", "--out", "afile"], 2, "trickc: error: cannot use afile as a run folder: it is a file; choose another --out"),
    Case("out under a file", _file, ["run", "t.trick", "--out", "afile/run"], 2, "trickc: error: cannot use afile/run as a run folder: afile is a file; choose another --out"),
    Case("out names a folder of other files", _not_a_run, ["run", "t.trick", "--out", "notes"], 2, "trickc: error: notes is not empty, and it is not a run folder; choose a new or empty folder for --out"),
    Case(
        "a new run where one is", finished_run, ["run", "t.trick", "--out", "r"], 2,
        "trickc: error: r already holds a run; use --resume to continue it, or choose another --out",
    ),
    Case("resume a finished run", finished_run, ["run", "t.trick", "--out", "r", "--resume"], 0, "r is already finished; nothing to resume"),
    Case(
        "resume with no folder", _file, ["run", "t.trick", "--out", "nothing", "--resume"], 2,
        "trickc: error: there is no run to resume in nothing: the folder does not exist; leave out --resume to start a run there",
        _no_folder("nothing"),
    ),
    Case(
        "resume a folder that is not a run", _not_a_run, ["run", "t.trick", "--out", "notes", "--resume"], 2,
        "trickc: error: notes is not a run folder (it has no plan.json), so there is nothing to resume there; choose another --out",
    ),
    Case(
        "resume a run of another spec", _other_spec, ["run", "other.trick", "--out", "r", "--resume"], 2,
        "trickc: error: r holds a run of another spec, 't', not 'other'; choose another --out for a new run of 'other'",
    ),
    Case(
        "resume a finished run with other settings", finished_run, ["run", "t.trick", "--out", "r", "--resume", "--set", "train.epochs=2"], 2,
        "trickc: error: r is a finished run of 't' with other settings (the spec or --set differ); start a new run (another --out) instead of --resume",
    ),
    Case(
        "resume where last.pt is a folder", _last_pt(None), ["run", "t.trick", "--out", "r", "--resume"], 2,
        "trickc: error: cannot resume r: its last.pt is a folder, not a file trick wrote; move it away",
    ),
    Case(
        "resume from a corrupt last.pt", _last_pt(b"\x00garbage" * 8), ["run", "t.trick", "--out", "r", "--resume"], 1,
        "r/last.pt:1:1: error: the checkpoint is corrupt or truncated and cannot be loaded (it is not a complete torch archive)",
    ),
    Case(
        "resume from a last.pt with pickled code", _last_pt(b"pickle"), ["run", "t.trick", "--out", "r", "--resume"], 1,
        "r/last.pt:1:1: error: this file holds pickled objects other than tensors and plain data, which trick never loads (it runs no pickled code); "
        "trick's checkpoints hold none, so it is damaged or was not written by trick",
        lambda folder: not (folder / "pwned").exists() or pytest.fail("pickled code ran"),
    ),
    Case("a data error writes nothing", _bad_input, ["run", "t.trick", "--out", "r"], 1, "t.trick:2:1: error: the model's input [5] has 5 values, but 'd.npz' samples have 4", _no_folder()),
    Case(
        "batchnorm with batch 1", lambda folder: (spec(folder, layers="dense 4 -> batchnorm -> relu\n    dense 2", batch=1), npz(folder)), ["run", "t.trick", "--out", "r"], 1,
        "t.trick:10:11: error: batch 1 gives batchnorm (line 5) a single value per channel in every training step, which has no batch statistics; use batch 2 or more, or layernorm",
        _no_folder(),
    ),
    Case(
        "file labels beyond the outputs", lambda folder: (spec(folder, layers="dense 3"), npz(folder, n=60, labels=(0, 5, 9))), ["run", "t.trick", "--out", "r"], 1,
        "t.trick:5:5: error: the model has 3 outputs, but the data has 10 classes (the labels of 'd.npz' go up to 9)",
        _no_folder(),
    ),
    Case("csv labels beyond the outputs", _csv_labels, ["run", "t.trick", "--out", "r"], 1, "t.trick:5:5: error: the model has 3 outputs, but the data has 10 classes (the labels of 'd.csv' go up to 9)", _no_folder()),
    Case(
        "csv cell that is not a number", _csv("a,b,y\n1,2,0\nsecret,3,1\n" * 1, width=2), ["run", "t.trick", "--out", "r"], 1,
        "t.trick:2:8: error: the cell at d.csv:3:1 (an input column 'a') holds 'secret', not a number; fill it with a number, or remove the row",
        _no_folder(),
    ),
    Case(
        "csv row of the wrong width", _csv("a,b,y\n1,2,0\npassword,hunter2,1,extra\n", width=2), ["run", "t.trick", "--out", "r"], 1,
        "t.trick:2:8: error: cannot read 'd.csv' as a .csv file: the row at d.csv:3 has 4 values, but the header names 3 columns",
        _no_folder(),
    ),
    Case(
        "csv x names an unknown column", _csv("f1,f2,y\n1,2,0\n", width=1), ["run", "t.trick", "--out", "r", "--set", 'data.source.x="f11"'], 1,
        "t.trick:2:8: error: 'd.csv' has no column named 'f11' for the inputs (its header names 'f1', 'f2', 'y'); did you mean 'f1'?",
        _no_folder(),
    ),
    Case(
        "graph without graphviz draws the picture", lambda folder: (spec(folder), npz(folder), (folder / "x.dot").write_text("mine\n")), ["graph", "t.trick", "-o", "x.svg"], 0, "",
        lambda folder: (folder / "x.svg").is_file() and (folder / "x.dot").read_text() == "mine\n" or pytest.fail("x.svg missing or x.dot changed"),
        env={"PATH": ""}, writes=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_adversarial_runs(case: Case, tmp_path):
    case.setup(tmp_path)
    before = listing(tmp_path)
    done = trickc(*case.args, cwd=tmp_path, env=case.env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == case.code, done.stderr
    first = done.stderr.splitlines()[0] if done.stderr else ""
    assert first == case.message
    if not case.writes:  # no file written, none removed, none overwritten
        assert listing(tmp_path) == before
    case.after(tmp_path)


def test_a_read_only_place_is_a_usage_error_before_anything_is_written(tmp_path, monkeypatch):
    """Root writes anywhere, so the refusal of the file system is simulated where it is asked."""
    from trick.runtime import run as run_module

    spec(tmp_path)
    npz(tmp_path)

    class ReadOnly:
        def __init__(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(run_module.tempfile, "TemporaryDirectory", ReadOnly)
    before = listing(tmp_path)
    with pytest.raises(trick.TrickError) as info:
        trick.run(compile_source(tmp_path / "t.trick"), tmp_path / "ro" / "run")
    assert str(info.value) == f"error: cannot write the run folder {tmp_path / 'ro' / 'run'}: {tmp_path} is not writable (Permission denied); choose another --out"
    assert listing(tmp_path) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_a_usage_error(tmp_path):
    spec(tmp_path)
    npz(tmp_path)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        done = trickc("run", "t.trick", "--out", "ro/run", cwd=tmp_path)
        assert (done.returncode, done.stderr) == (2, "trickc: error: cannot write the run folder ro/run: ro is not writable (Permission denied); choose another --out\n")
        assert list((tmp_path / "ro").iterdir()) == []
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_run_that_fails_while_training_leaves_nothing_and_can_be_retried(tmp_path):
    """A loss that overflows in the first epoch: the attempt's plan.json and spec.trick go."""
    np.savez(tmp_path / "huge.npz", x=np.full((40, 4), 3e38, np.float32), y=np.arange(40) % 2)
    spec(tmp_path, data="huge.npz").write_text(spec(tmp_path, data="huge.npz").read_text().replace("batch 8", "batch 8\n    optimizer sgd lr=1e6"))
    done = trickc("run", "t.trick", "--out", "r", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("t.trick:7:1: error: the loss became ")
    assert not (tmp_path / "r").exists()
    npz(tmp_path, "huge.npz")  # fixed: the same command now trains
    spec(tmp_path, data="huge.npz")
    again = trickc("run", "t.trick", "--out", "r", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "r" / "summary.json").is_file()


def test_a_data_error_then_a_retry_in_the_same_folder(tmp_path):
    _bad_input(tmp_path)
    assert trickc("run", "t.trick", "--out", "r", cwd=tmp_path).returncode == 1
    spec(tmp_path)
    done = trickc("run", "t.trick", "--out", "r", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_csv_x_names_the_input_columns(tmp_path):
    rows = "".join(f"{i % 5},{i % 2 * 10.0},{-i},{i % 2}\n" for i in range(40))
    (tmp_path / "d.csv").write_text("f1,f2,f3,y\n" + rows)
    spec(tmp_path, data="d.csv", width=2)
    program = compile_source(tmp_path / "t.trick", overrides=['data.source.x="f2,f1"'])
    assert trick.run(program, tmp_path / "r").summary["epochs_run"] == 1
    with pytest.raises(trick.TrickError) as info:  # one column named: one input, not the model's two
        trick.run(compile_source(tmp_path / "t.trick", overrides=['data.source.x="f2"']), tmp_path / "r2")
    assert info.value.diagnostic.message == "the model's input [2] has 2 values, but 'd.csv' samples have 1"
    assert not (tmp_path / "r2").exists()
    from trick.runtime import sources

    raw = sources.file({"path": "d.csv", "x": "f2,f1", "y": "y"}, 0, str(tmp_path))
    assert raw.x_train.shape == (40, 2) and raw.x_train[1].tolist() == [10.0, 1.0]
    everything = sources.file({"path": "d.csv", "x": "x", "y": "y"}, 0, str(tmp_path))  # the default: all but y
    assert everything.x_train.shape == (40, 3)


# ---- imports: trained next to the imported spec, reused from anywhere ---------------------------------------

BASE = """spec base
data { source file "d.npz" }
model {
    input [4]
    first: dense 8 -> relu
    dense 2
}
train {
    epochs 1
    batch 8
}
"""

STUDENT = """spec student
import "lib/base.trick" as base
data { source file "lib/d.npz" }
transfer {
    from base layers=1
    freeze true
}
model {
    input [4]
    first: dense 8 -> relu
    dense 2
}
train {
    epochs 1
    batch 8
}
"""


def test_an_import_trains_next_to_its_spec_and_is_reused_from_any_working_directory(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.trick").write_text(BASE)
    npz(tmp_path / "lib")
    (tmp_path / "student.trick").write_text(STUDENT)
    for place in ("a", "b"):
        (tmp_path / place).mkdir()
    first = trickc("run", "../student.trick", "--out", "r", cwd=tmp_path / "a")
    assert first.returncode == 0, first.stderr
    runs = tmp_path / "lib" / "runs" / "base"
    assert f"trained 'base' in {runs / '1'}" in first.stderr
    second = trickc("run", "../student.trick", "--out", "r", cwd=tmp_path / "b")
    assert second.returncode == 0, second.stderr
    assert f"using {runs / '1'} for 'base' (base, unchanged since that run)" in second.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["1"]
    assert not (tmp_path / "a" / "runs").exists() and not (tmp_path / "b" / "runs").exists()


def test_the_content_hash_covers_the_data_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.trick").write_text(BASE)
    npz(tmp_path / "lib")
    (tmp_path / "student.trick").write_text(STUDENT)
    before = compile_source(tmp_path / "student.trick")
    same = compile_source(tmp_path / "student.trick")
    npz(tmp_path / "lib", n=44)  # other data, the same spec text
    after = compile_source(tmp_path / "student.trick")
    (hash_before,), (hash_same,), (hash_after,) = ([i.content_hash for i in p.plan.imports] for p in (before, same, after))
    assert hash_before == hash_same != hash_after
    assert before.content_hash == same.content_hash != after.content_hash


def test_ctrl_c_before_the_first_epoch_ends_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    from trick.cli import main
    from trick.runtime import trainer as trainer_module

    spec(tmp_path)
    npz(tmp_path)

    def interrupt(self, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", interrupt)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "t.trick", "--out", "r", "--quiet"]) == 130
    assert capsys.readouterr().err == "\ninterrupted before the first epoch finished; nothing was saved\n"
    assert not (tmp_path / "r").exists()
