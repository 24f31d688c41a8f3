"""`mm-bd`: the maximum margin a class can reach on any input (Wang et al., MM-BD, S&P 2024).

A backdoor is a shortcut to its target: some input (the trigger on anything) gives the target a
margin over every other class far larger than any natural image gives any class. Per class k the
probe maximises f_k(x) - max_{j != k} f_j(x) over images x in [0, 1] by gradient ascent from
random starts and keeps the largest margin reached (MM-BD Eq. 2); a target class stands out on
the high side. It needs no data beyond the image shape: the clean images are never looked at.
The budget here (16 starts, 100 Adam steps at 0.01) is smaller than the reference code's (150
starts, 300 steps) so that a scan stays within a minute on a CPU.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.detectors.base import Detection, DetectorConfig, register_detector


class MMBDConfig(DetectorConfig):
    starts: int = Field(16, ge=1, description="random images optimised per class")
    steps: int = Field(100, ge=1, description="Adam steps of the ascent")
    lr: float = Field(0.01, gt=0, description="Adam learning rate (in [0,1] pixels)")


def max_margins(
    model: nn.Module,
    shape: tuple[int, ...],
    k: int,
    cfg: MMBDConfig,
    device: torch.device,
    classes: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class (all `k`, or those listed), the largest margin f_c(x) - max_{j != c} f_j(x)
    reached from `cfg.starts` random images (MM-BD Eq. 2), as a tensor on the CPU, and the
    image that reached it [classes, *shape] in [0, 1]."""
    wanted = torch.tensor(classes if classes is not None else range(k), device=device)
    n = len(wanted)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    # each class draws its own block of starts: one class alone starts where it does among all
    start = torch.rand((k, cfg.starts, *shape), generator=gen)[wanted.cpu()].flatten(0, 1)
    start = start.to(device)
    # optimise in logit space so that the image stays in [0, 1] without clipping the gradient
    z = torch.logit(start.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
    classes_ = wanted.repeat_interleave(cfg.starts)
    opt = torch.optim.Adam([z], lr=cfg.lr / 0.25)  # sigmoid' <= 0.25: steps of about lr pixels
    others = torch.ones(n * cfg.starts, k, dtype=torch.bool, device=device)
    others[torch.arange(len(classes_)), classes_] = False

    def margins() -> torch.Tensor:
        logits = model(torch.sigmoid(z))
        own = logits.gather(1, classes_[:, None]).squeeze(1)
        rival = logits.masked_fill(~others, -float("inf")).amax(1)
        return own - rival

    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # the model is only read: leave its own flags and mode as they were
        p.requires_grad_(False)
    was = model.training
    model.eval()
    try:
        for _ in range(cfg.steps):
            opt.zero_grad(set_to_none=True)
            (-margins().sum()).backward()
            opt.step()
        with torch.no_grad():
            final = margins()
    finally:
        model.train(was)
        for p in params:
            p.requires_grad_(True)
    best, where = final.view(n, cfg.starts).max(1)
    images = torch.sigmoid(z.detach()).view(n, cfg.starts, *shape)[torch.arange(n), where]
    return best.double().cpu(), images.cpu()


@register_detector("mm-bd", config=MMBDConfig)
def maximum_margin(model: nn.Module, data: Dataset, cfg: MMBDConfig) -> Detection:
    """MM-BD: per class the largest logit margin any input reaches; large outliers are suspects
    (the MAD anomaly index on the high side; MM-BD fits a gamma null instead)."""
    shape = tuple(data.images.shape[1:])
    values, _ = max_margins(model, shape, data.num_classes, cfg, data.device)
    return Detection.from_values(
        "mm-bd",
        values,
        "high",
        cfg,
        "largest logit margin over the other classes reached by any input",
        {"starts": cfg.starts, "steps": cfg.steps},
    )
