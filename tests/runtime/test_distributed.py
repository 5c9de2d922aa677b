"""Data-parallel training on torch.distributed, with gloo and 2 processes on the CPU: the same
weights as one process on the same global batches, synchronized batch normalization, a run
folder written by rank 0 alone, a dead worker that fails the run, --resume, and torchrun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trick
from trick.compiler.pipeline import compile_source
from trick.runtime import checkpoint as ckpt
from trick.runtime.distributed import CpuSyncBatchNorm, World, batchnorm_paths, synchronize_batchnorm
from trick.runtime.launch import free_port, strip_nproc

# Digits with a 0.25 test and a 0.1 validation split leave 1212 training samples: 18 batches
# of 64 and a trailing one of 60, which 2 processes split 30/30, so one process and two train
# on exactly the same global batches. No dropout: its masks are drawn per process.
EQUAL = """spec equal

data {
    source digits
    test 0.25
    validation 0.1
    normalize zscore
}

augment {
    noise std=0.1
}

model {
    input [64]
    dense 32 -> relu
    dense 10
}

train {
    epochs 3
    batch 64
    optimizer sgd lr=0.1 momentum=0.9
    regularize l2 1e-4
    seed 3
}
"""

# Batch normalization in 2-D (after a convolution) and in 1-D (after a dense layer). SGD, not
# Adam: the bias before a batchnorm has a gradient that is zero up to rounding, which Adam's
# normalization turns into full steps of random sign (in one process as in two).
BATCHNORM = """spec batchnorm

data {
    source digits
    test 0.25
    validation 0.1
}

model {
    input [1, 8, 8]
    conv 8 k=3 pad=1 -> batchnorm -> relu
    flatten
    dense 32 -> batchnorm momentum=0.2 SYNC -> relu
    dense 10
}

train {
    epochs 2
    batch 64
    optimizer sgd lr=0.05 momentum=0.9
    seed 4
}
"""

# Dropout, so that resuming must give each process its own random generator back.
DROPOUT = """spec dropout

data {
    source digits
    validation 0.2
    normalize zscore
}

model {
    input [64]
    dense 32 -> relu -> dropout 0.3
    dense 10
}

train {
    epochs 40
    batch 64
    optimizer sgd lr=0.05 momentum=0.9
    seed 5
}
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes on 2 cores: one thread each


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.trick"
    path.write_text(text)
    return path


