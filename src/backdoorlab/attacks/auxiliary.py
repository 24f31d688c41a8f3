"""A model an attack trains for itself (LC surrogate, Trojan's clean model) or loads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator
from safetensors import SafetensorError
from safetensors.torch import load_file

from backdoorlab.data.base import Dataset
from backdoorlab.errors import ConfigError
from backdoorlab.fingerprint import fingerprint
from backdoorlab.models.base import MODELS, Classifier, ModelConfig, build_model
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.hooks import Hook
from backdoorlab.train.loop import fit


class AuxiliaryModel(BaseModel):
    """Architecture, training recipe, and an optional safetensors file to load instead."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: SerializeAsAny[ModelConfig] = Field(
        default_factory=lambda: MODELS.validate({"name": "small_cnn"})
    )
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=4, lr=0.05))
    weights: str | None = Field(None, description="safetensors state dict to load, not train")
    seed: int = Field(0, ge=0, description="seed of its initialisation and batch order")

    @field_validator("model", mode="before")
    @classmethod
    def _by_name(cls, value: Any) -> Any:
        return MODELS.validate(value)


class ModelStore(Protocol):
    """Where trained auxiliary models are kept across runs (the stage cache's `auxiliary` stage)."""

    def get_state(self, key: str) -> dict[str, torch.Tensor] | None: ...

    def put_state(self, key: str, state: dict[str, torch.Tensor]) -> None: ...


def auxiliary_key(aux: AuxiliaryModel, data: Dataset) -> str:
    """sha256 of the auxiliary model's config (its class too: LC's adds the training recipe) and
    of the content of the data it trains on."""
    return fingerprint(type(aux).__name__, aux.model_dump(mode="json"), data.images, data.labels)


def auxiliary_model(
    aux: AuxiliaryModel,
    data: Dataset,
    *,
    key: str,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
    store: ModelStore | None = None,
) -> Classifier:
    """The auxiliary model: loaded from `aux.weights`, or trained on `data` with `hooks`.

    With `store`, a model trained before from the same config and data is taken from there (and
    a newly trained one is put there); pass one only when `hooks` follow from `aux` alone. It
    draws from its own seeded random stream, leaving the caller's untouched.
    """
    with torch.random.fork_rng():
        torch.manual_seed(aux.seed)
        return _obtain(aux, data, key, hooks, progress, store)


def _obtain(aux, data, key, hooks, progress, store) -> Classifier:
    model = build_model(aux.model, data.spec).to(data.device)
    key_of = auxiliary_key(aux, data) if store is not None and aux.weights is None else None
    stored = None if key_of is None else store.get_state(key_of)
    if stored is not None:
        model.load_state_dict(stored)
        return model.eval()
    if aux.weights is not None:
        path = Path(aux.weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"attack.{key}.weights: file {path} does not exist")
        try:
            state = load_file(str(path), device=str(data.device))
            model.load_state_dict(state)
        except (SafetensorError, RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"attack.{key}.weights: cannot load {path}: {first}") from None
    else:
        fit(model, data, aux.train, hooks, seed=aux.seed, progress=progress, description=key)
        if key_of is not None:
            store.put_state(key_of, model.state_dict())
    return model.eval()


def extract_weights(run_dir: str | Path, key: str, out: str | Path) -> Path:
    """Save the auxiliary model `key` (e.g. 'surrogate') stored in a run's poison.safetensors."""
    from safetensors.torch import save_file

    state = load_file(str(Path(run_dir) / "poison.safetensors"))
    prefix = f"trigger.{key}."
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not part:
        raise ConfigError(f"{run_dir} stores no '{key}' model")
    save_file(part, str(out))
    return Path(out)
