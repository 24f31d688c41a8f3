"""Benign reference models for a calibrated scan: fresh copies of the suspect's architecture
trained on the defender's clean data with a stated recipe, kept in a store by architecture, data
and recipe so that the next scan of the same architecture on the same data trains nothing.

The defender's data is split in two by content: the references train on one part, and every
probe (on the suspect and on the references) runs on the other, which neither has seen, as the
suspect has not seen it either.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from pydantic import ConfigDict, Field
from torch import nn

from backdoorlab.config_base import QuietDefaults
from backdoorlab.data.base import Dataset
from backdoorlab.detectors.base import canonical
from backdoorlab.errors import ConfigError, TrainingDivergedError
from backdoorlab.fingerprint import fingerprint
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.loop import fit
from backdoorlab.train.perf import prepare_model


def _default_recipe() -> TrainConfig:
    return TrainConfig(epochs=20, batch_size=64, lr=0.05, eval_every=0)


class ReferenceRecipe(QuietDefaults):
    """How a scan trains its benign references: how many, on which share of the defender's data,
    with which training recipe (SGD with momentum, cosine schedule, random crops)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    quiet = ("min_steps",)  # added after the detection pages were published

    count: int = Field(8, ge=3, le=256, description="references per architecture")
    train_share: float = Field(
        0.5, gt=0, lt=1, description="share of the clean data the references train on"
    )
    train: TrainConfig = Field(default_factory=_default_recipe)
    crop_padding: int | None = Field(
        None,
        ge=0,
        description="random crops after this much zero padding (replaces train.crop_padding); "
        "None: a 14th of the image side (2 pixels on MNIST, none on 8x8 digits)",
    )
    seed: int = Field(0, ge=0, description="reference i is initialised and trained with seed+i")
    min_steps: int | None = Field(
        None,
        ge=1,
        description="train at least this many SGD steps, adding epochs where the data is small "
        "(None: train.epochs whatever the data's size)",
    )

    def resolved(self, data: Dataset) -> ReferenceRecipe:
        """The recipe with its crop padding settled for `data`'s image size, and its epochs for
        `data`'s length where `min_steps` asks for more than `train.epochs` give."""
        pad = self.crop_padding if self.crop_padding is not None else min(data.size) // 14
        update: dict[str, int] = {"crop_padding": pad}
        if self.min_steps is not None:
            per_epoch = math.ceil(len(data) / self.train.batch_size)
            update["epochs"] = max(self.train.epochs, math.ceil(self.min_steps / per_epoch))
        return self.model_copy(update={"train": self.train.model_copy(update=update)})


class Store(Protocol):
    """Where trained references are kept (the stage cache, or a user's cache folder)."""

    def get_state(self, key: str) -> dict[str, torch.Tensor] | None: ...

    def put_state(self, key: str, state: dict[str, torch.Tensor]) -> None: ...


def digest(*parts: str | bytes | torch.Tensor) -> str:
    """sha256 over strings, bytes and tensors' contents."""
    return fingerprint(*parts, terminator=b"\0")


