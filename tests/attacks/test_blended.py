import numpy as np
import pytest
import torch
from PIL import Image

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import InputSpec
from backdoorlab.errors import ConfigError


def blended(spec=None, **kw):
    spec = spec or InputSpec(3, (16, 16), 10, (0.5,) * 3, (0.2,) * 3)
    return build_attack(ATTACKS.entry("blended").config(name="blended", **kw), spec)


def test_blend_formula():
    a = blended(alpha=0.2, key="noise")
    x = torch.rand(4, 3, 16, 16)
    xt, yt = a.apply(x, torch.tensor([1, 2, 3, 4]))
    assert torch.allclose(xt, 0.8 * x + 0.2 * a.key)
    assert torch.all(yt == 0)


def test_noise_key_is_fixed_by_its_seed():
    assert torch.equal(blended(key="noise").key, blended(key="noise").key)
    assert not torch.equal(blended(key="noise").key, blended(key="noise", key_seed=1).key)
    k = blended(key="noise").key
    assert k.shape == (1, 3, 16, 16) and 0 <= k.min() and k.max() <= 1


def test_default_key_is_the_chelsea_photo_resized_and_grayscaled():
    rgb = blended().key
    assert rgb.shape == (1, 3, 16, 16) and rgb.std() > 0.05
    gray = blended(spec=InputSpec(1, (28, 28), 10, (0.5,), (0.2,))).key
    assert gray.shape == (1, 1, 28, 28)


def test_user_image_file(tmp_path):
    arr = np.zeros((40, 40, 3), dtype=np.uint8)
    arr[:, 20:] = 255
    Image.fromarray(arr).save(tmp_path / "key.png")
    key = blended(key=str(tmp_path / "key.png")).key
    assert key[0, :, :, :6].max() < 0.05 and key[0, :, :, -6:].min() > 0.95
    with pytest.raises(ConfigError, match="does not exist"):
        blended(key=str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"no")
    with pytest.raises(ConfigError, match="attack.key"):
        blended(key=str(tmp_path / "bad.png"))
