"""Neural Cleanse's trigger search (Wang et al. 2019, Eq. 2-3): the smallest mask and pattern
that send clean images to a class. The `nc` detector scores its norms; the `nc` defense unlearns
the triggers it finds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.seeds import per_class


class TriggerSearch(BaseModel):
    """Neural Cleanse's trigger search; the defaults are the reference implementation's."""

    steps: int = Field(1000, ge=1, description="cost-schedule steps per class (an upper bound)")
    batches_per_step: int | None = Field(
        None, ge=1, description="mini-batches per step (default: one pass over the clean data)"
    )
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.1, gt=0, description="Adam step of mask and pattern")
    init_cost: float = Field(1e-3, ge=0, description="weight of the mask's L1 norm once set")
    cost_multiplier: float = Field(2.0, gt=1, description="cost up by it, down by it**1.5")
    patience: int = Field(5, ge=1, description="steps before the cost is set, raised or lowered")
    success_threshold: float = Field(0.99, gt=0, le=1, description="attack success to count")
    early_stop: bool = Field(True, description="stop once the best norm stops improving")
    early_stop_threshold: float = Field(1.0, gt=0, le=1, description="improvement that counts")
    early_stop_patience: int = Field(25, ge=1, description="steps without improvement")


def reverse_trigger(
    model: nn.Module, data: Dataset, target: int, cfg: TriggerSearch, seed: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mask [1,1,H,W] and pattern [1,C,H,W] in [0,1] of the smallest trigger found for `target`
    and its L1 norm: NC Eq. 2-3, CE to the target + cost * ||m||_1, with the reference's cost
    schedule. Each step averages the attack success over `batches_per_step` mini-batches; the
    cost starts at 0, is set to `init_cost` once `patience` steps succeed, then rises and falls
    by `cost_multiplier`; the search stops early once the best norm has not improved for
    `early_stop_patience` steps after the cost has moved both ways."""
    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]  # a user's frozen layers stay so
    for p in frozen:
        p.requires_grad_(False)
    try:
        m_param, p_param, best = _search(model, data, target, cfg, seed)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    if best is None:  # never reached the success threshold: the last (largest) trigger
        mask = ((torch.tanh(m_param) + 1) / 2).detach()
        best = (mask, ((torch.tanh(p_param) + 1) / 2).detach(), float(mask.sum()))
    return best


def _search(
    model: nn.Module, data: Dataset, target: int, cfg: TriggerSearch, seed: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, float] | None]:
    """The search of `reverse_trigger` on a frozen model: the final mask and pattern logits and
    the best successful trigger (None if none succeeded)."""
    device = data.device
    gen = torch.Generator().manual_seed(per_class(seed, target))
    per_step = cfg.batches_per_step or max(1, len(data) // cfg.batch_size)
    m_param = torch.zeros((1, 1, *data.size), device=device, requires_grad=True)
    p_param = torch.zeros((1, data.channels, *data.size), device=device, requires_grad=True)
    opt = torch.optim.Adam([m_param, p_param], lr=cfg.lr, betas=(0.5, 0.9))
    cost, set_count, up, down = 0.0, 0, 0, 0
    went_up = went_down = False
    best: tuple[torch.Tensor, torch.Tensor, float] | None = None
    stale, best_seen = 0, float("inf")
    labels = torch.full((cfg.batch_size,), target, device=device)
    for _ in range(cfg.steps):
        hits = torch.zeros((), device=device)
        l1_sum = torch.zeros((), device=device)
        for _ in range(per_step):
            idx = torch.randint(len(data), (cfg.batch_size,), generator=gen).to(device)
            mask = (torch.tanh(m_param) + 1) / 2
            pattern = (torch.tanh(p_param) + 1) / 2
            logits = model((1 - mask) * data.floats(idx) + mask * pattern)
            l1 = mask.sum()
            loss = F.cross_entropy(logits, labels) + cost * l1
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits += (logits.argmax(1) == target).float().mean().detach()
            l1_sum += l1.detach()
        success, norm = float(hits) / per_step, float(l1_sum) / per_step
        ok = success >= cfg.success_threshold
        if ok and (best is None or norm < best[2]):
            mask = ((torch.tanh(m_param) + 1) / 2).detach()
            best = (mask, ((torch.tanh(p_param) + 1) / 2).detach(), norm)
        if cfg.early_stop:
            if best is not None:
                stale = stale + 1 if best[2] >= cfg.early_stop_threshold * best_seen else 0
                best_seen = min(best_seen, best[2])
            if went_up and went_down and stale >= cfg.early_stop_patience:
                break
        set_count = set_count + 1 if cost == 0 and ok else 0
        if set_count >= cfg.patience:
            cost, up, down, went_up, went_down = cfg.init_cost, 0, 0, False, False
        up, down = (up + 1, 0) if ok else (0, down + 1)
        if up >= cfg.patience:
            cost, up, went_up = cost * cfg.cost_multiplier, 0, True
        elif down >= cfg.patience:
            cost, down, went_down = cost / cfg.cost_multiplier**1.5, 0, True
    return m_param, p_param, best
