import pytest
import torch

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import InputSpec
from backdoorlab.errors import ConfigError

SPEC = InputSpec(3, (10, 12), 10, (0.5,) * 3, (0.2,) * 3)


def badnets(**kw):
    return build_attack(ATTACKS.entry("badnets").config(name="badnets", **kw), SPEC)


def test_checkerboard_in_the_bottom_right_corner():
    x = torch.full((2, 3, 10, 12), 0.5)
    xt, yt = badnets(patch_size=3, target=4).apply(x, torch.tensor([1, 2]))
    patch = xt[:, :, -3:, -3:]
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    assert torch.equal(patch, expected.expand(2, 3, 3, 3))
    outside = torch.ones(10, 12, dtype=torch.bool)
    outside[-3:, -3:] = False
    assert torch.all(xt[:, :, outside] == 0.5)
    assert yt.tolist() == [4, 4]


@pytest.mark.parametrize(
    "corner,rows,cols",
    [
        ("top-left", slice(1, 3), slice(1, 3)),
        ("top-right", slice(1, 3), slice(9, 11)),
        ("bottom-left", slice(7, 9), slice(1, 3)),
        ("bottom-right", slice(7, 9), slice(9, 11)),
    ],
)
def test_corners_and_margin(corner, rows, cols):
    a = badnets(patch_size=2, corner=corner, margin=1)
    mask = torch.zeros(10, 12)
    mask[rows, cols] = 1
    assert torch.equal(a.mask[0, 0], mask)


def test_patch_that_does_not_fit():
    with pytest.raises(ConfigError, match="does not fit"):
        badnets(patch_size=10, margin=1)


def test_trigger_is_idempotent_and_in_range():
    a = badnets()
    x = torch.rand(5, 3, 10, 12)
    once = a.trigger(x)
    assert torch.equal(a.trigger(once), once)
    assert once.min() >= 0 and once.max() <= 1
