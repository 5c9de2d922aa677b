"""`train { compile ... }`, `precision` and `channels_last` (speed.py): what each changes, and
that the training still computes what the eager fp32 step computes (within rounding)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from trick.compiler.pipeline import compile_source
from trick.runtime.data import load_splits
from trick.runtime.trainer import Trainer

SPEC = """spec fast
data {{
    source playground spiral n=240 noise=0.05
    validation 0.2
    normalize zscore
}}
model {{
    input [2]
    dense 16 -> tanh
    dense 2
}}
train {{
    epochs 2
    batch 32
    schedule cosine warmup=1
    {extra}
}}
"""

IMAGES = """spec fast_images
data {{
    source synthetic_images classes=2 size=8 n=64
}}
model {{
    input [3, 8, 8]
    conv 4 k=3 pad=1 -> relu
    avgpool global
    dense 2
}}
train {{
    epochs 1
    batch 16
    {extra}
}}
"""


def program(tmp_path, extra: str, text: str = SPEC):
    path = tmp_path / "fast.trick"
    path.write_text(text.format(extra=extra))
    return compile_source(path)


def trainer(p):
    splits = load_splits(p.plan.data, p.plan.seed, p.graph.input)
    return Trainer(p.model(), p.graph, p.plan, splits, torch.device("cpu"))


def test_the_clauses_reach_the_plan(tmp_path):
    plan = program(tmp_path, "compile true mode=max_autotune\n    precision bf16\n    channels_last true").plan
    assert (plan.compile, plan.precision, plan.channels_last) == ("max_autotune", "bf16", True)
    plan = program(tmp_path, "compile false").plan
    assert (plan.compile, plan.precision, plan.channels_last) == (None, "fp32", False)


def test_eager_fp32_has_no_speed_machinery(tmp_path):
    assert trainer(program(tmp_path, "")).speed is None


def test_bf16_runs_the_forward_under_autocast(tmp_path):
    t = trainer(program(tmp_path, "precision bf16"))
    seen = []
    t.model.get_submodule("dense1").register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    t.train_epoch()
    assert seen and set(seen) == {torch.bfloat16}  # the layers compute in bf16
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # the weights stay fp32
    seen.clear()
    t.evaluate("val")
    assert set(seen) == {torch.float32}  # evaluation is fp32


def test_fp16_scales_the_loss_and_resumes_its_scale(tmp_path):
    t = trainer(program(tmp_path, "precision fp16\n    clip_grad 1.0"))
    assert t.speed.scaler is not None
    t.train_epoch()
    state = t.checkpoint()
    assert "scaler" in state and state["scaler"]["scale"] > 0
    other = trainer(program(tmp_path, "precision fp16\n    clip_grad 1.0"))
    other.restore(state)
    assert other.speed.scaler.get_scale() == t.speed.scaler.get_scale()


def test_channels_last_puts_conv_weights_and_inputs_in_nhwc(tmp_path):
    t = trainer(program(tmp_path, "channels_last true", IMAGES))
    weight = t.model.get_submodule("conv1").weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert t.speed.inputs(torch.zeros(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    t.train_epoch()  # and it trains


# SPEC with a layer of each random trick and both penalties
TRICKS = (
    SPEC.replace("spec fast", "spec fast_tricks")
    .replace(
        "    dense 16 -> tanh\n",
        "    dense 16 dropconnect=0.3 -> batchnorm -> relu -> dropout 0.2 -> noise std=0.1\n"
        "    dense 16 dropconnect=0.2 dropconnect_mask=batch -> relu -> dropout 0.3 mode=scale_at_test\n",
    )
    .replace("    schedule cosine warmup=1\n", "    schedule cosine warmup=1\n    optimizer sgd lr=0.05 momentum=0.9\n    regularize l2 1e-3\n    regularize l1 1e-5\n")
)


def test_the_plain_objective_compiles_as_one_graph(tmp_path):
    """With `compile`, forward (DropConnect's masks, dropout, noise, batchnorm), the loss and
    the penalty terms trace as one graph: no graph break (TorchDynamo's explain, no Inductor)."""
    t = trainer(program(tmp_path, "compile true", TRICKS))
    t.model.train()
    x = t.x["train"][:32]
    targets = {"label": t.y["train"]["label"][:32]}
    explained = torch._dynamo.explain(t._forward_loss)(x, targets)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow
def test_compiled_draws_are_the_eager_draws(tmp_path):
    """Compiled with Inductor's fallback_random, the masks and noise come from torch's
    generator in the eager order: `trickc run` of a spec with DropConnect (a mask per
    example and per batch), dropout, unit noise and penalties, with `--set
    train.compile=true` and without, gives the same losses within float rounding (other
    draws would differ by far more: 0.696 against 0.709 with Inductor's own), and the
    learning rates of its schedule are recorded as the same numbers."""
    spec = tmp_path / "tricks.trick"
    spec.write_text(TRICKS.format(extra=""))
    runs = {}
    for name, sets in (("eager", []), ("compiled", ["--set", "train.compile=true"])):
        command = [sys.executable, "-m", "trick", "run", str(spec), "--quiet", "--out", str(tmp_path / name), *sets]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        runs[name] = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert len(runs["eager"]) == len(runs["compiled"]) == 2
    for a, b in zip(runs["eager"], runs["compiled"]):
        assert b["train.loss"] == pytest.approx(a["train.loss"], rel=1e-4)
        assert b["val.loss"] == pytest.approx(a["val.loss"], rel=1e-4)
        assert isinstance(b["lr"], float) and b["lr"] == pytest.approx(a["lr"])


def test_the_clauses_are_checked(tmp_path):
    path = tmp_path / "bad.trick"
    path.write_text(SPEC.format(extra="precision fp64"))
    result = subprocess.run([sys.executable, "-m", "trick", "check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "expected one of 'fp32', 'bf16' or 'fp16', found 'fp64'" in result.stdout + result.stderr
