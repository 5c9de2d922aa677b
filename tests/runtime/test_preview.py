"""`Program.augment` (the trainer's augmentation of a raw batch) and `trickc preview`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trick
from trick.dsl.diagnostics import TrickUsageError
from trick.runtime.augment import Augmenter
from trick.runtime.preview import write_preview

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"

POINTS = """spec points

data {
    source playground spiral n=200 noise=0.1
    validation 0.2
}

augment {
    noise std=0.1
}

model {
    input [2]
    dense 8 -> tanh
    dense 2
}

train {
    epochs 1
    batch 32
    optimizer sgd lr=0.1
    loss cross_entropy
}
"""


@pytest.fixture(scope="module")
def images():
    return trick.compile(SPECS / "tiny_images.trick")


def trainer_augment(program, x, generator):
    """The trainer's call (Trainer.train_inputs, before normalizing): colour changes clamp to
    (0, 1) when the raw training data lies in [0, 1], as these batches do."""
    inside = float(x.min()) >= 0 and float(x.max()) <= 1
    return Augmenter(program.plan.augment, clamp=(0.0, 1.0) if inside else None)(x, generator)


def test_augment_clamps_only_data_in_the_unit_range(images):
    x = 4 * torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))  # 0..4: never clamped
    assert torch.equal(images.augment(x, seed=1), trainer_augment(images, x, torch.Generator().manual_seed(1)))
    assert float(images.augment(x, seed=1).max()) > 1.0


# ---- the API ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_augment_is_the_trainers_augmenter_for_the_same_seed(images, seed):
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    got = images.augment(x, seed=seed)
    assert torch.equal(got, trainer_augment(images, x, torch.Generator().manual_seed(seed)))
    assert torch.equal(got, images.augment(x, seed=seed))  # the same seed, the same batch
    assert not torch.equal(got, x)


def test_augment_defaults_to_seed_0_and_other_seeds_draw_otherwise(images):
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(images.augment(x), images.augment(x, seed=0))
    assert not torch.equal(images.augment(x, seed=0), images.augment(x, seed=1))


def test_augment_draws_from_and_advances_a_given_generator(images):
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    mine, trainers = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    for _ in range(2):  # two steps in a row: the stream continues as the trainer's does
        assert torch.equal(images.augment(x, generator=mine), trainer_augment(images, x, trainers))
    assert torch.equal(mine.get_state(), trainers.get_state())
    with pytest.raises(TrickUsageError, match="not both"):
        images.augment(x, seed=1, generator=mine)


def test_augment_with_noise_on_sequences():
    program = trick.compile(SPECS / "mnist1d_cnn.trick")  # shift, noise
    x = torch.randn(5, 1, 40, generator=torch.Generator().manual_seed(4))
    assert torch.equal(program.augment(x, seed=3), trainer_augment(program, x, torch.Generator().manual_seed(3)))


def test_augment_takes_numpy_and_gives_numpy(images):
    x = np.random.default_rng(0).random((3, 3, 16, 16))  # float64: taken as the trainer's float32
    got = images.augment(x, seed=5)
    assert isinstance(got, np.ndarray) and got.shape == x.shape
    want = trainer_augment(images, torch.from_numpy(x.astype(np.float32)), torch.Generator().manual_seed(5))
    assert np.array_equal(got, want.numpy())


def test_a_batch_of_the_wrong_shape_says_the_expected_shape(images):
    with pytest.raises(TrickUsageError, match=r"expected a batch \[N, 3, 16, 16\], found \[5, 16, 16\]"):
        images.augment(torch.zeros(5, 16, 16))
    with pytest.raises(TrickUsageError, match=r"found \[2, 3, 8, 8\]"):
        images.augment(np.zeros((2, 3, 8, 8)))
    with pytest.raises(TrickUsageError, match="tensor or numpy array"):
        images.augment([[0.0]])


def test_without_an_augment_block_the_batch_comes_back_unchanged():
    program = trick.compile(SPECS / "spiral_l1.trick")
    x = torch.randn(4, 2)
    assert program.augment(x, seed=1) is x
    with pytest.raises(TrickUsageError, match=r"expected a batch \[N, 2\], found \[4, 3\]"):
        program.augment(torch.zeros(4, 3))


def test_preview_without_an_augment_block_draws_the_originals(tmp_path):
    drawn = write_preview(trick.compile(SPECS / "spiral_l1.trick"), tmp_path / "p.png", n=8)
    assert (drawn.kind, drawn.samples, drawn.augmented) == ("points", 8, False)
    assert min(Image.open(drawn.path).size) > 100


# ---- trickc preview ---------------------------------------------------------------------------------------


def trickc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trick", "preview", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def assert_picture(path: Path) -> None:
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width > 100 and height > 100


@pytest.mark.parametrize(("spec", "kind"), [("tiny_images", "images"), ("mnist1d_cnn", "sequences")])
def test_trickc_preview_draws_a_spec_of_the_examples(tmp_path, spec, kind):
    done = trickc(SPECS / f"{spec}.trick", "-o", "out.png", "--n", 4, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"wrote out.png: 4 training {kind}, original and augmented" in done.stdout
    assert_picture(tmp_path / "out.png")


def test_trickc_preview_draws_points_in_the_plane(tmp_path):
    (tmp_path / "points.trick").write_text(POINTS)
    done = trickc("points.trick", "-o", "points.png", "--n", 12, "--seed", 3, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "12 training points, original and augmented (seed 3)" in done.stdout
    assert_picture(tmp_path / "points.png")


def test_trickc_preview_of_a_spec_with_errors_prints_the_diagnostic(tmp_path):
    (tmp_path / "bad.trick").write_text(POINTS.replace("dense 8 -> tanh", "dense 8 -> tanhh"))
    done = trickc("bad.trick", cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.trick:14:" in done.stderr and "error:" in done.stderr and "tanhh" in done.stderr
    assert not (tmp_path / "augment.png").exists()


@pytest.mark.parametrize(("args", "message"), [(["--n", "0"], "--n must be at least 1, found 0"), (["-o", "x.gif"], "cannot draw a preview as 'x.gif'; name a .png, .svg or .pdf file")])
def test_trickc_preview_usage_errors_exit_2(tmp_path, args, message):
    done = trickc(SPECS / "tiny_images.trick", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert f"trickc: error: {message}" in done.stderr
