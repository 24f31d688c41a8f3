"""Neural Cleanse (Wang et al. 2019): reverse-engineer the smallest trigger that sends clean
images to each class (the search of detectors/trigger_search.py), flag classes whose trigger is
anomalously small (MAD), and unlearn."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import (
    CleanRepair,
    DefenseConfig,
    DefenseContext,
    need_clean,
    register_defense,
)
from backdoorlab.detectors.trigger_search import TriggerSearch, reverse_trigger
from backdoorlab.errors import ConfigError
from backdoorlab.metrics.detection import mad_index
from backdoorlab.seeds import NC_UNLEARN, stream
from backdoorlab.train.distributed import agree


class NCConfig(DefenseConfig, TriggerSearch):
    anomaly_threshold: float = Field(2.0, gt=0, description="flag classes above this index")
    unlearn_share: float = Field(0.2, gt=0, le=1, description="clean samples given the trigger")
    epochs: int = Field(5, ge=0, description="unlearning fine-tuning epochs (0: detect only)")
    unlearn_batch_size: int = Field(128, ge=1)
    unlearn_lr: float = Field(0.01, gt=0)
    target: int | None = Field(
        None,
        ge=0,
        description="search and unlearn only this class's trigger (e.g. the class a calibrated "
        "scan flagged); None: every class, flagged by the anomaly index",
    )


@register_defense("nc", config=NCConfig)
class NeuralCleanse(CleanRepair):
    """Reverse-engineer a trigger per class, flag small-trigger outliers, unlearn their trigger."""

    def fix(self, model: nn.Module, clean: Dataset, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        if c.target is not None:
            if c.target >= clean.num_classes:
                raise ConfigError(f"target: class {c.target} of {clean.num_classes} classes")
            trigger = agree([reverse_trigger(model, clean, c.target, c, ctx.seed)], ctx.device)[0]
            triggers = {c.target: trigger}
            flagged = [c.target]
            ctx.findings.update(nc_norms={c.target: trigger[2]}, nc_flagged=flagged)
        else:
            found = [
                reverse_trigger(model, clean, t, c, ctx.seed) for t in range(clean.num_classes)
            ]
            # several ranks: rank 0's triggers decide and are unlearned
            triggers = dict(enumerate(agree(found, ctx.device)))
            norms = torch.tensor([t[2] for t in triggers.values()])
            index = mad_index(norms, "low")  # only a small trigger is suspect
            flagged = [k for k in range(len(norms)) if index[k] > c.anomaly_threshold]
            ctx.findings.update(
                nc_norms=norms.tolist(), nc_anomaly_index=index.tolist(), nc_flagged=flagged
            )
        # mask, pattern, norm per flagged class: what `repeat` unlearns from another model
        self.triggers = {k: triggers[k] for k in flagged}
        if not flagged or c.epochs == 0:
            return model
        return self.unlearn(model, clean, ctx, self.triggers)

    def repeat(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        """Unlearn the suspect's reversed triggers from `model`, with the same images."""
        found = getattr(self, "triggers", {})  # none before the suspect's repair ran
        if not found or self.cfg.epochs == 0:
            return model
        return self.unlearn(model, need_clean(ctx, self.cfg.name), ctx, found)

    def unlearn(
        self,
        model: nn.Module,
        clean: Dataset,
        ctx: DefenseContext,
        triggers: dict[int, tuple[torch.Tensor, torch.Tensor, float]],
    ) -> nn.Module:
        """Fine-tune `model` on `clean` with each class's reversed trigger (mask, pattern, norm)
        stamped on a share of the images, true labels kept (NC's unlearning, Sec. VI-C). The same
        call with the same triggers repairs a reference model exactly as it repaired a suspect."""
        c = self.cfg
        gen = torch.Generator().manual_seed(stream(ctx.seed, NC_UNLEARN))
        n = len(clean)
        chosen = torch.randperm(n, generator=gen)[: max(1, round(c.unlearn_share * n))]
        images = clean.images.clone()
        flagged = list(triggers)
        for part, k in zip(chosen.chunk(len(flagged)), flagged, strict=False):
            mask, pattern, _ = triggers[k]
            idx = part.to(clean.device)
            x = (1 - mask) * clean.floats(idx) + mask * pattern
            images[idx] = (x.clamp(0, 1) * 255).round().to(images.dtype)
        tuned = clean.with_data(images, clean.labels)
        self.tune(model, tuned, ctx, epochs=c.epochs, lr=c.unlearn_lr,
                  batch_size=c.unlearn_batch_size, augment=True,
                  description="nc unlearn")  # fmt: skip
        return model
