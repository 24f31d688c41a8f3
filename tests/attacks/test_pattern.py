from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import InputSpec
from backdoorlab.errors import ConfigError

TRIGGERS = Path(__file__).resolve().parents[2] / "configs" / "results" / "triggers"
SPEC = InputSpec(1, (10, 10), 10, (0.5,), (0.2,))


def png(path, img):
    Image.fromarray(np.asarray(img, np.uint8)).save(path)
    return str(path)


def pattern(spec=SPEC, **kw):
    return build_attack(ATTACKS.entry("pattern").config(name="pattern", **kw), spec)


def test_the_pattern_is_stamped_through_its_non_black_pixels(tmp_path):
    img = np.zeros((10, 10))
    img[1, 2] = 255
    img[7, 7] = 128
    a = pattern(pattern=png(tmp_path / "p.png", img), target=3)
    x = torch.rand(4, 1, 10, 10)
    xt, yt = a.apply(x, torch.tensor([0, 1, 2, 4]))
    assert xt[:, 0, 1, 2].eq(1).all() and torch.allclose(xt[:, 0, 7, 7], torch.tensor(128 / 255))
    untouched = torch.ones(10, 10, dtype=torch.bool)
    untouched[1, 2] = untouched[7, 7] = False
    assert torch.equal(xt[:, 0][:, untouched], x[:, 0][:, untouched])
    assert yt.tolist() == [3, 3, 3, 3]


def test_alpha_and_a_mask_file_weigh_each_pixel(tmp_path):
    stripes = np.zeros((10, 10))
    stripes[::4] = 255
    full = np.full((10, 10), 255)
    a = pattern(
        pattern=png(tmp_path / "p.png", stripes), mask=png(tmp_path / "m.png", full), alpha=0.2
    )
    x = torch.rand(2, 1, 10, 10)
    p = torch.from_numpy(stripes).float().div(255)
    assert torch.allclose(a.trigger(x), 0.8 * x + 0.2 * p, atol=1e-6)


def test_a_colour_pattern_on_colour_data(tmp_path):
    img = np.zeros((10, 10, 3))
    img[0, 0] = (255, 0, 0)
    a = pattern(
        spec=InputSpec(3, (10, 10), 10, (0.5,) * 3, (0.2,) * 3),
        pattern=png(tmp_path / "p.png", img),
    )
    xt = a.trigger(torch.zeros(1, 3, 10, 10))
    assert xt[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0] and xt.sum() == 1


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"pattern": "nowhere.png"}, ["`attack.pattern`", "does not exist"]),
        ({"pattern": "WRONG_SIZE"}, ["`attack.pattern`", "12x12", "10x10"]),
        ({"pattern": "BLACK"}, ["`attack.mask`", "no pixel"]),
    ],
)
def test_bad_images_are_one_clear_error(tmp_path, kw, words):
    files = {
        "WRONG_SIZE": png(tmp_path / "w.png", np.full((12, 12), 255)),
        "BLACK": png(tmp_path / "b.png", np.zeros((10, 10))),
    }
    kw = {k: files.get(v, v) for k, v in kw.items()}
    with pytest.raises(ConfigError) as err:
        pattern(**kw)
    assert all(w in str(err.value) for w in words)


def test_the_held_out_zoo_triggers_are_the_script_s_drawings(tmp_path):
    from scripts.heldout_triggers import main

    assert main(["--out", str(tmp_path)]) == 0
    for name in ("pixels", "cross", "stripes"):
        drawn = (tmp_path / f"{name}.png").read_bytes()
        assert drawn == (TRIGGERS / f"{name}.png").read_bytes()
    assert np.count_nonzero(np.asarray(Image.open(tmp_path / "pixels.png"))) == 12
