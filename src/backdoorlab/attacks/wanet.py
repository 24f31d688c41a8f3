"""WaNet (Nguyen & Tran 2021): an imperceptible warping field, stored or poisoned per batch."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from backdoorlab.attacks.base import (
    Attack,
    AttackConfig,
    others,
    register_attack,
    store_changed,
)
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.errors import ConfigError
from backdoorlab.seeds import WANET_NOISE, stream
from backdoorlab.train.hooks import Batch, Hook


class WaNetConfig(AttackConfig):
    rate: float = Field(
        0.1, gt=0, lt=1, description="pc: share warped and relabelled (of the set or each batch)"
    )
    label_mode: Literal["dirty"] = "dirty"
    k: int = Field(4, ge=2, description="side of the random control grid")
    s: float = Field(0.5, gt=0, description="warping strength")
    grid_rescale: float = Field(1.0, gt=0)
    cross_ratio: float = Field(2.0, ge=0, description="noise-mode samples per backdoor sample")
    grid_seed: int = Field(0, description="seed of the fixed warping field")

    @model_validator(mode="after")
    def _per_batch(self) -> WaNetConfig:
        if self.rate_of != "dataset":
            raise ValueError("WaNet's rate is a share of the training set (rate_of: dataset)")
        if self.rate * (1 + self.cross_ratio) > 1:
            raise ValueError("rate * (1 + cross_ratio) must not exceed 1")
        return self


def identity_grid(h: int, w: int) -> torch.Tensor:
    """The [1,H,W,2] sampling grid that grid_sample (align_corners=True) maps to the input."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack((xs, ys), dim=-1)[None]


@register_attack("wanet", config=WaNetConfig)
class WaNet(Attack):
    """grid = clamp(identity + s * upsample(noise k x k) / H, -1, 1); x' = grid_sample(x, grid).

    Data control: a stored set with `rate` of the samples warped and relabelled and
    `cross_ratio` times as many noise-warped with their true labels. Training control: the
    original procedure, the same shares of every batch, warped before augmentation.
    """

    controls = ("data", "training")

    def __init__(self, cfg: WaNetConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        h, w = spec.size
        if cfg.k > min(h, w):
            raise ConfigError(
                f"attack.k: a control grid of {cfg.k} is finer than the {h}x{w} images"
            )
        g = torch.Generator().manual_seed(cfg.grid_seed)
        ins = torch.rand(1, 2, cfg.k, cfg.k, generator=g) * 2 - 1
        ins = ins / ins.abs().mean()
        noise = F.interpolate(ins, size=(h, w), mode="bicubic", align_corners=True)
        self.noise_grid = noise.permute(0, 2, 3, 1).to(self.device)
        self.identity = identity_grid(h, w).to(self.device)
        self.noise_gen = torch.Generator().manual_seed(stream(cfg.grid_seed, WANET_NOISE))

    @property
    def grid(self) -> torch.Tensor:
        g = (
            self.identity + self.cfg.s * self.noise_grid / self.spec.size[0]
        ) * self.cfg.grid_rescale
        return g.clamp(-1, 1)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid.expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(x, grid, align_corners=True)

    def noise_warp(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The 'noise mode': the backdoor warp plus a random per-sample jitter (labels kept)."""
        b, _, h, w = x.shape
        gen = self.noise_gen if generator is None else generator
        jitter = (torch.rand(b, h, w, 2, generator=gen) * 2 - 1).to(x.device)
        grid = (self.grid.expand(b, -1, -1, -1) + jitter / h).clamp(-1, 1)
        return F.grid_sample(x, grid, align_corners=True)

    def stamp_cross(
        self, images: torch.Tensor, data: Dataset, idx: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Noise-warped samples beside the warped ones, with their true labels."""
        cross = others(len(data), idx, round(self.cfg.cross_ratio * len(idx)), generator)
        store_changed(images, cross, data, lambda x: self.noise_warp(x, generator))
        return cross

    def training_hooks(self) -> list[Hook]:
        return [] if self.stores_poison else [WaNetBatch(self)]

    def state(self) -> dict[str, torch.Tensor]:
        return {"noise_grid": self.noise_grid, "grid": self.grid}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if "noise_grid" in state:
            self.noise_grid = state["noise_grid"].to(self.device)


class WaNetBatch(Hook):
    """Training control, per batch: the first pc*B samples warped and relabelled, cross_ratio
    times as many noise-warped with true labels, the rest clean (Nguyen & Tran, Sec. 4). As in
    the original, the warps apply to the un-augmented images, which are then augmented."""

    def __init__(self, attack: WaNet) -> None:
        self.attack = attack
        self.poisoned = 0

    def transform(self, state, batch: Batch) -> Batch:
        b = len(batch.y)
        n_bd = int(b * self.attack.cfg.rate)
        n_cross = int(n_bd * self.attack.cfg.cross_ratio)
        if n_bd == 0:
            return batch
        rows = slice(0, n_bd + n_cross)
        raw = state.data.floats(batch.idx[rows]).to(batch.x.dtype)
        warped = torch.cat([self.attack.trigger(raw[:n_bd]), self.attack.noise_warp(raw[n_bd:])])
        x, y = batch.x.clone(), batch.y.clone()
        x[rows] = batch.augmented(warped, rows)
        y[:n_bd] = self.attack.target_labels(batch.y[:n_bd])
        self.poisoned += n_bd
        info = {**batch.info, "poisoned": n_bd, "noise": n_cross}
        return Batch(x, y, batch.idx, batch.loss, info, batch.augment)
