"""The attack interface: a trigger, target labels, and a vectorised poisoning policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator

from backdoorlab.config_base import Section
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.errors import ConfigError
from backdoorlab.registry import Registry
from backdoorlab.train.hooks import Hook


class AttackConfig(Section):
    """Options every attack accepts: target, poison rate and its denominator, label policy."""

    target: int = Field(0, ge=0, description="target class (all-to-one)")
    rate: float = Field(0.1, gt=0, le=1, description="poison rate, see rate_of")
    rate_of: Literal["dataset", "target_class"] = Field(
        "dataset", description="denominator of the rate: whole training set or target class"
    )
    label_mode: Literal["dirty", "clean"] = Field(
        "dirty", description="dirty: relabel to the target; clean: poison target-class images only"
    )
    mode: Literal["all-to-one", "all-to-all"] = Field(
        "all-to-one", description="all-to-all: target of class y is (y+1) mod K"
    )
    control: Literal["data", "training"] = Field(
        "data",
        description="threat model: data (a stored poisoned set the defender trains on) or "
        "training (the attacker trains the model with its own procedure)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AttackConfig:
        if self.mode == "all-to-all" and (self.label_mode == "clean" or self.rate_of != "dataset"):
            raise ValueError("all-to-all needs label_mode 'dirty' and rate_of 'dataset'")
        return self


@dataclass
class PoisonedData:
    """A training set after poisoning, with the bookkeeping needed to audit it.

    `indices` are the backdoor samples (triggered, relabelled if dirty); `cross` the samples an
    attack changed but left with their true labels (WaNet's noise mode, IAD's cross samples).
    """

    data: Dataset
    indices: torch.Tensor
    original_labels: torch.Tensor
    cross: torch.Tensor | None = None

    @property
    def count(self) -> int:
        return int(self.indices.numel())

    @classmethod
    def untouched(cls, data: Dataset) -> PoisonedData:
        """The training set as it is, with no poisoned sample recorded."""
        empty = torch.zeros(0, dtype=torch.int64, device=data.device)
        return cls(data, empty, empty.clone())

    def mask(self) -> torch.Tensor:
        """Boolean [N]: which training samples are poisoned."""
        m = torch.zeros(len(self.data), dtype=torch.bool, device=self.data.device)
        m[self.indices.to(self.data.device)] = True
        return m

    def touched(self) -> torch.Tensor:
        """Indices of every sample the attack changed: backdoor and cross samples."""
        if self.cross is None or not self.cross.numel():
            return self.indices
        return torch.cat([self.indices, self.cross.to(self.indices.device)])


def check_control(cfg: AttackConfig, controls: tuple[str, ...]) -> None:
    """One ConfigError line when the attack does not implement the threat model `cfg` asks for."""
    if cfg.control not in controls:
        raise ConfigError(
            f"attack.control: '{cfg.control}' is not implemented by attack '{cfg.name}' "
            f"(it supports: {', '.join(controls)})"
        )


ATTACKS: Registry = Registry("attack", AttackConfig)
register_attack = ATTACKS.register


class Attack:
    """A backdoor attack on [0,1] image batches of a dataset described by `spec`.

    Subclasses implement `trigger`; poisoning, target labels and evaluation sets are shared.
    """

    Config = AttackConfig
    plants_backdoor = True  # False for the no-attack baseline: ASR/RA are then undefined
    # threat models the attack implements: 'training' only where the original attack has a
    # training procedure of its own (WaNet's and IAD's per-batch poisoning)
    controls: tuple[str, ...] = ("data",)

    def __init__(self, cfg: AttackConfig, spec: InputSpec, device: torch.device | str = "cpu"):
        check_control(cfg, self.controls)
        if cfg.target >= spec.num_classes:
            raise ConfigError(
                f"attack.target: class {cfg.target} does not exist in a dataset with "
                f"{spec.num_classes} classes (0..{spec.num_classes - 1})"
            )
        self.cfg = cfg
        self.spec = spec
        self.device = torch.device(device)
        # set by the runner: auxiliary models (LC's surrogate, Trojan's clean model) shared
        # across runs by their own config (attacks.auxiliary.ModelStore)
        self.models = None

    # -- the trigger -------------------------------------------------------------------------
    def fit(self, data: Dataset, *, progress: bool = False) -> None:
        """Prepare the trigger from clean training data (surrogate, inversion); default: none."""

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        """Triggered images [B,C,H,W] in [0,1] from clean ones."""
        raise NotImplementedError

    def poison_trigger(self, x: torch.Tensor) -> torch.Tensor:
        """The trigger stamped on training images (the test trigger unless an attack differs)."""
        return self.trigger(x)

    def target_labels(self, y: torch.Tensor) -> torch.Tensor:
        """The labels the backdoor should produce for true labels `y`."""
        if self.cfg.mode == "all-to-all":
            return (y + 1) % self.spec.num_classes
        return torch.full_like(y, self.cfg.target)

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Triggered images (clipped to [0,1]) and their target labels."""
        return self.trigger(x).clamp(0, 1), self.target_labels(y)

    def asr_mask(self, y: torch.Tensor) -> torch.Tensor:
        """Which test samples count for ASR/RA: non-target ones (all-to-one) or all."""
        if self.cfg.mode == "all-to-all":
            return torch.ones_like(y, dtype=torch.bool)
        return y != self.cfg.target

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors that define the trigger, saved with the run (pattern, mask, key...)."""
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state` saved (for attacks whose trigger is learned or random)."""

    @property
    def stores_poison(self) -> bool:
        """True when the attack's whole effect is the stored poisoned set (data control)."""
        return self.cfg.control == "data"

    def training_hooks(self) -> list[Hook]:
        """The attacker's own training procedure (training control only; e.g. WaNet, IAD)."""
        return []

    # -- poisoning ---------------------------------------------------------------------------
    def candidates(self, labels: torch.Tensor) -> torch.Tensor:
        """Indices that may be poisoned under the label policy."""
        if self.cfg.label_mode == "clean":
            return torch.nonzero(labels == self.cfg.target).flatten()
        if self.cfg.mode == "all-to-one":
            return torch.nonzero(labels != self.cfg.target).flatten()
        return torch.arange(len(labels), device=labels.device)

    def poison_count(self, labels: torch.Tensor) -> int:
        """How many samples to poison: rate x (training-set size or target-class size)."""
        if self.cfg.rate_of == "target_class":
            denominator = int((labels == self.cfg.target).sum())
        else:
            denominator = len(labels)
        return round(self.cfg.rate * denominator)

    def select(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The sorted indices to poison, drawn from the candidates by `generator`."""
        pool = self.candidates(labels)
        n = self.poison_count(labels)
        if n < 1:
            raise ConfigError(f"attack.rate: {self.cfg.rate} poisons no sample of this dataset")
        if n > len(pool):
            raise ConfigError(
                f"attack.rate: {self.cfg.rate} of the {self.cfg.rate_of} asks for {n} poisoned "
                f"samples but only {len(pool)} are eligible ({self.cfg.label_mode}-label)"
            )
        pick = torch.randperm(len(pool), generator=generator)[:n].to(pool.device)
        return pool[pick].sort().values

    def poison(self, data: Dataset, generator: torch.Generator) -> PoisonedData:
        """A copy of `data` with the selected samples triggered (and relabelled if dirty)."""
        if not self.stores_poison:
            return PoisonedData.untouched(data)
        idx = self.select(data.labels, generator)
        original = data.labels[idx].clone()
        images = data.images.clone()
        labels = data.labels.clone()
        store_changed(images, idx, data, self.poison_trigger)
        cross = self.stamp_cross(images, data, idx, generator)
        if self.cfg.label_mode == "dirty":
            labels[idx] = self.target_labels(original)
        return PoisonedData(data.with_data(images, labels), idx, original, cross)

    def stamp_cross(
        self, images: torch.Tensor, data: Dataset, idx: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor | None:
        """Change further samples of `images` (not `idx`) that keep their true labels, and
        return their indices; none by default (WaNet's noise mode and IAD's cross samples)."""
        return None


STAMP_CHUNK = 1024  # images converted to float at a time while a stored set is poisoned


def store_changed(
    images: torch.Tensor,
    idx: torch.Tensor,
    data: Dataset,
    change: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """images[idx] = change(data's [0,1] images at idx), clipped and stored as uint8, in chunks."""
    for part in idx.split(STAMP_CHUNK):
        with torch.no_grad():
            x = change(data.floats(part)).clamp(0, 1)
        images[part] = x.mul(255).round_().to(torch.uint8)


def others(n: int, taken: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` sorted indices of 0..n-1 outside `taken`, drawn by `generator`."""
    free = torch.ones(n, dtype=torch.bool)
    free[taken.cpu()] = False
    pool = free.nonzero().squeeze(1)
    if count > len(pool):
        raise ConfigError(f"{count} samples asked for, but only {len(pool)} remain free")
    pick = pool[torch.randperm(len(pool), generator=generator)[:count]]
    return pick.sort().values.to(taken.device)


def build_attack(cfg: AttackConfig, spec: InputSpec, device: torch.device | str = "cpu") -> Attack:
    """Construct the attack that `cfg` names."""
    return ATTACKS.get(cfg.name)(cfg, spec, device)