def architecture_key(model: nn.Module) -> str:
    """The architecture as a hash: its module tree as printed and every state entry's shape and
    dtype (two models with the same key take each other's weights)."""
    shapes = [(k, list(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    return digest(repr(model), json.dumps(shapes))


def data_key(data: Dataset) -> str:
    """The content of `data` as a hash."""
    return digest(data.images, data.labels)


def split_clean(data: Dataset, share: float) -> tuple[Dataset, Dataset]:
    """(the part the references train on, the part every probe runs on), drawn by content: the
    same data in any order splits the same way."""
    data = canonical(data)
    n = len(data)
    if n < 2:
        raise ConfigError(
            f"clean data: {n} image(s); references train on one part and the probes run on the "
            "other, so at least 2 are needed (far more for a useful verdict)"
        )
    k = min(n - 1, max(1, round(share * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(data.device)
    return data.subset(order[:k].sort().values), data.subset(order[k:].sort().values)


def fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of `model` with every module's parameters re-initialised (`reset_parameters`) from
    `seed`, every parameter trainable; the user's model is not touched."""
    twin = copy.deepcopy(model)
    covered: set[int] = set()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in twin.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in module.parameters(recurse=False))
    missed = [n for n, p in twin.named_parameters() if id(p) not in covered]
    if missed:
        raise ConfigError(
            f"references: parameter {missed[0]!r} belongs to a module without reset_parameters(), "
            "so fresh copies of this model cannot be made; give benign reference models instead"
        )
    for p in twin.parameters():
        p.requires_grad_(True)
    return twin.train()


def reference_key(arch: str, data: str, recipe: ReferenceRecipe, index: int) -> str:
    """The store key of reference `index` of an architecture trained on data by a resolved
    recipe; not of how many references the recipe asks for, so 16 references reuse 8's."""
    # crop_padding and min_steps are settled in train (crop_padding, epochs); reference i does
    # not depend on the count
    blob = recipe.model_dump_json(exclude={"crop_padding", "count", "min_steps"})
    return digest("reference", arch, data, blob, str(index))


# A reference that did not learn the task, or whose training diverged, is trained again from its
# seed at half the learning rate for twice the epochs (the same lr x steps in smaller steps), at
# most RETRIES times. The recipe's SGD at lr 0.05 was set on small CNNs with batch normalisation;
# on a LeNet without it (issue 26's SGD LeNet) it stalls at chance or diverges
# (python -m scripts.reference_accuracy).
RETRIES = 3
DIVERGED = "diverged"  # the store's entry for an attempt whose training diverged


def retry_recipe(recipe: ReferenceRecipe, attempt: int) -> ReferenceRecipe:
    """The resolved recipe of a reference's `attempt`-th training (0: the recipe itself)."""
    if attempt == 0:
        return recipe
    t = recipe.train
    update = {"lr": t.lr / 2**attempt, "epochs": t.epochs * 2**attempt}
    return recipe.model_copy(update={"train": t.model_copy(update=update)})


@dataclass
class References:
    """Trained references: the models, their store keys, how many were trained now, and the
    attempt each was kept from (0: the recipe as given; k: its k-th retry, retry_recipe)."""

    models: list[nn.Module]
    keys: list[str]
    trained: int
    attempts: list[int]


def train_references(
    model: nn.Module,
    data: Dataset,
    recipe: ReferenceRecipe,
    store: Store | None = None,
    progress: bool = True,
    learned: Callable[[nn.Module], bool] | None = None,
) -> References:
    """`recipe.count` benign references of `model`'s architecture trained on `data` (the
    references' part of the clean data), taken from `store` where kept there. A reference that
    `learned` rejects, or whose training diverges, is trained again (retry_recipe); one that no
    attempt teaches is kept from the last attempt (the scan's caution names it)."""
    arch, content = architecture_key(model), data_key(data)
    recipe = recipe.resolved(data)
    models, keys, attempts, trained = [], [], [], 0
    for i in range(recipe.count):
        kept: tuple[nn.Module, str, int] | None = None
        failure = ""
        for attempt in range(RETRIES + 1):
            tried = retry_recipe(recipe, attempt)
            key = reference_key(arch, content, tried, i)
            twin = fresh_copy(model, recipe.seed + i)
            state = store.get_state(key) if store is not None else None
            if state is not None and DIVERGED in state:  # an earlier scan's attempt diverged
                failure = "diverged in an earlier scan (kept in the store)"
                continue
            if state is not None:
                twin.load_state_dict(state)
                prepare_model(twin)  # the layout training leaves: the same kernels, same sums
            else:
                try:
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(recipe.seed + i)
                        fit(
                            twin,
                            data,
                            tried.train,
                            seed=recipe.seed + i,
                            progress=progress,
                            description=f"reference {i + 1}/{recipe.count}"
                            + (f" (retry {attempt}, lr {tried.train.lr:g})" if attempt else ""),
                        )
                except TrainingDivergedError as exc:
                    failure = str(exc)
                    if store is not None:  # a later scan skips this attempt, not train it again
                        store.put_state(key, {DIVERGED: torch.ones(1)})
                    continue
                trained += 1
                if store is not None:
                    store.put_state(key, twin.state_dict())
            kept = (twin.eval(), key, attempt)
            if learned is None or learned(twin):
                break
        if kept is None:
            raise TrainingDivergedError(
                f"reference {i + 1}: training diverged at every learning rate tried (down to "
                f"{retry_recipe(recipe, RETRIES).train.lr:g}; last: {failure}); give benign "
                "references of your own"
            )
        models.append(kept[0])
        keys.append(kept[1])
        attempts.append(kept[2])
    return References(models, keys, trained, attempts)
