"""Image folders: `source folder PATH`, the layout of torchvision's `ImageFolder`.

`PATH/<class>/<image>`, labels the indices of the sorted class folder names; when `PATH/train/`
and `PATH/test/` exist (and optionally `PATH/val/`) they are the splits, each holding class
folders. `scan_folder` lists the files, `probe` reads the headers (the defaults of `size` and
`color`), `decode_all` decodes everything into one uint8 array (the in-memory cache) and
`FolderImages` with `batches_of` streams the same pixels batch by batch through a torch
`DataLoader`. A problem with the data is a `FolderError` naming the file as the user would
write it (`photos/cat/3.png`); `sources.py` turns it into an error at the `source` clause.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..dsl.diagnostics import TrickUsageError, did_you_mean

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")  # compared lower-cased
SPLITS = ("train", "val", "test")
# Modes without colour; every other mode (RGB, RGBA, P, CMYK, YCbCr, ...) counts as colour.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WIDE_GRAY = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})  # 16-bit gray (PNG), scaled to 8 bits
_SUFFIX_LIST = ".png, .jpg, .jpeg, .bmp or .webp"
_DEFAULT_BUDGET = 2 * 2**30


class FolderError(ValueError):
    """A problem with an image folder's data; the message names the file and what is wrong."""


@dataclass
class FolderIndex:
    """The files of an image folder: per split ("train"/"val"/"test", or "all" without split
    folders) the image paths, sorted by class then by file name, and their int64 labels, the
    index of the class folder's name in `classes` (sorted; the training split's)."""

    root: Path
    written: str  # the root as the user wrote it, for messages
    classes: list[str]
    splits: dict[str, tuple[list[Path], np.ndarray]]

    def name(self, path: Path) -> str:
        """`path` as the user would write it: 'photos/cat/3.png'."""
        return _joined(self.written, path.relative_to(self.root).as_posix())


def _joined(written: str, rel: str) -> str:
    prefix = written.rstrip("/\\")
    return rel if prefix in ("", ".") else f"{prefix}/{rel}"