def trickc(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "trick", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return ckpt.load(folder / "last.pt")["model"]


def metrics(folder: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (folder / "metrics.jsonl").read_text().splitlines()]


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()  # DDP is unwrapped: the same state_dict keys as one process
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# ---- without processes ------------------------------------------------------------------------------------


def test_the_batch_must_divide_among_the_processes(tmp_path):
    spec = write(tmp_path, "equal", EQUAL)
    result = trickc("run", spec, "--nproc", "3", "--out", tmp_path / "r")
    assert result.returncode == 1
    assert result.stderr == (
        f"{spec}:22:11: error: batch 64 does not divide among 3 processes: the batch is the global batch, split evenly "
        "across the processes; choose a multiple of 3 (63 or 66) or another number of processes\n"
        "        batch 64\n"
        "              ^~\n"
    )
    assert not (tmp_path / "r").exists()


def test_batchnorm_is_synchronized_unless_sync_is_false():
    program = compile_source(BATCHNORM.replace("SYNC", "sync=false"))
    assert batchnorm_paths(program.graph) == {"batchnorm1": True, "batchnorm2": False}
    one = program.model(seed=0)
    keys = list(one.state_dict())
    assert synchronize_batchnorm(one, program.graph, World()) is one  # one process: unchanged
    assert type(one.batchnorm1) is torch.nn.BatchNorm2d
    two = synchronize_batchnorm(program.model(seed=0), program.graph, World(0, 2))
    assert type(two.batchnorm1) is CpuSyncBatchNorm and type(two.batchnorm2) is torch.nn.BatchNorm1d
    assert list(two.state_dict()) == keys
    for key, value in one.state_dict().items():
        assert torch.equal(value, two.state_dict()[key])


def test_the_workers_run_the_same_command_without_nproc():
    assert strip_nproc(["run", "a.trick", "--nproc", "2", "--set", "train.epochs=2", "--nproc=4", "--quiet"]) == ["run", "a.trick", "--set", "train.epochs=2", "--quiet"]


# ---- two processes --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_end_with_the_weights_of_one(tmp_path):
    spec = write(tmp_path, "equal", EQUAL)
    one = trick.run(spec, tmp_path / "one")
    result = trickc("run", spec, "--nproc", "2", "--out", "two", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    two = tmp_path / "two"
    # The same global batches, a sum over the same samples: equal up to the order of float additions.
    assert max_difference(weights(tmp_path / "one"), weights(two)) < 1e-5  # measured: 2.4e-7
    m1, m2 = metrics(tmp_path / "one"), metrics(two)
    assert [r["train.samples"] for r in m1] == [r["train.samples"] for r in m2] == [1212] * 3
    for a, b in zip(m1, m2):
        assert set(a) == set(b)
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5), key  # metrics are summed over both processes
    summary = json.loads((two / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["test"]["accuracy"] == pytest.approx(one.summary["test"]["accuracy"], abs=1 / 450)
    # Rank 0 alone wrote the run folder, and nothing else was written.
    assert {p.name for p in two.iterdir()} == {p.name for p in (tmp_path / "one").iterdir()}
    assert {p.name for p in tmp_path.iterdir()} == {"equal.trick", "one", "two"}
    assert [line.split()[0] for line in result.stderr.splitlines() if line.startswith("epoch ")] == ["epoch"] * 3  # one process printed


@pytest.mark.slow
def test_sync_batchnorm_has_the_batch_statistics_of_one_process(tmp_path):
    synced = write(tmp_path, "synced", BATCHNORM.replace(" SYNC", ""))
    local = write(tmp_path, "local", BATCHNORM.replace("SYNC", "sync=false"))
    trick.run(synced, tmp_path / "one")
    for spec, out in ((synced, "two"), (local, "local")):
        result = trickc("run", spec, "--nproc", "2", "--out", tmp_path / out)
        assert result.returncode == 0, result.stderr
    one, two, local = weights(tmp_path / "one"), weights(tmp_path / "two"), weights(tmp_path / "local")
    statistics = [f"batchnorm{i}.running_{s}" for i in (1, 2) for s in ("mean", "var")]
    # Running averages of the batch statistics of every step: those of the global batch.
    for key in statistics:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-5)
    assert max_difference(one, two) < 1e-4  # measured: 1.1e-5, on a running variance of 37
    # sync=false: the second layer's statistics are those of each process's half batch.
    assert float((local["batchnorm2.running_var"] - one["batchnorm2.running_var"]).abs().max()) > 1e-3


def _children(pid: int) -> dict[int, int]:
    """The processes whose parent is `pid`, by their RANK."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                env = dict(e.split("=", 1) for e in (entry / "environ").read_text().split("\0") if "=" in e)
                found[int(env["RANK"])] = int(entry.name)
        except (OSError, ValueError, KeyError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")
def test_a_dead_worker_stops_the_run_and_resume_finishes_it_as_torchrun_would(tmp_path):
    spec = write(tmp_path, "dropout", DROPOUT)
    # The whole run, under PyTorch's own launcher.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    whole = subprocess.run(torchrun + ["-m", "trick", "run", str(spec), "--out", str(tmp_path / "whole"), "--quiet"], capture_output=True, text=True, env=ENV, timeout=180)
    assert whole.returncode == 0, whole.stderr

    killed = tmp_path / "killed"
    launcher = subprocess.Popen([sys.executable, "-m", "trick", "run", str(spec), "--out", str(killed), "--nproc", "2", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    lines = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (lines.exists() and lines.read_text().count("\n") >= 3):
        time.sleep(0.005)
    os.kill(_children(launcher.pid)[1], signal.SIGKILL)
    died = time.time()
    _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode == 1
    assert time.time() - died < 15  # the others are stopped at once: no waiting for a timeout
    assert stderr.splitlines()[-1] == (
        "trickc: error: worker 1 of 2 died (killed by SIGKILL); the other workers were stopped. The last finished epoch is saved: --resume continues from it"
    )
    assert not (killed / "summary.json").exists(), "the run finished before a worker could be killed"
    assert 3 <= lines.read_text().count("\n") < 40
    assert {p.name for p in killed.iterdir()} <= {"spec.trick", "plan.json", "data.json", "metrics.jsonl", "last.pt", "best.pt", ".last.pt.tmp", ".best.pt.tmp"}

    alone = trickc("run", spec, "--out", killed, "--resume")
    assert alone.returncode == 2
    assert alone.stderr == f"trickc: error: {killed / 'last.pt'} was written by a run on 2 processes, which cannot continue on 1 process: resume it with --nproc 2 (or torchrun with 2 processes in all)\n"

    resumed = trickc("run", spec, "--out", killed, "--nproc", "2", "--resume", "--quiet", timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics(killed) == metrics(tmp_path / "whole")
    a, b = weights(killed), weights(tmp_path / "whole")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert json.loads((killed / "summary.json").read_text())["test"] == json.loads((tmp_path / "whole" / "summary.json").read_text())["test"]



LIBRARY_WORKER = """
import sys
import torch.distributed as dist
import trick

spec, out, given = sys.argv[1], sys.argv[2], sys.argv[3] == "given"
if given:
    dist.init_process_group("gloo")
trick.run(spec, out)
assert dist.is_initialized() == given, "trick.run destroyed its caller's group" if given else "the group trick.run started outlived it"
if given:
    dist.destroy_process_group()
print("done")
"""


@pytest.mark.slow
@pytest.mark.parametrize("group", ["joined", "given"])
def test_a_run_under_torchrun_leaves_the_process_group_as_it_found_it(tmp_path, group):
    # A group that trick.run started is torn down before it returns (not in the interpreter's
    # finalization, where gloo's threads can abort the process); one its caller started stays.
    spec = write(tmp_path, "short", EQUAL.replace("epochs 3", "epochs 1"))
    worker = tmp_path / "worker.py"
    worker.write_text(LIBRARY_WORKER)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    result = subprocess.run(torchrun + [str(worker), str(spec), str(tmp_path / "out"), group], capture_output=True, text=True, env=ENV, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("done") == 2
    assert (tmp_path / "out" / "summary.json").is_file()
