"""The one untargeted PGD of the project: the adv-labels probe, AFT and the analyses use it."""

from __future__ import annotations

import torch

from backdoorlab.data import InputSpec
from backdoorlab.detectors.adv_labels import untargeted_examples
from backdoorlab.models import MODELS, build_model
from backdoorlab.perturb.threats import LinfBall


def small_model(num_classes=4):
    torch.manual_seed(0)
    cfg = MODELS.entry("small_cnn").config(name="small_cnn", width=8, stages=2)
    return build_model(cfg, InputSpec(3, (12, 12), num_classes, (0.5,) * 3, (0.25,) * 3)).eval()


def test_untargeted_examples_lie_in_the_ball_in_index_order_with_their_labels(synthetic):
    data = synthetic().train
    model = small_model()
    adv, labels = untargeted_examples(
        model, data, LinfBall(0.1), steps=3, alpha=0.04, batch_size=64
    )
    x = data.floats()
    assert adv.shape == x.shape
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    # untargeted PGD raises the loss of (almost) every sample over its clean loss
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        up = ce(model(adv), data.labels, reduction="none") > ce(
            model(x), data.labels, reduction="none"
        )
    assert up.float().mean() > 0.95
    with torch.no_grad():
        assert torch.equal(labels, model(adv).argmax(1))
    none, nothing = untargeted_examples(model, data, LinfBall(0.1), 1, 0.04, labels=False)
    assert nothing is None and none.shape == x.shape