@functools.lru_cache(maxsize=64)
def _has_split_folders(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def display_name(path: Path, written: str) -> str:
    """An image path from `scan_folder` as the user would write it, given the root as written:
    the root, then the split folder (in a train/test layout), the class folder and the file."""
    parts = Path(path).parts
    keep = 3 if len(parts) >= 4 and parts[-3] in SPLITS and _has_split_folders(Path(path).parents[2]) else 2
    return _joined(written, "/".join(parts[-keep:]))


# ---- the index ----------------------------------------------------------------------------------------


def scan_folder(root: Path, written: str) -> FolderIndex:
    """List an image folder. Hidden entries (a name starting with '.') and folders inside a
    class folder are skipped; any other file must have an image suffix (IMAGE_SUFFIXES, in
    any case). Errors: a missing root, a root without class folders, an empty class folder,
    a non-image file, a split layout that is incomplete or has a class unknown to train."""
    root, written = Path(root), written.rstrip("/\\") or written
    if not root.exists():
        raise FolderError(f"the image folder '{written}' does not exist")
    if not root.is_dir():
        raise FolderError(f"'{written}' is a file, not a folder of class folders ({written}/<class>/<image>)")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        classes, files = _scan_classes(root, written)
        paths, labels = _flatten(classes, files, classes)
        return FolderIndex(root, written, classes, {"all": (paths, labels)})
    if "train" not in present or "test" not in present:
        missing = " and ".join(f"'{s}'" for s in ("train", "test") if s not in present)
        raise FolderError(
            f"'{written}' has a '{present[0]}' folder but no {missing} folder: give {written}/train/ and {written}/test/ "
            f"(and optionally {written}/val/), each with class folders, or put the class folders directly in '{written}'"
        )
    scanned = {s: _scan_classes(root / s, _joined(written, s)) for s in SPLITS if s in present}
    classes = scanned["train"][0]
    splits = {}
    for split, (names, files) in scanned.items():
        for name in names:
            if name not in classes:
                hint, _ = did_you_mean(name, classes)
                raise FolderError(
                    f"class folder '{_joined(written, f'{split}/{name}')}' has no counterpart in '{_joined(written, 'train')}' "
                    f"(its classes: {_quoted(classes)}){hint}"
                )
        splits[split] = _flatten(names, files, classes)
    return FolderIndex(root, written, classes, splits)


def _scan_classes(folder: Path, written: str) -> tuple[list[str], dict[str, list[Path]]]:
    """The sorted class folder names of `folder` and each one's sorted image files."""
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise FolderError(
            f"'{written}' has no class folders: expected {_joined(written, '<class>/<image>')}, e.g. {_joined(written, 'cat/1.png')}"
        )
    files = {}
    for name in names:
        with os.scandir(folder / name) as entries:
            found = sorted(e.name for e in entries if not e.name.startswith(".") and not e.is_dir())
        for f in found:
            if os.path.splitext(f)[1].lower() not in IMAGE_SUFFIXES:
                raise FolderError(
                    f"'{_joined(written, f'{name}/{f}')}' is not an image (expected {_SUFFIX_LIST}); move it out of the class folder"
                )
        if not found:
            raise FolderError(f"class folder '{_joined(written, name)}' has no images (expected {_SUFFIX_LIST} files)")
        files[name] = [folder / name / f for f in found]
    return names, files


def _flatten(names: list[str], files: dict[str, list[Path]], classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths = [p for name in names for p in files[name]]
    labels = np.concatenate([np.full(len(files[name]), classes.index(name), np.int64) for name in names])
    return paths, labels


def _quoted(names: Sequence[str], most: int = 12) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# ---- headers: the defaults of size= and color= ------------------------------------------------------


class Probe(NamedTuple):
    """What the image headers say: the first file of each kind ("gray"/"rgb") with its mode,
    and the first file of each size (w, h)."""

    kinds: dict[str, tuple[Path, str]]
    sizes: dict[tuple[int, int], Path]


def probe(index: FolderIndex) -> Probe:
    """Read every image's header (Pillow opens lazily: no pixels are decoded). A file that
    Pillow cannot identify is a FolderError."""
    kinds: dict[str, tuple[Path, str]] = {}
    sizes: dict[tuple[int, int], Path] = {}
    for paths, _ in index.splits.values():
        for path in paths:
            try:
                with Image.open(path) as im:
                    mode, size = im.mode, im.size
            except Exception as e:  # noqa: BLE001 - Pillow raises many kinds on bad bytes
                raise FolderError(f"cannot read '{index.name(path)}': {_why(e)}") from None
            kinds.setdefault("gray" if mode in GRAY_MODES else "rgb", (path, mode))
            sizes.setdefault(size, path)
    return Probe(kinds, sizes)


def infer_color(found: Probe, index: FolderIndex) -> str:
    """The colour: "gray" when every image is gray, "rgb" when every image has colour; else a FolderError."""
    if len(found.kinds) == 1:
        return next(iter(found.kinds))
    (gray, gray_mode), (rgb, rgb_mode) = found.kinds["gray"], found.kinds["rgb"]
    raise FolderError(
        f"the images mix gray and colour: '{index.name(gray)}' is gray (mode {gray_mode}), '{index.name(rgb)}' is "
        f"colour (mode {rgb_mode}); give color=rgb or color=gray to convert them all"
    )


def infer_size(found: Probe, index: FolderIndex) -> int:
    """The side of the images when all share one square size; else a FolderError."""
    (w, h), first = next(iter(found.sizes.items()))
    if len(found.sizes) > 1:
        (w2, h2), second = list(found.sizes.items())[1]
        raise FolderError(
            f"the images differ in size: '{index.name(first)}' is {w}×{h}, '{index.name(second)}' is {w2}×{h2}; "
            f"give size=N to resize each image's short side to N and crop its centre to N×N"
        )
    if w != h:
        raise FolderError(
            f"the images are {w}×{h}, not square (e.g. '{index.name(first)}'); give size=N to resize the short side "
            f"to N and crop the centre to N×N"
        )
    return w


def resolve(index: FolderIndex, size: int | None, color: str | None) -> tuple[int, str]:
    """`size` and `color` with their defaults filled in from the headers (read only when one
    is None): (side, "rgb" | "gray")."""
    if size is not None and color is not None:
        return size, color
    found = probe(index)
    return (size if size is not None else infer_size(found, index)), (color if color is not None else infer_color(found, index))


# ---- decoding -------------------------------------------------------------------------------------------


def channel_count(color: str) -> int:
    """3 for "rgb", 1 for "gray"."""
    return 3 if color == "rgb" else 1


def decode_image(path: Path, size: int, color: str, name: str | None = None) -> np.ndarray:
    """One image as uint8 [C, size, size] (C = 3 for "rgb", 1 for "gray"), as torchvision's
    `Resize(size)` then `CenterCrop(size)` give on the PIL image converted by PIL's
    `convert("RGB")` / `convert("L")` (L = 0.299 R + 0.587 G + 0.114 B; alpha is dropped, so
    transparent pixels keep the colour stored under them, as ImageFolder's loader does;
    16-bit gray is scaled to 8 bits). A file that cannot be decoded (truncated, damaged, not
    an image) is a FolderError naming it (`name`, else the path)."""
    try:
        return _decode(path, size, color)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - OSError (truncated), SyntaxError (broken PNG), ValueError, zlib.error...
        raise FolderError(f"cannot read '{name or path}': {_why(e)}") from None


single_image = decode_image  # `trickc predict` on one file: the same pixels as training saw


def _decode(path: Path, size: int, color: str) -> np.ndarray:
    with Image.open(path) as im:
        im.load()  # decode now, inside the caller's try: a truncated file raises OSError here
        im = _convert(im, "L" if color == "gray" else "RGB")
        im = _resize_center_crop(im, size)
        pixels = np.asarray(im, dtype=np.uint8)
    # [H, W] or [H, W, 3] -> [C, H, W]
    return pixels[None].copy() if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _convert(im: Image.Image, target: str) -> Image.Image:
    if im.mode in _WIDE_GRAY:  # convert("L") would clip 16-bit values at 255; scale v -> round(v * 255 / 65535)
        wide = np.clip(np.asarray(im, dtype=np.int64), 0, 65535)
        im = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif im.mode == "P":  # through RGBA: same colours, and no warning about palette transparency
        im = im.convert("RGBA")
    return im if im.mode == target else im.convert(target)


def _resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """torchvision's Resize(size) on a PIL image (short side to `size`, long side
    int(size * long / short), PIL's antialiased bilinear; untouched when already that size),
    then CenterCrop(size) (offsets int(round((h - size) / 2)), likewise for w)."""
    w, h = im.size
    if (w, h) == (size, size):
        return im
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new = (size, new_long) if w <= h else (new_long, size)
    if new != (w, h):
        im = im.resize(new, Image.Resampling.BILINEAR)
    w, h = im.size
    if (w, h) == (size, size):
        return im
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)  # Python rounds halves to even, as torchvision does
    return im.crop((left, top, left + size, top + size))


def _why(err: BaseException) -> str:
    """What is wrong with a file, from Pillow's exception, in one short line."""
    text = (str(err).strip().splitlines() or [""])[0][:160]
    if isinstance(err, UnidentifiedImageError):
        return f"it is not an image Pillow can read (expected {_SUFFIX_LIST} data)"
    if "truncated" in text:
        return f"the file is truncated ({text})"
    return f"the file is damaged or not an image ({text or type(err).__name__})"


class FolderImages(Dataset):
    """The images of `paths`, decoded on demand: item i is uint8 [C, size, size], the same
    bytes as row i of `decode_all(paths, ...)`. `written` (the root as the user wrote it)
    names a bad file in the error."""

    def __init__(self, paths: Sequence[Path], size: int, color: str, written: str = ""):
        self.paths, self.size, self.color, self.written = list(paths), size, color, written

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.paths[i]
        try:
            return torch.from_numpy(_decode(path, self.size, self.color))
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - see decode_image
            raise FolderError(f"cannot read '{display_name(path, self.written)}': {_why(e)}") from None


class _Caught(Dataset):
    """A dataset whose FolderError comes back as the item, so that a DataLoader worker hands
    the error itself to the main process (its own re-raise would paste a traceback into the
    message)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            return self.dataset[i]
        except FolderError as e:
            return e


def _stack(items: list) -> torch.Tensor | FolderError:
    for item in items:
        if isinstance(item, FolderError):
            return item
    return torch.stack(items)


def batches_of(dataset: Dataset, batches: Sequence[torch.Tensor], workers: int) -> Iterator[torch.Tensor]:
    """One uint8 tensor [B, C, size, size] per index batch of `batches`, in order, decoded by
    a DataLoader with `workers` processes (0: in this process). The order is the caller's,
    so seeding and resuming stay with the trainer."""
    sampler = [b.tolist() if isinstance(b, torch.Tensor) else list(b) for b in batches]
    # Its own generator: a DataLoader with workers otherwise draws its base seed from torch's
    # global generator, which would change the model's initialization and dropout masks.
    loader = DataLoader(_Caught(dataset), batch_sampler=sampler, num_workers=workers, collate_fn=_stack, generator=torch.Generator())
    for batch in loader:
        if isinstance(batch, FolderError):
            raise batch
        yield batch


def decode_all(index_paths: Sequence[Path], size: int, color: str, written: str, stream: TextIO | None = None,
               workers: int = 0) -> np.ndarray:  # fmt: skip
    """Every image of `index_paths`, decoded: uint8 [N, C, size, size] (see decode_image).
    With `workers` > 0 the files are decoded by that many DataLoader worker processes. On a
    terminal `stream` a progress bar shows while decoding; then one line, 'decoded 20,000
    images in 12.3 s', goes to `stream` (nothing when it is None)."""
    n = len(index_paths)
    out = np.empty((n, channel_count(color), size, size), np.uint8)
    start = time.perf_counter()
    bar = None
    if stream is not None and n and getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        bar = tqdm(total=n, desc="decoding images", unit="img", file=stream, leave=False, dynamic_ncols=True)
    dataset = FolderImages(index_paths, size, color, written)
    chunk = 64  # images per progress update; per worker task, 256 (smaller ones cost more in passing than they save)
    done = 0
    try:
        if workers > 0:
            for batch in batches_of(dataset, torch.arange(n).split(4 * chunk), workers):
                out[done : done + len(batch)] = batch.numpy()
                done += len(batch)
                if bar is not None:
                    bar.update(len(batch))
        else:
            for i in range(n):
                out[i] = dataset[i].numpy()
                if bar is not None and (i + 1) % chunk == 0:
                    bar.update(chunk)
    finally:
        if bar is not None:
            bar.close()
    if stream is not None:
        print(f"decoded {n:,} images in {time.perf_counter() - start:.1f} s", file=stream, flush=True)
    return out


# ---- the memory budget of the decoded cache -------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_BYTES = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'2GB' -> 2 * 2**30: a number of bytes, or one with a unit K, M, G or T (powers of 1024,
    written K, KB or KiB, in any case)."""
    match = _BYTES.fullmatch(text)
    if not match or (match.group(3) and match.group(3).lower() == "ib" and not match.group(2)):
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def cache_budget() -> int:
    """Bytes the decoded uint8 images may take in memory: $TRICK_CACHE_BUDGET (e.g. 2GB,
    512MB, 1000000), else a quarter of the physical memory (2 GiB where that is unknown)."""
    text = os.environ.get("TRICK_CACHE_BUDGET", "")
    if text.strip():
        try:
            return parse_bytes(text)
        except ValueError:
            raise TrickUsageError(
                f"TRICK_CACHE_BUDGET={text!r} is not a size: expected a number of bytes (2000000000) or a number "
                f"with a unit (512MB, 2GB, 1.5GiB)"
            ) from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (AttributeError, ValueError, OSError):
        return _DEFAULT_BUDGET


def fits(n: int, channels: int, size: int, budget: int) -> bool:
    """Whether n uint8 images [channels, size, size] fit in `budget` bytes."""
    return n * channels * size * size <= budget
