"""Blended (Chen et al. 2017): a key image blended into the whole input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from backdoorlab.attacks.base import Attack, AttackConfig, register_attack
from backdoorlab.data.base import InputSpec
from backdoorlab.data.images import decode_image, resize
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.limits import MAX_IMAGE_FILE_BYTES, read_file


class BlendedConfig(AttackConfig):
    alpha: float = Field(0.1, gt=0, le=1, description="blend weight of the key image")
    key: str = Field(
        "chelsea", description="'chelsea' (scikit-image cat photo), 'noise', or an image path"
    )
    key_seed: int = Field(0, description="seed of the fixed noise key")


def _builtin_chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()


def load_key(cfg: BlendedConfig, spec: InputSpec) -> torch.Tensor:
    """The key image [1,C,H,W] in [0,1] for the configured source, fitted to the data shape."""
    c, (h, w) = spec.channels, spec.size
    if cfg.key == "noise":
        g = torch.Generator().manual_seed(cfg.key_seed)
        return torch.rand(1, c, h, w, generator=g)
    if cfg.key == "chelsea":
        img = _builtin_chelsea()
    else:
        path = Path(cfg.key).expanduser()
        if not path.is_file():
            raise ConfigError(f"attack.key: image file {path} does not exist")
        try:
            raw = read_file(path, MAX_IMAGE_FILE_BYTES, str(path))
            img = decode_image(raw, str(path), 3, (h, w))
        except DataError as exc:
            raise ConfigError(f"attack.key: {exc}") from None
    key = resize(img, (h, w)).float().div(255)[None]
    if c == 1:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        key = (key * luma).sum(1, keepdim=True)
    elif c != 3:
        key = key.mean(1, keepdim=True).expand(1, c, h, w)
    return key


@register_attack("blended", config=BlendedConfig)
class Blended(Attack):
    """x' = (1-alpha)*x + alpha*K with a fixed key image K."""

    def __init__(self, cfg: BlendedConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        self.key = load_key(cfg, spec).to(self.device)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        a = self.cfg.alpha
        return (1 - a) * x + a * self.key

    def state(self) -> dict[str, torch.Tensor]:
        return {"key": self.key}
