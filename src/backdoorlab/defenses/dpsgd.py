"""DP-SGD (Abadi et al.) as a training-time baseline (Gao Table VII): per-sample gradient
clipping to norm C and Gaussian noise of scale sigma*C on their sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call, grad, vmap

from backdoorlab.defenses.base import Defense, DefenseConfig, DefenseContext, register_defense
from backdoorlab.errors import ConfigError
from backdoorlab.train.distributed import world
from backdoorlab.train.hooks import Batch, Hook


class DPSGDConfig(DefenseConfig):
    max_grad_norm: float = Field(1.0, gt=0, description="per-sample clipping norm C")
    noise_multiplier: float = Field(0.1, ge=0, description="sigma: noise std is sigma*C (Gao 0.1)")
    delta: float = Field(1e-5, gt=0, lt=1, description="delta of the reported (eps, delta)")


def per_sample_grads(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Per-sample gradients {name: [B, *shape]} of the cross-entropy, per-sample losses, logits."""
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        loss = F.cross_entropy(logits, yi.unsqueeze(0))
        return loss, (loss.detach(), logits.detach().squeeze(0))

    grads, (losses, logits) = vmap(grad(one, has_aux=True), in_dims=(None, 0, 0))(params, x, y)
    return grads, losses, logits


def clip_per_sample(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """Scale every sample's whole gradient (all parameters together) to norm <= max_norm."""
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {k: g * factor.view(-1, *([1] * (g.dim() - 1))) for k, g in grads.items()}


def privacy(cfg: DPSGDConfig, sample_rate: float, steps: int) -> dict[str, object]:
    """delta, the steps taken and the epsilon that opacus' RDP accountant gives (None without
    opacus installed).

    The accountant assumes Poisson sampling at rate batch/N; we draw shuffled fixed-size
    batches, as most DP-SGD papers' code does, so epsilon is the customary approximation.
    """
    out: dict[str, object] = {"dp_delta": cfg.delta, "dp_steps": steps}
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        out["dp_epsilon"] = None
        return out
    if cfg.noise_multiplier == 0:
        out["dp_epsilon"] = float("inf")
        return out
    accountant = RDPAccountant()
    accountant.history = [(cfg.noise_multiplier, sample_rate, steps)]
    out["dp_epsilon"] = float(accountant.get_epsilon(cfg.delta))
    return out


class DPSGDHook(Hook):
    """Replaces the step: clipped per-sample gradients, summed, noised, averaged. With
    `findings` (a defense context's), the privacy spent is put there when training ends."""

    def __init__(
        self, cfg: DPSGDConfig, seed: int, findings: dict[str, object] | None = None
    ) -> None:
        self.cfg = cfg
        self.seed = seed
        self.steps = 0
        self.findings = findings

    def on_fit_start(self, state) -> None:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in state.model.modules()):
            raise ConfigError(
                "defense dpsgd needs per-sample normalisation: set model.norm to 'group' "
                "(BatchNorm mixes samples, so per-sample gradients are undefined)"
            )
        device = next(state.model.parameters()).device
        self.gen = torch.Generator(device=device).manual_seed(self.seed)

    def train_step(self, state, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        grads, losses, logits = per_sample_grads(state.model, batch.x, batch.y)
        clipped = clip_per_sample(grads, c.max_grad_norm)
        b = batch.x.shape[0]
        # over several ranks the loop averages p.grad; noise from rank 0 alone then gives the
        # one-process step on the global batch: (sum of clipped + noise) / global batch
        noisy = c.noise_multiplier > 0 and world().main
        for name, p in state.model.named_parameters():
            if name not in clipped:
                continue
            total = clipped[name].sum(0)
            if noisy:
                noise = torch.randn(
                    total.shape, generator=self.gen, device=total.device, dtype=total.dtype
                )
                total = total + noise * (c.noise_multiplier * c.max_grad_norm)
            p.grad = total / b
        self.steps += 1
        return losses.mean(), logits

    def on_fit_end(self, state) -> None:
        if self.findings is not None:
            rate = min(1.0, state.config.batch_size / len(state.data))
            self.findings.update(privacy(self.cfg, rate, self.steps))


@register_defense("dpsgd", config=DPSGDConfig)
class DPSGD(Defense):
    """Differentially private SGD; needs a GroupNorm model (model.norm: group)."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [DPSGDHook(self.cfg, ctx.seed, ctx.findings)]
