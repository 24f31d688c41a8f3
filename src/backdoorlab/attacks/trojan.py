"""TrojanNN (Liu et al. 2018): a patch trigger inverted to excite neurons of a clean model."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from rich.progress import track

from backdoorlab.attacks.auxiliary import AuxiliaryModel, auxiliary_model
from backdoorlab.attacks.base import Attack, AttackConfig, register_attack
from backdoorlab.attacks.corners import corner_box
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.errors import ConfigError


class TrojanConfig(AttackConfig):
    patch_size: int = Field(5, ge=1, description="side of the square trigger mask, in pixels")
    corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    margin: int = Field(0, ge=0)
    neurons: int = Field(1, ge=1, description="penultimate neurons to excite")
    target_activation: float = Field(100.0, description="activation value the trigger aims for")
    steps: int = Field(1000, ge=1, description="sign-gradient iterations")
    step_size: float = Field(0.01, gt=0, description="pixel change per iteration")
    inversion_batch: int = Field(128, ge=1, description="clean images the trigger is stamped on")
    clean_model: AuxiliaryModel = Field(default_factory=AuxiliaryModel)


@register_attack("trojan", config=TrojanConfig)
class Trojan(Attack):
    """x' = (1-m)*x + m*t with t optimised so that the selected neurons of the clean model's
    penultimate layer (largest summed |weight| into the classifier) reach `target_activation`."""

    def __init__(self, cfg: TrojanConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        h, w = spec.size
        s = cfg.patch_size
        if s + cfg.margin > min(h, w):
            raise ConfigError(
                f"attack.patch_size: {s}px at attack.margin {cfg.margin} does not fit a "
                f"{h}x{w} image"
            )
        top, left = corner_box(cfg.corner, s, cfg.margin, h, w)
        self.mask = torch.zeros(1, 1, h, w, device=self.device)
        self.mask[..., top : top + s, left : left + s] = 1
        g = torch.Generator().manual_seed(0)
        self.pattern = torch.rand(1, spec.channels, h, w, generator=g).to(self.device) * self.mask
        self.neuron_ids = torch.zeros(0, dtype=torch.int64)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 - self.mask) + self.pattern * self.mask

    def fit(self, data: Dataset, *, progress: bool = False) -> None:
        model = auxiliary_model(
            self.cfg.clean_model, data, key="clean_model", progress=progress, store=self.models
        )
        for p in model.parameters():
            p.requires_grad_(False)
        weight = model.fc.weight.abs().sum(0)
        self.neuron_ids = weight.topk(self.cfg.neurons).indices
        g = torch.Generator().manual_seed(1)
        pick = torch.randperm(len(data), generator=g)[: self.cfg.inversion_batch].to(data.device)
        x = data.floats(pick)
        pattern = self.pattern.clone()
        steps = range(self.cfg.steps)
        for _ in track(
            steps, description="trojan: inverting", disable=not progress, transient=True
        ):
            pattern.requires_grad_(True)
            act = model.features(x * (1 - self.mask) + pattern * self.mask)[:, self.neuron_ids]
            loss = (act - self.cfg.target_activation).pow(2).mean()
            (grad,) = torch.autograd.grad(loss, pattern)
            with torch.no_grad():
                pattern = (pattern - self.cfg.step_size * grad.sign()).clamp(0, 1) * self.mask
        self.pattern = pattern.detach()
        self.clean_model = model
        with torch.no_grad():
            clean = model.features(x)[:, self.neuron_ids].mean().item()
            stamped = model.features(self.trigger(x))[:, self.neuron_ids].mean().item()
        self.activation = {"clean": clean, "triggered": stamped}

    def state(self) -> dict[str, torch.Tensor]:
        out = {"mask": self.mask, "pattern": self.pattern, "neurons": self.neuron_ids}
        if getattr(self, "clean_model", None) is not None:
            out.update({f"clean_model.{k}": v for k, v in self.clean_model.state_dict().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if "pattern" in state:
            self.pattern = state["pattern"].to(self.device)
