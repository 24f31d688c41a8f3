"""Everything a run builds before training: device, data, fitted attack, poisoned set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from backdoorlab.attacks.base import Attack, PoisonedData, build_attack
from backdoorlab.data.base import Splits, load_dataset
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.cache import POISONED_SECTIONS, StageCache, stage_key
from backdoorlab.experiment.config import ExperimentConfig
from backdoorlab.experiment.memory import check_config_memory
from backdoorlab.records.files import load_tensors
from backdoorlab.train.distributed import world


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; an unavailable device is a ConfigError. Under
    `torchrun`, CUDA means this rank's own GPU (LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: '{name}' requested but CUDA is not available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' requested but MPS is not available here")
    device = torch.device(name)
    w = world()
    if device.type == "cuda" and w.active:
        return torch.device("cuda", w.local_rank)
    return device


@dataclass
class Prepared:
    """Everything a run builds before training."""

    config: ExperimentConfig
    device: torch.device
    splits: Splits
    attack: Attack
    poisoned: PoisonedData


def prepare(
    config: ExperimentConfig,
    progress: bool = False,
    trigger_from: str | Path | None = None,
    cache: StageCache | None = None,
) -> Prepared:
    """Load the data on the run's device, build the attack, fit it and poison the training set.

    With `trigger_from` (a run folder), the attack's learned state is loaded from that run's
    poison.safetensors instead of being fitted again. With `cache`, the fitted trigger and the
    poisoned set come from its `poisoned` stage when present (and are stored there otherwise).
    """
    device = resolve_device(config.device)
    splits = load_dataset(config.dataset, config.seed)
    check_config_memory(config, splits.train.spec, len(splits.train), len(splits.test), device)
    splits = splits.to(device)
    attack = build_attack(config.attack, splits.train.spec, device)
    if trigger_from is not None:
        path = Path(trigger_from) / "poison.safetensors"
        if not path.is_file():
            raise ConfigError(f"`run_dir` {trigger_from}: holds no poison.safetensors")
        saved = load_tensors(path, device)
        return Prepared(config, device, splits, attack, restore_poison(attack, splits, saved))
    if cache is not None:  # a hit skips fitting: IAD's mask network takes minutes per fit
        key = stage_key(config, POISONED_SECTIONS)
        entry = cache.get("poisoned", key, device)
        if entry is not None:
            poisoned = restore_poison(attack, splits, entry.tensors)
            return Prepared(config, device, splits, attack, poisoned)
    attack.models = cache
    with torch.random.fork_rng():  # a hit and a miss leave the global stream alike
        attack.fit(splits.train, progress=progress)
    generator = torch.Generator().manual_seed(config.seed)
    poisoned = attack.poison(splits.train, generator)
    if cache is not None:
        stored = poison_tensors(attack, poisoned, images=attack.stores_poison)
        cache.put("poisoned", key, stored, {"count": poisoned.count})
    return Prepared(config, device, splits, attack, poisoned)


_TRIGGER = "trigger."


def poison_tensors(
    attack: Attack, poisoned: PoisonedData, images: bool = False
) -> dict[str, torch.Tensor]:
    """The attack's state (as trigger.*) and the poisoning bookkeeping as tensors; with `images`,
    the poisoned training images and labels too (a run's poison.safetensors has no images)."""
    tensors = {f"{_TRIGGER}{k}": v for k, v in attack.state().items()}
    tensors.update(indices=poisoned.indices, original_labels=poisoned.original_labels)
    if poisoned.cross is not None:
        tensors["cross"] = poisoned.cross
    if images:
        tensors.update(images=poisoned.data.images, labels=poisoned.data.labels)
    return tensors


def restore_poison(
    attack: Attack, splits: Splits, tensors: dict[str, torch.Tensor]
) -> PoisonedData:
    """Load what `poison_tensors` stored into `attack`; the poisoned set (the clean training set
    with the bookkeeping where no images were stored)."""
    attack.load_state({k[len(_TRIGGER) :]: v for k, v in tensors.items() if k.startswith(_TRIGGER)})
    data = splits.train
    if "images" in tensors:
        data = data.with_data(tensors["images"], tensors["labels"])
    return PoisonedData(data, tensors["indices"], tensors["original_labels"], tensors.get("cross"))
