"""A device-resident batch iterator with batched random crop and flip."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backdoorlab.data.base import Dataset


@dataclass(frozen=True)
class Augment:
    """Batched augmentation: random crop after zero padding of `crop_padding` px, random flip."""

    crop_padding: int = 0
    flip: bool = False

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch [B,C,H,W] (uint8 or float); the randomness comes from the CPU
        `generator`. Crop and flip only move pixels, so uint8 in gives the float result exactly."""
        b, _, h, w = x.shape
        p = self.crop_padding
        if p > 0:
            dy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            # every crop window of the zero-padded batch as a view [B,C,2p+1,2p+1,H,W]; picking
            # one window per image is a single gather of contiguous rows
            windows = F.pad(x, (p, p, p, p)).unfold(2, h, 1).unfold(3, w, 1)
            x = windows[torch.arange(b, device=x.device), :, dy, dx]
        if self.flip:
            mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x


class BatchIterator:
    """Yield (images float [0,1], labels, indices) batches of a dataset, on its device.

    Shuffling and augmentation draw from a CPU generator seeded once, so two iterators built
    with the same seed yield the same batches on any device.
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
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

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
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.data.images[idx]
            if self.augment is not None:
                x = self.augment(x, self.generator)  # on uint8: a quarter of the bytes to move
            yield x.float().div_(255), self.data.labels[idx], idx
