"""`precision`, `channels_last` and `compile` on a CUDA device (marked `cuda`: skipped
without one; bench/gpu.sh runs them with `pytest -m cuda`).

Each trains a tiny spec on the GPU and compares it with the eager fp32 run of the same
spec and seed: the same losses within the rounding of the precision (fp16: 10 bits of
mantissa, bf16: 7), and the machinery in place (autocast dtypes, the GradScaler, NHWC
weights, a compiled forward)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from trick.compiler.pipeline import compile_source
from trick.runtime.data import load_splits
from trick.runtime.run import execute
from trick.runtime.trainer import Trainer

DEVICE = torch.device("cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SPIRAL = """spec cuda_spiral
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
    optimizer adam lr=0.01
    schedule cosine warmup=1
    {extra}
}}
"""

IMAGES = """spec cuda_images
data {{
    source synthetic_images classes=2 size=8 n=64
    validation 0.25
}}
model {{
    input [3, 8, 8]
    conv 4 k=3 pad=1 -> batchnorm -> relu
    avgpool global
    dense 2
}}
train {{
    epochs 2
    batch 16
    {extra}
}}
"""


def program(tmp_path, extra: str = "", text: str = SPIRAL):
    path = tmp_path / "cuda.trick"
    path.write_text(text.format(extra=extra))
    return compile_source(path)


def trainer(p) -> Trainer:
    splits = load_splits(p.plan.data, p.plan.seed, p.graph.input)
    return Trainer(p.model(p.plan.seed), p.graph, p.plan, splits, DEVICE)


def losses(t: Trainer, epochs: int = 2) -> list[float]:
    out = []
    for _ in range(epochs):
        out.append(t.train_epoch()["loss"])
        t.epoch += 1
    return out


def dtypes_of(t: Trainer, layer: str) -> tuple[set, set]:
    """The dtypes `layer` computes in during a training epoch, and during evaluation."""
    seen: list = []
    t.model.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    t.train_epoch()
    trained = set(seen)
    seen.clear()
    t.evaluate("val")
    return trained, set(seen)


def test_fp16_autocasts_the_forward_and_learns_what_fp32_learns(tmp_path):
    t = trainer(program(tmp_path, "precision fp16"))
    assert t.speed.scaler is not None and t.speed.scaler.is_enabled()
    assert dtypes_of(t, "dense1") == ({torch.float16}, {torch.float32})
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in t.model.parameters())
    fp32, fp16 = losses(trainer(program(tmp_path))), losses(trainer(program(tmp_path, "precision fp16")))
    assert fp16 == pytest.approx(fp32, rel=2e-2)
    assert 0 < trainer(program(tmp_path, "precision fp16")).speed.scaler.get_scale() < float("inf")


def test_fp16_skips_the_steps_whose_scaled_gradients_overflow(tmp_path):
    """With a loss scale of 2^60 every fp16 gradient is infinite: the GradScaler skips each
    step (the weights stay as they were) and halves the scale once per step."""
    t = trainer(program(tmp_path, "precision fp16"))
    t.speed.scaler = torch.amp.GradScaler("cuda", init_scale=2.0**60)
    before = [p.detach().clone() for p in t.model.parameters()]
    t.train_epoch()
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert t.speed.scaler.get_scale() == 2.0 ** (60 - t.steps_per_epoch)


def test_bf16_autocasts_the_forward_only(tmp_path):
    t = trainer(program(tmp_path, "precision bf16"))
    assert t.speed.scaler is None  # bf16 has fp32's range: nothing to scale
    assert dtypes_of(t, "dense1") == ({torch.bfloat16}, {torch.float32})
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    fp32, bf16 = losses(trainer(program(tmp_path))), losses(trainer(program(tmp_path, "precision bf16")))
    assert bf16 == pytest.approx(fp32, rel=5e-2)


def test_channels_last_trains_a_2d_conv_in_nhwc_as_nchw_does(tmp_path):
    t = trainer(program(tmp_path, "channels_last true", IMAGES))
    weight = t.model.get_submodule("conv1").weight
    assert weight.is_cuda and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert t.speed.inputs(torch.zeros(2, 3, 8, 8, device=DEVICE)).is_contiguous(memory_format=torch.channels_last)
    nhwc = losses(t)
    assert t.model.get_submodule("conv1").weight.is_contiguous(memory_format=torch.channels_last)  # still NHWC after the updates
    assert nhwc == pytest.approx(losses(trainer(program(tmp_path, "", IMAGES))), rel=1e-3)


@pytest.mark.parametrize("mode", ["default", "reduce_overhead"])
def test_a_compiled_run_on_cuda_learns_what_the_eager_run_learns(tmp_path, mode):
    """reduce_overhead replays CUDA graphs: the losses and outputs read after each step must
    still be that step's."""
    eager = execute(program(tmp_path), tmp_path / "eager", device="cuda", stream=None).history
    compiled = execute(program(tmp_path, f"compile true mode={mode}"), tmp_path / mode, device="cuda", stream=None).history
    assert len(compiled) == len(eager) == 2
    for a, b in zip(eager, compiled):
        assert b["train.loss"] == pytest.approx(a["train.loss"], rel=1e-3)
        assert b["train.accuracy"] == pytest.approx(a["train.accuracy"], abs=1 / 192 + 1e-9)  # one sample may flip
        assert b["val.loss"] == pytest.approx(a["val.loss"], rel=1e-3)
        assert isinstance(b["lr"], float) and b["lr"] == pytest.approx(a["lr"])


def test_trickc_run_on_cuda_with_bf16_compile_and_channels_last(tmp_path):
    spec = tmp_path / "images.trick"
    spec.write_text(IMAGES.format(extra=""))
    out = tmp_path / "run"
    sets = ["--set", "train.precision=bf16", "--set", "train.compile=true", "--set", "train.channels_last=true"]
    result = subprocess.run([sys.executable, "-m", "trick", "run", str(spec), "--device", "cuda", "--quiet", "--out", str(out), *sets], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["epochs_run"] == 2
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["compile"], plan["precision"], plan["channels_last"]) == ("default", "bf16", True)
