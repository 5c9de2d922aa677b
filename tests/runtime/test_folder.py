"""Image folders (trick/runtime/folder.py): the index, the header defaults, decoding with
torchvision's Resize + CenterCrop rule, the cache and the streamed batches, every data error."""

import importlib.util
import io
import os
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from trick.dsl.diagnostics import TrickUsageError
from trick.runtime import folder
from trick.runtime.folder import (
    FolderError,
    batches_of,
    cache_budget,
    decode_all,
    decode_image,
    fits,
    probe,
    resolve,
    scan_folder,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "specs" / "data"))
from make_image_folder import make_folder


def write(path: Path, size=(8, 8), mode="RGB", seed=0) -> np.ndarray:
    """Write a random image of `mode` and (w, h) `size`; return its RGB pixels [h, w, 3]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)
    return pixels


def tree(root: Path, layout: dict[str, int], size=(8, 8), mode="RGB") -> None:
    """{'cat': 2, 'train/dog': 3} -> root/cat/0.png, 1.png, root/train/dog/0.png, ..."""
    for folder_name, n in layout.items():
        for i in range(n):
            write(root / folder_name / f"{i}.png", size, mode, seed=zlib.crc32(f"{folder_name}/{i}".encode()))


def error(call) -> str:
    with pytest.raises(FolderError) as info:
        call()
    return str(info.value)


# ---- the index ----------------------------------------------------------------------------------------


def test_labels_come_from_the_sorted_class_folders_and_files_are_sorted(tmp_path):
    root = tmp_path / "photos"
    tree(root, {"dog": 2, "cat": 3, "Zebra": 1})
    for name in ("10.png", "9.PNG"):  # suffixes in any case; sorted as names
        write(root / "cat" / name)
    (root / "cat" / ".DS_Store").write_bytes(b"\0junk")  # hidden files and folders are skipped
    (root / ".thumbnails").mkdir()
    tree(root / "cat", {"nested": 1})  # a folder inside a class folder is skipped
    index = scan_folder(root, "photos")
    assert index.classes == ["Zebra", "cat", "dog"]
    paths, labels = index.splits["all"]
    assert list(index.splits) == ["all"]
    assert [index.name(p) for p in paths] == [
        "photos/Zebra/0.png",
        "photos/cat/0.png", "photos/cat/1.png", "photos/cat/10.png", "photos/cat/2.png", "photos/cat/9.PNG",
        "photos/dog/0.png", "photos/dog/1.png",
    ]  # fmt: skip
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 1, 1, 1, 1, 2, 2]


def test_train_and_test_folders_are_the_splits_with_train_s_classes(tmp_path):
    tree(tmp_path, {"train/b": 2, "train/a": 1, "train/c": 1, "test/c": 2, "test/a": 1, "val/b": 1})
    index = scan_folder(tmp_path, "data")
    assert index.classes == ["a", "b", "c"]
    assert list(index.splits) == ["train", "val", "test"]
    assert index.splits["train"][1].tolist() == [0, 1, 1, 2]
    assert index.splits["test"][1].tolist() == [0, 2, 2]  # test may lack a class ('b')
    assert index.splits["val"][1].tolist() == [1]
    assert index.name(index.splits["test"][0][0]) == "data/test/a/0.png"


def test_a_test_class_missing_from_train_is_an_error(tmp_path):
    tree(tmp_path, {"train/cat": 1, "train/dog": 1, "test/cats": 1})
    assert error(lambda: scan_folder(tmp_path, "pets")) == (
        "class folder 'pets/test/cats' has no counterpart in 'pets/train' (its classes: 'cat', 'dog'); did you mean 'cat'?"
    )


def test_a_train_folder_without_a_test_folder_is_an_error(tmp_path):
    tree(tmp_path, {"train/cat": 1, "val/cat": 1})
    assert error(lambda: scan_folder(tmp_path, "pets")) == (
        "'pets' has a 'train' folder but no 'test' folder: give pets/train/ and pets/test/ (and optionally pets/val/), "
        "each with class folders, or put the class folders directly in 'pets'"
    )


def test_a_missing_root_is_an_error(tmp_path):
    assert error(lambda: scan_folder(tmp_path / "nope", "data/nope")) == "the image folder 'data/nope' does not exist"


def test_a_root_that_is_a_file_is_an_error(tmp_path):
    write(tmp_path / "one.png")
    assert error(lambda: scan_folder(tmp_path / "one.png", "one.png")) == (
        "'one.png' is a file, not a folder of class folders (one.png/<class>/<image>)"
    )


def test_a_root_without_class_folders_is_an_error(tmp_path):
    write(tmp_path / "loose.png")  # images must sit in class folders
    (tmp_path / ".git").mkdir()
    assert error(lambda: scan_folder(tmp_path, "photos/")) == (
        "'photos' has no class folders: expected photos/<class>/<image>, e.g. photos/cat/1.png"
    )


def test_an_empty_class_folder_is_an_error(tmp_path):
    tree(tmp_path, {"cat": 1})
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / ".hidden.png").write_bytes(b"")  # only hidden files: still empty
    assert error(lambda: scan_folder(tmp_path, "photos")) == (
        "class folder 'photos/dog' has no images (expected .png, .jpg, .jpeg, .bmp or .webp files)"
    )


def test_a_non_image_file_in_a_class_folder_is_an_error(tmp_path):
    tree(tmp_path, {"train/cat": 1, "test/cat": 1})
    (tmp_path / "test" / "cat" / "notes.txt").write_text("hello")
    assert error(lambda: scan_folder(tmp_path, "photos")) == (
        "'photos/test/cat/notes.txt' is not an image (expected .png, .jpg, .jpeg, .bmp or .webp); move it out of the class folder"
    )


# ---- headers: defaults of size= and color= ------------------------------------------------------------


def test_color_and_size_are_inferred_from_the_headers(tmp_path):
    tree(tmp_path / "gray", {"a": 2}, size=(12, 12), mode="L")
    write(tmp_path / "gray" / "b" / "0.png", (12, 12), "1")
    write(tmp_path / "gray" / "b" / "1.png", (12, 12), "I;16")
    assert resolve(scan_folder(tmp_path / "gray", "gray"), None, None) == (12, "gray")
    tree(tmp_path / "rgb", {"a": 1}, size=(5, 5), mode="RGB")
    for i, mode in enumerate(("RGBA", "P")):
        write(tmp_path / "rgb" / "b" / f"{i}.png", (5, 5), mode)
    assert resolve(scan_folder(tmp_path / "rgb", "rgb"), None, None) == (5, "rgb")
    assert resolve(scan_folder(tmp_path / "rgb", "rgb"), 9, None) == (9, "rgb")


def test_mixed_gray_and_colour_images_are_an_error_unless_color_is_given(tmp_path):
    write(tmp_path / "a" / "0.png", mode="L")
    write(tmp_path / "b" / "0.png", mode="RGB")
    index = scan_folder(tmp_path, "photos")
    assert error(lambda: resolve(index, 8, None)) == (
        "the images mix gray and colour: 'photos/a/0.png' is gray (mode L), 'photos/b/0.png' is colour (mode RGB); "
        "give color=rgb or color=gray to convert them all"
    )
    assert resolve(index, None, "gray") == (8, "gray")


def test_differing_sizes_are_an_error_unless_size_is_given(tmp_path):
    write(tmp_path / "a" / "0.png", (8, 8))
    write(tmp_path / "a" / "1.png", (8, 8))
    write(tmp_path / "b" / "0.png", (10, 6))
    index = scan_folder(tmp_path, "photos")
    assert error(lambda: resolve(index, None, "rgb")) == (
        "the images differ in size: 'photos/a/0.png' is 8×8, 'photos/b/0.png' is 10×6; "
        "give size=N to resize each image's short side to N and crop its centre to N×N"
    )
    assert resolve(index, 4, None) == (4, "rgb")


def test_non_square_images_need_a_size(tmp_path):
    write(tmp_path / "a" / "0.png", (10, 6))
    assert error(lambda: resolve(scan_folder(tmp_path, "p"), None, None)) == (
        "the images are 10×6, not square (e.g. 'p/a/0.png'); give size=N to resize the short side to N and crop the centre to N×N"
    )


def test_bytes_that_are_no_image_are_an_error_naming_the_file(tmp_path):
    tree(tmp_path, {"cat": 1})
    (tmp_path / "cat" / "fake.png").write_bytes(b"this is not a png at all")
    index = scan_folder(tmp_path, "photos")
    message = (
        "cannot read 'photos/cat/fake.png': it is not an image Pillow can read (expected .png, .jpg, .jpeg, .bmp or .webp data)"
    )
    assert error(lambda: probe(index)) == message
    assert error(lambda: decode_all(index.splits["all"][0], 8, "rgb", "photos")) == message


def test_a_truncated_png_is_an_error_naming_the_file(tmp_path):
    write(tmp_path / "train" / "cat" / "0.png", (32, 32))
    write(tmp_path / "test" / "cat" / "0.png", (32, 32))
    whole = (tmp_path / "test" / "cat" / "0.png").read_bytes()
    (tmp_path / "test" / "cat" / "0.png").write_bytes(whole[: len(whole) // 2])
    index = scan_folder(tmp_path, "photos")
    assert resolve(index, None, None) == (32, "rgb")  # the header is intact
    message = error(lambda: decode_all(index.splits["test"][0], 32, "rgb", "photos"))
    assert re.fullmatch(r"cannot read 'photos/test/cat/0\.png': the file is truncated \(image file is truncated.*\)", message), (
        message
    )


# ---- decoding ------------------------------------------------------------------------------------------


def test_an_image_of_the_stored_size_is_not_resampled(tmp_path):
    pixels = write(tmp_path / "a.png", (6, 6))
    assert np.array_equal(decode_image(tmp_path / "a.png", 6, "rgb"), pixels.transpose(2, 0, 1))


@pytest.mark.parametrize("w, left", [(25, 0), (26, 1), (27, 2), (29, 2)])  # int(round((w - 24) / 2)): halves to even
def test_the_centre_crop_offsets_follow_torchvision(tmp_path, w, left):
    pixels = write(tmp_path / "a.png", (w, 24))  # short side already 24 and int(24 * w / 24) == w: no resampling
    assert np.array_equal(decode_image(tmp_path / "a.png", 24, "rgb"), pixels[:, left : left + 24].transpose(2, 0, 1))


def test_resize_takes_the_short_side_to_size_and_truncates_the_long_side(tmp_path):
    write(tmp_path / "a.png", (40, 30))  # -> 32×24 (int(24 * 40 / 30)), crop columns 4..28
    write(tmp_path / "b.png", (17, 50))  # -> 10×29 (int(10 * 50 / 17) = 29), crop rows int(round(19 / 2)) = 10..20
    expected_a = Image.open(tmp_path / "a.png").resize((32, 24), Image.Resampling.BILINEAR).crop((4, 0, 28, 24))
    expected_b = Image.open(tmp_path / "b.png").resize((10, 29), Image.Resampling.BILINEAR).crop((0, 10, 10, 20))
    assert np.array_equal(decode_image(tmp_path / "a.png", 24, "rgb"), np.asarray(expected_a).transpose(2, 0, 1))
    assert np.array_equal(decode_image(tmp_path / "b.png", 10, "rgb"), np.asarray(expected_b).transpose(2, 0, 1))
    write(tmp_path / "c.png", (16, 9))  # -> 10×6 (int(6 * 16 / 9) = int(10.67), not rounded up), crop columns 2..8
    expected_c = Image.open(tmp_path / "c.png").resize((10, 6), Image.Resampling.BILINEAR).crop((2, 0, 8, 6))
    assert np.array_equal(decode_image(tmp_path / "c.png", 6, "rgb"), np.asarray(expected_c).transpose(2, 0, 1))


@pytest.mark.parametrize("w, h, size", [(40, 30, 24), (17, 50, 10), (9, 7, 20), (64, 64, 13)])
def test_resampling_matches_torch_s_antialiased_bilinear_within_one_level(tmp_path, w, h, size):
    """An independent computation: torch's bilinear interpolate with antialias on the whole image, then
    the same crop. PIL accumulates in 8-bit fixed point and torch in float, so the two round a value
    differently now and then: at most 1 apart (measured over 400 random sizes, both directions)."""
    pixels = write(tmp_path / "a.png", (w, h))
    short, long = min(w, h), max(w, h)
    new_w, new_h = (size, int(size * long / short)) if w <= h else (int(size * long / short), size)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    resized = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = round((new_h - size) / 2), round((new_w - size) / 2)
    expected = resized[:, top : top + size, left : left + size].round().clamp(0, 255)
    got = torch.from_numpy(decode_image(tmp_path / "a.png", size, "rgb")).float()
    assert got.shape == expected.shape == (3, size, size)
    assert (got - expected).abs().max() <= 1


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
def test_decoding_equals_torchvision_resize_and_center_crop(tmp_path):
    import torchvision.transforms as T

    rng = np.random.default_rng(0)
    for trial in range(40):
        w, h = (int(v) for v in rng.integers(1, 70, 2))
        mode = ("RGB", "L", "RGBA", "P", "1")[trial % 5]
        write(tmp_path / f"{trial}.png", (w, h), mode, seed=trial)
        for size in (1, 7, 24, 33):
            for color, convert in (("rgb", "RGB"), ("gray", "L")):
                ref = np.asarray(T.CenterCrop(size)(T.Resize(size)(Image.open(tmp_path / f"{trial}.png").convert(convert))))
                ref = ref[None] if ref.ndim == 2 else ref.transpose(2, 0, 1)
                assert np.array_equal(decode_image(tmp_path / f"{trial}.png", size, color), ref), (w, h, mode, size, color)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp", ".webp", ".JPG"])
def test_every_image_suffix_is_read(tmp_path, suffix):
    write(tmp_path / "a" / f"0{suffix}", (6, 6))
    index = scan_folder(tmp_path, "p")
    assert resolve(index, None, None) == (6, "rgb")
    expected = np.asarray(Image.open(tmp_path / "a" / f"0{suffix}").convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(decode_all(index.splits["all"][0], 6, "rgb", "p")[0], expected)


def test_colour_conversions(tmp_path):
    pixels = write(tmp_path / "c.png", (4, 4))
    gray = decode_image(tmp_path / "c.png", 4, "gray")
    r, g, b = (pixels[..., i].astype(np.int64) for i in range(3))
    assert gray.shape == (1, 4, 4)
    assert np.abs(gray[0] - (299 * r + 587 * g + 114 * b) / 1000).max() <= 0.5  # ITU-R 601-2 luma, rounded
    write(tmp_path / "g.png", (4, 4), "L")
    rgb = decode_image(tmp_path / "g.png", 4, "rgb")
    assert rgb.shape == (3, 4, 4) and (rgb == rgb[:1]).all()  # gray replicated into 3 channels


def test_sixteen_bit_gray_is_scaled_to_eight_bits(tmp_path):
    wide = np.array([[0, 257], [32768, 65535]], dtype=np.uint16)  # Pillow's convert("L") would clip them to 255
    Image.fromarray(wide).save(tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").mode == "I;16"
    assert decode_image(tmp_path / "w.png", 2, "gray").tolist() == [[[0, 1], [128, 255]]]  # round(v * 255 / 65535)
    assert decode_image(tmp_path / "w.png", 2, "rgb").tolist() == [[[0, 1], [128, 255]]] * 3


def test_decode_all_is_the_stack_of_decode_image_and_is_deterministic(tmp_path):
    tree(tmp_path, {"a": 3, "b": 2}, size=(11, 9))
    paths = scan_folder(tmp_path, "p").splits["all"][0]
    cached = decode_all(paths, 8, "rgb", "p")
    assert cached.dtype == np.uint8 and cached.shape == (5, 3, 8, 8)
    assert np.array_equal(cached, np.stack([decode_image(p, 8, "rgb") for p in paths]))
    assert np.array_equal(cached, decode_all(paths, 8, "rgb", "p", workers=2))
    assert np.array_equal(decode_all(paths, 8, "gray", "p"), np.stack([decode_image(p, 8, "gray") for p in paths]))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_decode_all_reports_on_the_stream(tmp_path):
    tree(tmp_path, {"a": 3})
    paths = scan_folder(tmp_path, "p").splits["all"][0]
    plain = io.StringIO()
    decode_all(paths, 8, "rgb", "p", stream=plain)
    assert re.fullmatch(r"decoded 3 images in \d+\.\d s\n", plain.getvalue()), plain.getvalue()
    terminal = Terminal()
    decode_all(paths, 8, "rgb", "p", stream=terminal)
    assert "decoding images" in terminal.getvalue() and terminal.getvalue().endswith(" s\n")  # a tqdm bar, then the line


def test_decode_all_prints_nothing_without_a_stream(tmp_path, capsys):
    tree(tmp_path, {"a": 1})
    decode_all(scan_folder(tmp_path, "p").splits["all"][0], 8, "rgb", "p")
    assert capsys.readouterr() == ("", "")


# ---- streaming ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_the_cached_array(tmp_path, workers):
    tree(tmp_path, {"a": 7, "b": 6}, size=(10, 14))
    paths = scan_folder(tmp_path, "p").splits["all"][0]
    cached = decode_all(paths, 8, "rgb", "p")
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(3)).split(4)
    dataset = folder.FolderImages(paths, 8, "rgb", "p")
    assert len(dataset) == 13 and dataset[5].dtype == torch.uint8 and dataset[5].shape == (3, 8, 8)
    streamed = list(batches_of(dataset, list(order), workers))
    assert [len(b) for b in streamed] == [4, 4, 4, 1]
    for index, batch in zip(order, streamed):
        assert batch.dtype == torch.uint8
        assert torch.equal(batch, torch.from_numpy(cached[index.numpy()]))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_file_met_while_streaming_is_a_clean_error(tmp_path, workers):
    tree(tmp_path, {"train/a": 3, "test/a": 1})
    (tmp_path / "train" / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    paths = scan_folder(tmp_path, "photos").splits["train"][0]
    dataset = folder.FolderImages(paths, 8, "rgb", "photos")
    message = error(lambda: list(batches_of(dataset, [torch.tensor([0]), torch.tensor([2, 1])], workers)))
    assert message.startswith("cannot read 'photos/train/a/1.png': ") and "\n" not in message, message


# ---- the memory budget -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("1000", 1000), ("2GB", 2 * 2**30), ("512MB", 512 * 2**20), ("512 mb", 512 * 2**20), ("1.5GiB", 3 * 2**29),
     ("64k", 65536), ("3B", 3), (" 7 ", 7), ("0", 0)],
)  # fmt: skip
def test_the_cache_budget_comes_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv("TRICK_CACHE_BUDGET", text)
    assert cache_budget() == expected


@pytest.mark.parametrize("text", ["lots", "2XB", "-5", "1e9", "GB", "2iB"])
def test_a_bad_cache_budget_is_a_usage_error(monkeypatch, text):
    monkeypatch.setenv("TRICK_CACHE_BUDGET", text)
    with pytest.raises(TrickUsageError) as info:
        cache_budget()
    assert info.value.message == (
        f"TRICK_CACHE_BUDGET={text!r} is not a size: expected a number of bytes (2000000000) or a number with a unit "
        f"(512MB, 2GB, 1.5GiB)"
    )


def test_the_default_budget_is_a_quarter_of_memory_or_two_gib(monkeypatch):
    monkeypatch.delenv("TRICK_CACHE_BUDGET", raising=False)
    values = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 1000}
    monkeypatch.setattr(os, "sysconf", lambda name: values[name])
    assert cache_budget() == 1_024_000

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", unknown)
    assert cache_budget() == 2 * 2**30


def test_fits_counts_uint8_bytes():
    assert fits(10, 3, 32, 10 * 3 * 32 * 32)
    assert not fits(10, 3, 32, 10 * 3 * 32 * 32 - 1)
    assert fits(0, 1, 1, 0)


# ---- the generator script ----------------------------------------------------------------------------


def test_make_folder_writes_a_deterministic_folder_of_shapes(tmp_path):
    assert make_folder(tmp_path / "a") == 600
    index = scan_folder(tmp_path / "a", "shapes")
    assert index.classes == ["circle", "cross", "square", "triangle"]
    assert np.bincount(index.splits["all"][1]).tolist() == [150, 150, 150, 150]
    assert resolve(index, None, None) == (24, "rgb")
    make_folder(tmp_path / "b")
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    make_folder(tmp_path / "c", seed=1)
    assert (tmp_path / "a" / names[0]).read_bytes() != (tmp_path / "c" / names[0]).read_bytes()


def test_make_folder_can_write_train_and_test_splits(tmp_path):
    assert make_folder(tmp_path, n_per_class=8, size=12, seed=0, splits=True, classes=10) == 100
    index = scan_folder(tmp_path, "s")
    assert len(index.classes) == 10 and {s: len(p) for s, (p, _) in index.splits.items()} == {"train": 80, "test": 20}
