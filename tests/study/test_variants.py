"""The tricks of a spec come from the registry's marks; removing them is an AST edit whose
result checks clean; Welch's interval is the textbook one."""

import math
from pathlib import Path

import pytest

from trick.compiler.pipeline import compile_source, run_pipeline
from trick.dsl.format import format_program
from trick.study.stats import welch
from trick.study.variants import find_tricks, relocated, without

from ..conftest import ROOT

SPECS = ROOT / "specs"


def program_of(path: Path):
    return run_pipeline(path, str(path)).spec.program


def test_the_tricks_of_e1_are_found_by_the_registry():
    tricks = find_tricks(program_of(SPECS / "mnist1d_cnn.trick"))
    assert [(t.key, t.describe()) for t in tricks] == [
        ("augment shift", "`shift 4` (line 10)"),
        ("augment noise", "`noise std=0.05` (line 11)"),
        ("groupnorm", "`groupnorm 8` (line 16)"),
        ("batchnorm", "`batchnorm` (line 17)"),
        ("dropout", "`dropout 0.5` (line 20)"),
        ("schedule", "`schedule cosine warmup=2` (line 28)"),
        ("smoothing", "`loss … smoothing=0.1` (line 29)"),
        ("early_stop", "`early_stop monitor=val.loss patience=8 restore=best` (line 30)"),
    ]


def test_a_spec_without_all_its_tricks_is_the_plain_network(tmp_path):
    program = program_of(SPECS / "digits_mlp.trick")
    plain = format_program(without(program, find_tricks(program)))
    assert "dense 256 -> relu\n    dense 256 -> relu\n    dense 10\n" in plain
    for word in ("batchnorm", "layernorm", "dropout", "dropconnect", "noise", "regularize", "weight_noise"):
        assert word not in plain
    assert "# Gaussian noise on hidden units" not in plain  # the comment of a removed line goes with it
    (tmp_path / "plain.trick").write_text(plain)
    compiled = compile_source(tmp_path / "plain.trick", name=str(tmp_path / "plain.trick"))
    assert [layer.op for layer in compiled.graph.layers] == ["dense", "relu", "dense", "relu", "dense"]


def test_every_occurrence_of_a_trick_goes_together_and_a_block_with_its_import(tmp_path):
    program = program_of(SPECS / "mnist1d_fitnet.trick")
    tricks = {t.key: t for t in find_tricks(program)}
    assert tricks["batchnorm"].describe() == "`batchnorm` (lines 9, 11)"
    text = format_program(relocated(without(program, [tricks["distill"]]), SPECS, tmp_path))
    assert "distill" not in text and "import" not in text  # the teacher is no longer used
    kept = format_program(relocated(without(program, [tricks["batchnorm"]]), SPECS, tmp_path / "variants"))
    assert "repeat 4 { conv 16 k=3 pad=1 -> relu }" in kept
    path = tmp_path / "variants" / "v.trick"
    path.parent.mkdir()
    path.write_text(kept)
    assert compile_source(path, name=str(path)).plan.distill is not None  # its import, moved, still resolves


def test_an_option_at_its_default_is_no_trick():
    text = (SPECS / "digits_mlp.trick").read_text().replace("dropconnect=0.3", "dropconnect=0")
    keys = [t.key for t in find_tricks(run_pipeline(text, "x.trick").spec.program)]
    assert "dropconnect" not in keys and "batchnorm" in keys


def t_quantile(p: float, nu: float) -> float:
    """Student's t quantile by bisection on its CDF, 1/2 + ∫₀ˣ pdf (Simpson's rule): an oracle
    that shares nothing with scipy."""
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)

    def cdf(x: float, n: int = 200) -> float:
        h = x / n
        f = [c * (1 + (i * h) ** 2 / nu) ** (-(nu + 1) / 2) for i in range(n + 1)]
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    low, high = 0.0, 50.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return low


def test_welch_interval_is_the_textbook_one():
    # a = 1..4 (mean 2.5, s² 5/3), b = 2, 4, 6, 8 (mean 5, s² 20/3): d = 2.5, se = sqrt(5/12 + 20/12),
    # ν = (25/12)² / ((5/12)²/3 + (20/12)²/3) = 4.41
    se, nu = math.sqrt(25 / 12), (25 / 12) ** 2 / ((5 / 12) ** 2 / 3 + (20 / 12) ** 2 / 3)
    half = t_quantile(0.975, nu) * se
    d = welch([1, 2, 3, 4], [2, 4, 6, 8])
    assert (d.value, d.low, d.high) == (pytest.approx(2.5), pytest.approx(2.5 - half, abs=1e-6), pytest.approx(2.5 + half, abs=1e-6))
    assert d.beyond_noise is False
    assert welch([0.90, 0.91, 0.92], [0.95, 0.96, 0.94]).beyond_noise is True
    assert welch([0.9], [0.95]).low is None  # one seed: no interval
