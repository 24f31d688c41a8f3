"""Input-aware dynamic backdoor (Nguyen & Tran 2020): a generator makes a different trigger for
every input; a mask network says where it goes. Both are saved with the run.

Data control: the attacker trains the generator with a surrogate classifier of its own on its
own data, then hands over a stored set with backdoor and cross samples. Training control: the
original procedure, the generator trained with the victim per batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from rich.progress import Progress
from torch import nn

from backdoorlab.attacks.auxiliary import AuxiliaryModel, auxiliary_model
from backdoorlab.attacks.base import (
    STAMP_CHUNK,
    Attack,
    AttackConfig,
    others,
    register_attack,
    store_changed,
)
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.data.iterator import BatchIterator
from backdoorlab.errors import ConfigError, TrainingDivergedError
from backdoorlab.limits import MAX_MODEL_PARAMETERS
from backdoorlab.models.base import on_meta
from backdoorlab.seeds import IAD_NETWORKS
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.distributed import average_gradients
from backdoorlab.train.hooks import Batch, Hook

EPS = 1e-7


@contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """BatchNorm in evaluation mode inside, each net's mode restored after (ASR is measured
    mid-training too)."""
    modes = [n.training for n in nets]
    for n in nets:
        n.eval()
    try:
        yield
    finally:
        for n, m in zip(nets, modes, strict=True):
            n.train(m)


def _surrogate() -> AuxiliaryModel:
    return AuxiliaryModel(train=TrainConfig(epochs=8, lr=0.05))


class IADConfig(AttackConfig):
    rate: float = Field(0.1, gt=0, lt=1, description="p_attack: share backdoored (set or batch)")
    label_mode: Literal["dirty"] = "dirty"
    cross_rate: float = Field(0.1, ge=0, lt=1, description="p_cross: share with another's trigger")
    width: int = Field(16, ge=4, description="channels of the generator / mask networks")
    mask_epochs: int = Field(25, ge=0, description="stage 1: epochs training the mask net alone")
    mask_density: float = Field(0.032, gt=0, lt=1, description="target mean of the mask")
    lambda_norm: float = Field(100.0, ge=0, description="weight of the mask-density loss")
    lambda_div: float = Field(1.0, ge=0, description="weight of the diversity losses")
    lr: float = Field(0.01, gt=0, description="Adam learning rate of the generator and mask")
    batch_size: int = Field(128, ge=2, description="batch size of stage 1")
    surrogate: AuxiliaryModel = Field(
        default_factory=_surrogate,
        description="data control: the classifier the generator is trained with (stage 2)",
    )

    @model_validator(mode="after")
    def _shares(self) -> IADConfig:
        if self.rate_of != "dataset":
            raise ValueError("IAD's rate is a share of the training set (rate_of: dataset)")
        if self.rate + self.cross_rate > 1:
            raise ValueError("rate + cross_rate must not exceed 1")
        if self.surrogate.weights is not None:
            raise ValueError(
                "surrogate.weights: IAD trains its generator together with the surrogate, so "
                "the surrogate cannot be loaded"
            )
        return self


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class EncoderDecoder(nn.Module):
    """A small conv encoder-decoder (two poolings) whose output matches the input's size."""

    def __init__(self, c_in: int, c_out: int, width: int) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            _block(c_in, w), _block(w, w), nn.MaxPool2d(2),
            _block(w, 2 * w), _block(2 * w, 2 * w), nn.MaxPool2d(2),
            _block(2 * w, 4 * w),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2), _block(4 * w, 2 * w),
            nn.Upsample(scale_factor=2), _block(2 * w, w),
            nn.Conv2d(w, c_out, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.encoder(x))
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


def density_loss(mask: torch.Tensor, density: float) -> torch.Tensor:
    """mean(relu(m - d)): only mask values above the target density cost (the original's
    mask-norm loss)."""
    return F.relu(mask - density).mean()


def diversity(x1: torch.Tensor, x2: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor):
    """mean(||x1 - x2|| / ||g1 - g2||): different inputs must get different outputs."""
    return (_rms(x1, x2) / (_rms(g1, g2) + EPS)).mean()


def _rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # sqrt's gradient at 0 is inf and 0 * inf is NaN: two saturated masks can be exactly equal,
    # which turned a whole mask network NaN in one step; the floor keeps the gradient finite
    return (a - b).flatten(1).pow(2).mean(1).clamp_min(EPS**2).sqrt()


