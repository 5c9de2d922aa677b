"""The images of a `source folder`, in memory or streamed, as the trainer reads them.

An `ImageSet` is N images uint8 [C, S, S]: decoded once and kept (`cache=memory`, 1 byte a
value), or decoded batch by batch from their files by DataLoader worker processes
(`cache=stream`). Either way the trainer sees the same values: `raw(index)` and `batches(...)`
give float32 pixels in [0, 1] (uint8 / 255), and an `ImageView` adds the normalization and the
device. The batch order is always the trainer's (drawn from its seeded generator), so seeding,
resuming and test-time augmentation are the same for both; the streamed batches are decoded
ahead by the workers while the model trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from . import folder as files


class ImageSet:
    """N images: `cached` uint8 [N, C, S, S], or `paths` decoded on demand by `workers` processes."""

    def __init__(self, paths: Sequence[Path], size: int, color: str, written: str, cached: np.ndarray | None, workers: int):
        self.paths, self.size, self.color, self.written = list(paths), size, color, written
        self.cached = None if cached is None else torch.from_numpy(cached)
        self.workers = workers
        self.channels = files.channel_count(color)

    @property
    def streamed(self) -> bool:
        return self.cached is None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), self.channels, self.size, self.size)

    def subset(self, rows: np.ndarray) -> "ImageSet":
        """The images at `rows` (a split of the set), in that order."""
        rows = np.asarray(rows, np.int64)
        cached = None if self.cached is None else self.cached.numpy()[rows]
        return ImageSet([self.paths[i] for i in rows], self.size, self.color, self.written, cached, self.workers)

    def _bytes(self, index: torch.Tensor) -> torch.Tensor:
        if self.cached is not None:
            return self.cached[index.cpu()]
        dataset = files.FolderImages(self.paths, self.size, self.color, self.written)
        return torch.stack([dataset[i] for i in index.tolist()]) if len(index) else torch.zeros((0, self.channels, self.size, self.size), dtype=torch.uint8)

    def raw(self, index: torch.Tensor) -> torch.Tensor:
        """float32 [B, C, S, S] in [0, 1] of the images at `index`."""
        return to_unit(self._bytes(index))

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """float32 [B, C, S, S] in [0, 1] per batch of indices, in order (streamed: decoded ahead
        by the worker processes)."""
        if self.cached is not None or self.workers == 0:
            for index in index_batches:
                yield self.raw(index)
            return
        dataset = files.FolderImages(self.paths, self.size, self.color, self.written)
        for chunk in files.batches_of(dataset, [b.cpu() for b in index_batches], self.workers):
            yield to_unit(chunk)

    def moments(self, per: str, batch: int = 512) -> tuple[torch.Tensor, ...]:
        """(count, Σx, Σx², min, max) in float64 over the images, per value position [C, S, S]
        (reduce over the channels' pixels for per=channel): what a normalizer is fitted from."""
        n = len(self)
        sums = torch.zeros(self.shape[1:], dtype=torch.float64)
        squares, low, high = sums.clone(), torch.full_like(sums, float("inf")), torch.full_like(sums, float("-inf"))
        for x in self.batches(list(torch.arange(n).split(batch))):
            x = x.double()
            sums += x.sum(0)
            squares += (x * x).sum(0)
            low, high = torch.minimum(low, x.amin(0)), torch.maximum(high, x.amax(0))
        return n, sums, squares, low, high


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1] (x / 255)."""
    return images.to(torch.float32).div_(255.0)


class ImageView:
    """A split's images as the trainer indexes them: `view[index]` (a tensor of row indices or
    a slice) is the float32 batch on `device`, normalized when the view has a normalizer;
    `view.batches(...)` the same for many batches, decoded ahead when streamed."""

    def __init__(self, images: ImageSet, normalizer=None, device: torch.device | str = "cpu"):
        self.images, self.normalizer, self.device = images, normalizer, torch.device(device)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.images.shape

    def to(self, device) -> "ImageView":
        normalizer = self.normalizer.to(device) if self.normalizer is not None else None
        return ImageView(self.images, normalizer, device)

    def _finish(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw.to(self.device)
        return self.normalizer(raw) if self.normalizer is not None else raw

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        elif not isinstance(index, torch.Tensor):
            index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        return self._finish(self.images.raw(index.reshape(-1)))

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        for raw in self.images.batches(index_batches):
            yield self._finish(raw)
