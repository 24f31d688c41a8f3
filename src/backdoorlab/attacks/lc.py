"""Label-Consistent backdoor (Turner et al. 2019): adversarially hardened target-class images
with a four-corner trigger; labels are never changed."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from rich.progress import track

from backdoorlab.attacks.auxiliary import AuxiliaryModel, auxiliary_model
from backdoorlab.attacks.base import Attack, AttackConfig, PoisonedData, register_attack
from backdoorlab.attacks.corners import corner_patches
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.errors import ConfigError
from backdoorlab.perturb.pgd import Perturbation, PerturbBatch, pgd
from backdoorlab.perturb.threats import LinfBall

CORNERS = ["top-left", "top-right", "bottom-left", "bottom-right"]


class SurrogateConfig(AuxiliaryModel):
    """The surrogate the attack adversarially trains (L_inf PGD) or loads."""

    at_eps: float = Field(8 / 255, ge=0, le=1, description="adversarial-training budget")
    at_steps: int = Field(5, ge=1)
    at_alpha: float = Field(2 / 255, gt=0)


class LCConfig(AttackConfig):
    label_mode: Literal["clean"] = "clean"
    rate_of: Literal["dataset", "target_class"] = "target_class"
    eps: float = Field(8 / 255, ge=0, le=1, description="L_inf budget that hardens the images")
    steps: int = Field(100, ge=0, description="PGD steps against the surrogate")
    alpha: float = Field(1.5 / 255, gt=0, description="PGD step size")
    patch_size: int = Field(3, ge=1)
    margin: int = Field(0, ge=0)
    amplitude: float = Field(1.0, gt=0, le=1, description="trigger amplitude on poisoned images")
    test_amplitude: float = Field(1.0, gt=0, le=1, description="trigger amplitude at test time")
    surrogate: SurrogateConfig = Field(default_factory=SurrogateConfig)
    batch_size: int = Field(256, ge=1, description="images per PGD batch")


@register_attack("lc", config=LCConfig)
class LabelConsistent(Attack):
    """Poisoned x' = corners(PGD_surrogate(x)); the trigger adds +-amplitude on a checkerboard
    in all four corners (amplitude 1 overwrites the corners)."""

    def __init__(self, cfg: LCConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        h, w = spec.size
        if 2 * (cfg.patch_size + cfg.margin) > min(h, w):
            raise ConfigError(
                f"attack.patch_size: four {cfg.patch_size}px corners at attack.margin "
                f"{cfg.margin} overlap on {h}x{w}"
            )
        mask, pattern = corner_patches(
            CORNERS, cfg.patch_size, cfg.margin, spec.channels, h, w, mirror=True
        )
        self.mask, self.pattern = mask.to(self.device), pattern.to(self.device)
        self.surrogate = None

    def _stamp(self, x: torch.Tensor, amplitude: float) -> torch.Tensor:
        return x + self.mask * amplitude * (2 * self.pattern - 1)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return self._stamp(x, self.cfg.test_amplitude)

    def poison_trigger(self, x: torch.Tensor) -> torch.Tensor:
        return self._stamp(x, self.cfg.amplitude)

    def fit(self, data: Dataset, *, progress: bool = False) -> None:
        s = self.cfg.surrogate
        recipe = PerturbBatch([Perturbation(LinfBall(s.at_eps), s.at_steps, s.at_alpha)])
        self.surrogate = auxiliary_model(
            s, data, key="surrogate", hooks=[recipe], progress=progress, store=self.models
        )

    def harden(self, x: torch.Tensor, y: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Untargeted L_inf PGD (no random start) against the surrogate, batch by batch."""
        if self.surrogate is None:
            raise RuntimeError("LabelConsistent.fit must run before poisoning")
        out = torch.empty_like(x)
        bs = self.cfg.batch_size
        chunks = range(0, len(x), bs)
        for i in track(chunks, description="lc: hardening", disable=not progress, transient=True):
            out[i : i + bs] = pgd(
                self.surrogate,
                x[i : i + bs],
                y[i : i + bs],
                LinfBall(self.cfg.eps),
                self.cfg.steps,
                self.cfg.alpha,
                random_start=False,
            )
        return out

    def poison(self, data: Dataset, generator: torch.Generator) -> PoisonedData:
        idx = self.select(data.labels, generator)
        original = data.labels[idx].clone()
        hard = self.harden(data.floats(idx), original)
        images = data.images.clone()
        images[idx] = self.poison_trigger(hard).clamp(0, 1).mul(255).round_().to(torch.uint8)
        return PoisonedData(data.with_data(images, data.labels.clone()), idx, original)

    def state(self) -> dict[str, torch.Tensor]:
        out = {"mask": self.mask, "pattern": self.pattern}
        if self.surrogate is not None:
            out.update({f"surrogate.{k}": v for k, v in self.surrogate.state_dict().items()})
        return out
