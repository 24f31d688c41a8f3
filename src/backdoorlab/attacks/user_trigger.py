"""Triggers a user supplies: a registered attack's (from its config), an image with a mask and
alpha (PNG files or tensors), or any callable on [0,1] batches; each a backdoor to measure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from backdoorlab.attacks.base import ATTACKS, build_attack
from backdoorlab.data.base import Dataset
from backdoorlab.data.images import decode_image
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.limits import MAX_IMAGE_FILE_BYTES, MAX_JSON_BYTES, read_file


class Trigger:
    """An all-to-one backdoor: `fn` maps [0,1] batches to triggered ones, sent to `target`."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], target: int) -> None:
        self.fn, self.target = fn, int(target)

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Triggered images (clipped to [0,1]) and the target label."""
        xt = self.fn(x)
        if not isinstance(xt, torch.Tensor) or xt.shape != x.shape:
            got = list(xt.shape) if isinstance(xt, torch.Tensor) else type(xt).__name__
            raise ConfigError(f"trigger: returned {got} for a batch of {list(x.shape)}")
        return xt.clamp(0, 1), torch.full_like(y, self.target)

    def asr_mask(self, y: torch.Tensor) -> torch.Tensor:
        """Non-target samples count for ASR and RA."""
        return y != self.target


def read_image(source: str | Path | torch.Tensor, channels: int, what: str) -> torch.Tensor:
    """[1,C,H,W] floats in [0,1] from a PNG/JPEG file or a tensor ([C,H,W], [H,W] or [1,C,H,W])."""
    if isinstance(source, torch.Tensor):
        x = source.detach().cpu().float()
        if source.dtype == torch.uint8:
            x = x / 255
        elif x.numel() and (x.min() < 0 or x.max() > 1):
            raise ConfigError(f"{what}: a float image must lie in [0,1]")
        while x.ndim < 4:
            x = x[None]
        return x
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{what}: image file {path} does not exist")
    try:
        img = decode_image(read_file(path, MAX_IMAGE_FILE_BYTES, str(path)), str(path), channels)
    except DataError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255


def masked_blend(pattern: torch.Tensor, mask: torch.Tensor, alpha: float) -> Callable:
    """x' = (1 - alpha*m) * x + alpha*m * pattern (BadNets with m binary and alpha 1; Blended
    with m = 1 and alpha < 1)."""
    weight = alpha * mask

    def apply(x: torch.Tensor) -> torch.Tensor:
        w, p = weight.to(x.device), pattern.to(x.device)
        return (1 - w) * x + w * p

    return apply


def make_trigger(
    trigger: Any,
    data: Dataset,
    *,
    target: int | None = None,
    mask: str | Path | torch.Tensor | None = None,
    alpha: float = 1.0,
    device: str | torch.device = "cpu",
):
    """A backdoor for `data` from what the user has (see the module docstring); the target class
    comes from `target` or, for an attack config, from its `target`."""
    c, size = data.channels, data.size
    if isinstance(trigger, Trigger):
        return trigger
    if isinstance(trigger, (str, Path)) and Path(trigger).suffix in (".yaml", ".yml"):
        try:
            raw = yaml.safe_load(read_file(trigger, MAX_JSON_BYTES, str(trigger)))
        except yaml.YAMLError as exc:
            raise ConfigError(f"`trigger` {trigger}: malformed YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"`trigger` {trigger}: an attack config mapping expected")
        trigger = raw.get("attack", raw)
    if isinstance(trigger, dict):
        cfg = ATTACKS.validate({**trigger, **({"target": target} if target is not None else {})})
        attack = build_attack(cfg, data.spec, device)
        attack.fit(data.to(device))
        return attack
    if target is None:
        raise ConfigError("`trigger`: give the target class (`target`)")
    if not 0 <= target < data.num_classes:
        raise ConfigError(f"`target` {target}: no such class ({data.num_classes} classes)")
    if callable(trigger) and not isinstance(trigger, torch.Tensor):
        return Trigger(trigger, target)
    pattern = read_image(trigger, c, "`trigger`")
    weights = (
        torch.ones(1, 1, *pattern.shape[2:]) if mask is None else read_image(mask, 1, "`mask`")
    )
    for what, t in (("`trigger`", pattern), ("`mask`", weights)):
        if tuple(t.shape[2:]) != tuple(size) or t.shape[1] not in (1, c):
            raise ConfigError(
                f"{what}: image is {t.shape[1]}x{t.shape[2]}x{t.shape[3]} (CxHxW), the data is "
                f"{c}x{size[0]}x{size[1]}"
            )
    if weights.shape[1] != 1:
        raise ConfigError("`mask`: one channel (grey) expected")
    if not 0 < alpha <= 1:
        raise ConfigError(f"`alpha`: must lie in (0, 1], got {alpha}")
    return Trigger(masked_blend(pattern.to(device), weights.to(device), alpha), target)
