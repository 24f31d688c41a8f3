"""A device-resident batch iterator with batched random crop and flip."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from backdoorlab.data.base import Dataset
from backdoorlab.errors import ConfigError


@dataclass(frozen=True)
class Augment:
    """Batched augmentation: random crop after zero padding of `crop_padding` px, random flip."""

    crop_padding: int = 0
    flip: bool = False

    def draw(self, b: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The random choices for a batch of `b` images (crop offsets, flip mask), from the CPU
        `generator`; rows of them can be given to `apply` with the matching images."""
        p = self.crop_padding
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator) if p > 0 else None
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator) if p > 0 else None
        flip = torch.rand(b, generator=generator) < 0.5 if self.flip else None
        return dy, dx, flip

    def apply(self, x: torch.Tensor, choices: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        """Augment a batch [B,C,H,W] (uint8 or float) with drawn `choices`. Crop and flip only
        move pixels, so uint8 in gives the float result exactly."""
        return self.gather(self.source(x), torch.arange(len(x), device=x.device), choices)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch [B,C,H,W] with choices drawn from `generator`."""
        return self.apply(x, self.draw(len(x), generator))

    def source(self, images: torch.Tensor) -> torch.Tensor:
        """Every crop window of every image, and of its mirror image, as one strided view
        [F,N,C,2p+1,2p+1,H,W] (F = 2 with flip) over a padded copy made once; `gather` then
        augments a batch in a single indexing pass."""
        p, (n, c, h, w) = self.crop_padding, images.shape
        stack = images.new_empty(2 if self.flip else 1, n, c, h + 2 * p, w + 2 * p)
        padded = stack[0]
        if p > 0:
            padded.zero_()
        padded[:, :, p : p + h, p : p + w] = images
        if self.flip:  # flipping rows of a 2-D view runs several times faster than dim 3 of 4
            stack[1] = padded.view(-1, w + 2 * p).flip(1).view_as(padded)
        return stack.unfold(3, h, 1).unfold(4, w, 1)

    def gather(
        self, source: torch.Tensor, idx: torch.Tensor, choices: tuple[torch.Tensor | None, ...]
    ) -> torch.Tensor:
        """`apply(images[idx], choices)`, read from `source(images)`."""
        dy, dx, flip = choices
        zero = torch.zeros(len(idx), dtype=torch.int64)
        dy = zero if dy is None else dy
        dx = zero if dx is None else dx
        if flip is None:
            side = zero
        else:
            side = flip.long()
            # the mirror of the crop at dx is the crop of the mirrored image at 2p - dx
            dx = torch.where(flip, 2 * self.crop_padding - dx, dx)
        picks = torch.stack([side, dy, dx]).to(source.device)
        return source[picks[0], idx, :, picks[1], picks[2]]


class BatchIterator:
    """Yield (images float [0,1], labels, indices) batches of a dataset, on its device.

    Shuffling and augmentation draw from a CPU generator seeded once, so two iterators built
    with the same seed yield the same batches on any device. With `shard=(rank, size)` each
    global batch is dealt out over `size` ranks and this iterator yields rank `rank`'s share
    (the same images, with the same augmentation, as the unsharded batch's rows `rank::size`);
    a last batch that does not divide evenly is topped up from the epoch's first images, so
    every rank takes the same number of equal steps. With augmentation, a padded (and mirrored)
    uint8 copy of the images is made at the first epoch and read by every later one: the images
    must not change while the iterator is in use.
    """

    def __init__(
        self,
        data: Dataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        rank, size = shard
        if not 0 <= rank < size:
            raise ValueError(f"shard rank {rank} is not in 0..{size - 1}")
        if batch_size % size:
            raise ConfigError(
                f"batch size {batch_size} does not split evenly over {size} processes (every "
                "batch_size of a run is the global batch: choose multiples of the process count)"
            )
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.rank, self.size = rank, size
        self._source: torch.Tensor | None = None
        self.choices: tuple[torch.Tensor | None, ...] | None = None  # of the last batch

    def reaugment(
        self, choices: tuple[torch.Tensor | None, ...] | None
    ) -> Callable[[torch.Tensor, slice], torch.Tensor] | None:
        """A function giving images the augmentation `choices` drew for rows of a batch."""
        if choices is None or self.augment is None:
            return None
        augment = self.augment

        def apply(x: torch.Tensor, rows: slice) -> torch.Tensor:
            return augment.apply(x, tuple(None if c is None else c[rows] for c in choices))

        return apply

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        device = self.data.device
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(device)
        else:
            order = torch.arange(n, device=device)
        if self.augment is not None and self._source is None:
            self._source = self.augment.source(self.data.images)  # once per iterator (per fit)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            choices = self.augment.draw(len(idx), self.generator) if self.augment else None
            if self.size > 1:
                # top up with the epoch's first images (and this batch's first choices)
                short = -len(idx) % self.size
                mine = slice(self.rank, None, self.size)
                rows = torch.cat([torch.arange(len(idx)), torch.arange(short)])[mine]
                idx = torch.cat([idx, order[:short]])[mine]
                if choices is not None:
                    choices = tuple(None if c is None else c[rows] for c in choices)
            self.choices = choices
            if choices is None:
                x = self.data.images[idx]
            else:  # one gather from the uint8 windows: crop and flip in the same pass
                x = self.augment.gather(self._source, idx, choices)
            yield x.div(255), self.data.labels[idx], idx  # uint8 / 255: float32, one pass
