"""The random streams a run draws from one seed, each named by the offset that keeps it apart
from the others (the values are those every published number was made with: do not change).

A stream is `torch.Generator().manual_seed(stream(seed, OFFSET))`; the split of the data and
the poisoning draw from `seed` itself."""

from __future__ import annotations

CLEAN_SUBSET = 7919  # the defender's clean subset, apart from the poisoning draw
HELD_OUT_TEST = 1  # a dataset's test subsample (mnist, cifar, gtsrb)
AFT_PROBE = 1  # the images AFT watches while it fine-tunes
NC_UNLEARN = 17  # the images Neural Cleanse stamps with a reversed trigger
WANET_NOISE = 1  # WaNet's noise warps, from its grid seed
PER_CLASS = 1000  # a per-class stream: seed * PER_CLASS + class (the trigger search)
IAD_NETWORKS = (7919, 17)  # IAD's initial networks: target * 7919 + 17


def stream(seed: int, offset: int) -> int:
    """The seed of the stream `offset` of a run seeded with `seed`."""
    return seed + offset


def per_class(seed: int, k: int) -> int:
    """The seed of class `k`'s own stream (a search run once per class)."""
    return seed * PER_CLASS + k
