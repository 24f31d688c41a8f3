import math

import pytest
import torch

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import InputSpec

SPEC = InputSpec(1, (8, 12), 10, (0.5,), (0.2,))


def sig(**kw):
    return build_attack(ATTACKS.entry("sig").config(name="sig", **kw), SPEC)


def test_signal_values_along_columns():
    a = sig(delta=0.1, frequency=3)
    expected = torch.tensor([0.1 * math.sin(2 * math.pi * j * 3 / 12) for j in range(12)])
    assert torch.allclose(a.signal[0, 0, 0], expected, atol=1e-6)
    assert torch.all(a.signal == a.signal[:, :, :1, :])  # constant down each column
    x = torch.full((2, 1, 8, 12), 0.5)
    assert torch.allclose(a.trigger(x), x + a.signal)


def test_clipping_and_test_amplitude():
    a = sig(delta=0.2, test_delta=0.4, frequency=1)
    xt, _ = a.apply(torch.zeros(1, 1, 8, 12), torch.tensor([3]))
    peak = max(math.sin(2 * math.pi * j / 12) for j in range(12))
    assert xt.min() == 0 and xt.max() == pytest.approx(0.4 * peak, abs=1e-6)
    assert torch.allclose(a.poison_trigger(torch.zeros(1, 1, 8, 12)).max(), a.signal.max())


def test_clean_label_by_default():
    cfg = ATTACKS.entry("sig").config(name="sig")
    assert cfg.label_mode == "clean" and cfg.rate_of == "target_class"