@register_attack("iad", config=IADConfig)
class InputAware(Attack):
    """x' = x + (G(x) - x) * M(x): pattern G(x) in [0,1], near-binary mask M(x)."""

    controls = ("data", "training")

    def __init__(self, cfg: IADConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        net = on_meta(
            lambda: EncoderDecoder(spec.channels, 1, cfg.width), f"attack.width {cfg.width}"
        )
        n = sum(p.numel() for p in net.parameters())
        if 2 * n > MAX_MODEL_PARAMETERS:
            raise ConfigError(
                f"attack.width: {cfg.width} gives networks of {2 * n:,} parameters, more than "
                f"the limit of {MAX_MODEL_PARAMETERS:,}"
            )
        g = torch.random.fork_rng()
        with g:
            scale, offset = IAD_NETWORKS
            torch.manual_seed(cfg.target * scale + offset)
            self.generator = EncoderDecoder(spec.channels, spec.channels, cfg.width)
            self.masker = EncoderDecoder(spec.channels, 1, cfg.width)
        self.generator.to(self.device).eval()
        self.masker.to(self.device).eval()

    def pattern(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.generator(x))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.sigmoid(self.masker(x))
        return torch.tanh(20 * m - 10) / (2 + EPS) + 0.5  # a steep threshold around 0.5

    def compose(self, x: torch.Tensor, pattern: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + (pattern - x) * mask

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return self.trigger_of(x, x)

    def fit(self, data: Dataset, *, progress: bool = False) -> None:
        """Stage 1: the mask network alone; with data control, stage 2 with a surrogate too."""
        self.fit_mask(data, progress)
        if self.stores_poison:
            hooks = [IADBatch(self)]
            auxiliary_model(
                self.cfg.surrogate, data, key="surrogate", hooks=hooks, progress=progress
            )

    def fit_mask(self, data: Dataset, progress: bool) -> None:
        """Stage 1: train the mask network alone (density + diversity losses)."""
        cfg = self.cfg
        opt = torch.optim.Adam(self.masker.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        it = BatchIterator(data, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.target)
        self.masker.train()
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("iad: mask network", total=cfg.mask_epochs * len(it))
            for _ in range(cfg.mask_epochs):
                for x, _, _ in it:
                    x2 = x.roll(1, 0)
                    m1, m2 = self.mask(x), self.mask(x2)
                    loss = cfg.lambda_norm * density_loss(m1, cfg.mask_density)
                    loss = loss + cfg.lambda_div * diversity(x, x2, m1, m2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    bar.advance(task)
                if not all(torch.isfinite(q).all() for q in self.masker.parameters()):
                    raise TrainingDivergedError("iad: the mask network's weights are not finite")
        self.masker.eval()
        for p in self.masker.parameters():
            p.requires_grad_(False)

    def training_hooks(self) -> list[Hook]:
        return [] if self.stores_poison else [IADBatch(self)]

    def stamp_cross(
        self, images: torch.Tensor, data: Dataset, idx: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Cross samples beside the backdoor ones: the trigger of another (random) image and
        their true label."""
        cross = others(len(data), idx, round(self.cfg.cross_rate * len(data)), generator)
        donors = torch.randint(len(data) - 1, (len(cross),), generator=generator).to(cross.device)
        donors = donors + (donors >= cross).long()  # another image than the sample itself
        for part, give in zip(cross.split(STAMP_CHUNK), donors.split(STAMP_CHUNK), strict=True):
            store_changed(
                images, part, data, lambda x, give=give: self.trigger_of(x, data.floats(give))
            )
        return cross

    def trigger_of(self, x: torch.Tensor, donor: torch.Tensor) -> torch.Tensor:
        """Images x carrying the trigger (pattern and mask) generated for `donor` images."""
        with evaluating(self.generator, self.masker):
            return self.compose(x, self.pattern(donor), self.mask(donor))

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"generator.{k}": v for k, v in self.generator.state_dict().items()}
        out.update({f"masker.{k}": v for k, v in self.masker.state_dict().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, net in (("generator.", self.generator), ("masker.", self.masker)):
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if part:
                net.load_state_dict(part)


class IADBatch(Hook):
    """Stage 2: per batch, rate*B backdoor samples (own trigger, target label), cross_rate*B
    cross samples (another input's trigger, true label), the rest clean; the classifier and the
    generator are trained together on CE + diversity."""

    def __init__(self, attack: InputAware) -> None:
        self.attack = attack

    def on_fit_start(self, state) -> None:
        a = self.attack
        self.opt = torch.optim.Adam(a.generator.parameters(), lr=a.cfg.lr, betas=(0.5, 0.9))

    def train_step(self, state, batch: Batch):
        a, cfg = self.attack, self.attack.cfg
        x, y = batch.x, batch.y
        b = len(y)
        n_bd, n_cross = int(b * cfg.rate), int(b * cfg.cross_rate)
        a.generator.train()
        x2 = x.roll(n_bd + n_cross, 0)  # other inputs of the same batch donate cross triggers
        with torch.no_grad():
            masks = a.mask(torch.cat([x[:n_bd], x2[: n_bd + n_cross]]))
        patterns = a.pattern(torch.cat([x[:n_bd], x2[: n_bd + n_cross]]))
        p1, p2 = patterns[:n_bd], patterns[n_bd:]
        m1, m2 = masks[:n_bd], masks[n_bd:]
        bd = a.compose(x[:n_bd], p1, m1)
        cross = a.compose(x[n_bd : n_bd + n_cross], p2[n_bd:], m2[n_bd:])
        inputs = torch.cat([bd, cross, x[n_bd + n_cross :]])
        targets = torch.cat([a.target_labels(y[:n_bd]), y[n_bd:]])
        logits = state.model(inputs)
        loss = batch.loss_of(logits) if batch.loss else F.cross_entropy(logits, targets)
        if n_bd:
            loss = loss + cfg.lambda_div * diversity(x[:n_bd], x2[:n_bd], p1, p2[:n_bd])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        batch.y = targets  # so the loop's training accuracy counts the real targets
        return loss.detach(), logits.detach()

    def on_step_end(self, state, batch: Batch, loss: torch.Tensor) -> None:
        average_gradients(self.attack.generator.parameters())  # several ranks: one generator
        self.opt.step()

    def on_fit_end(self, state) -> None:
        self.attack.generator.eval()
