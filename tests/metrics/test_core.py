import pytest
import torch
from torch import nn

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import Dataset
from backdoorlab.metrics import accuracy, backdoor_metrics, measure
from backdoorlab.records.metrics import Metrics


class PatchDetector(nn.Module):
    """Predicts the target 0 when the bottom-right pixel is white, else a fixed guess per image."""

    def __init__(self, guess):
        super().__init__()
        self.guess = guess

    def forward(self, x):
        out = torch.zeros(len(x), 4)
        white = x[:, 0, -1, -1] > 0.99
        labels = torch.where(white, torch.zeros(len(x), dtype=torch.int64), self.guess(x))
        out[torch.arange(len(x)), labels] = 1
        return out


def data():
    images = torch.zeros(8, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(8, dtype=torch.uint8)  # image i encodes its index
    return Dataset(
        "t", images, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), list("abcd"), (0.5,), (0.2,)
    )


def true_label(x):
    return (x[:, 0, 0, 0] * 255).round().long() % 4


def test_acc_asr_ra_by_definition():
    d = data()
    a = build_attack(ATTACKS.entry("badnets").config(name="badnets", patch_size=1), d.spec)
    model = PatchDetector(true_label)
    assert accuracy(model, d, batch_size=3) == 100.0
    asr, ra = backdoor_metrics(model, d, a, batch_size=3)
    assert asr == 100.0 and ra == 0.0

    def robust(x):  # ignores the trigger on images 5..7 (true labels 1, 2, 3)
        return true_label(x)

    class HalfRobust(PatchDetector):
        def forward(self, x):
            out = super().forward(x)
            keep = (x[:, 0, 0, 0] * 255).round() >= 5
            out[keep] = torch.nn.functional.one_hot(true_label(x[keep]), 4).float()
            return out

    asr, ra = backdoor_metrics(HalfRobust(robust), d, a, batch_size=5)
    # 6 non-target images (indices 1,2,3,5,6,7); 5,6,7 stay correct
    assert asr == 50.0 and ra == 50.0


def test_evaluate_without_attack():
    d = data()
    m = measure(PatchDetector(lambda x: torch.ones(len(x), dtype=torch.int64)), d, None)
    assert m == Metrics(acc=25.0, asr=None, ra=None)


def test_der_follows_its_definition():
    from backdoorlab.metrics.core import der

    # ASR 100 -> 10 (drop 0.9), ACC 95 -> 93 (drop 0.02): (0.9 - 0.02 + 1) / 2
    assert der(Metrics(acc=95, asr=100), Metrics(acc=93, asr=10)) == pytest.approx(0.94)
    # a defense that raises ASR or ACC earns nothing for it and loses nothing either
    assert der(Metrics(acc=90, asr=50), Metrics(acc=92, asr=60)) == pytest.approx(0.5)
    assert der(Metrics(acc=90), Metrics(acc=92)) is None
