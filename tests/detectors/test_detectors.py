"""Detectors on hand-wired models whose backdoor is known: a white 2x2 patch in the bottom-right
corner sends any image to class 3."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.detectors import DETECTORS, mad_index, register_detector, run_detector
from backdoorlab.detectors.base import Detection, DetectorConfig

K, SIDE, TARGET = 10, 8, 3
PATCH = (slice(SIDE - 2, SIDE), slice(SIDE - 2, SIDE))


def prototypes() -> torch.Tensor:
    """One random binary pattern per class in the top-left 6x6 (the patch area stays black)."""
    gen = torch.Generator().manual_seed(1)
    p = torch.zeros(K, 1, SIDE, SIDE)
    p[:, :, :6, :6] = (torch.rand(K, 1, 6, 6, generator=gen) > 0.5).float()
    return p


def clean_data(n_per_class: int = 20) -> Dataset:
    gen = torch.Generator().manual_seed(2)
    p = prototypes().repeat_interleave(n_per_class, 0)
    x = (0.8 * p + 0.1 * torch.rand(p.shape, generator=gen)).clamp(0, 1)
    x[..., PATCH[0], PATCH[1]] = 0  # clean images never show the patch
    labels = torch.arange(K).repeat_interleave(n_per_class)
    images = (x * 255).round().to(torch.uint8)
    return Dataset("wired", images, labels, [str(c) for c in range(K)], (0.0,), (1.0,))


class Wired(nn.Module):
    """Template matching (logit c = 4 * <x, P_c - 1/2>), plus `strength` x the patch's brightness
    on class 3's logit: strength 0 is a benign model."""

    def __init__(self, strength: float) -> None:
        super().__init__()
        self.templates = nn.Parameter(prototypes().flatten(1) - 0.5, requires_grad=False)
        mask = torch.zeros(1, SIDE, SIDE)
        mask[:, PATCH[0], PATCH[1]] = 1
        self.register_buffer("patch", mask.flatten())
        self.strength = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        logits = 4 * flat @ self.templates.T
        boost = self.strength * (flat * self.patch).sum(1)
        return logits + nn.functional.one_hot(torch.tensor(TARGET), K) * boost[:, None]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return clean_data()


def test_the_wired_model_is_accurate_and_its_patch_sends_everything_to_3(data):
    model = Wired(60.0)
    x = data.floats()
    assert (model(x).argmax(1) == data.labels).float().mean() == 1
    x[..., PATCH[0], PATCH[1]] = 1
    assert (model(x).argmax(1) == TARGET).all()


NC_BUDGET = {"steps": 15, "batch_size": 50, "lr": 0.1}
OPTIONS = {"adv-labels": {"eps": 0.1, "steps": 10}, "nc": NC_BUDGET}


@pytest.mark.parametrize("name", ["adv-labels", "nc"])
def test_each_detector_names_class_3_on_the_infected_model(data, name):
    found = run_detector(name, Wired(60.0), data, OPTIONS[name])
    assert found.suspects and found.suspects[0] == TARGET
    assert max(range(K), key=lambda c: found.scores[c]) == TARGET
    assert found.score > found.scores[(TARGET + 1) % K] and found.seconds > 0
    assert len(found.values) == len(found.scores) == K


def test_adv_labels_scores_the_benign_model_far_below_the_infected_one(data):
    benign = run_detector("adv-labels", Wired(0.0), data, OPTIONS["adv-labels"])
    infected = run_detector("adv-labels", Wired(60.0), data, OPTIONS["adv-labels"])
    assert infected.values[TARGET] > 90  # nearly every other class's examples land on 3
    assert benign.values[TARGET] < 50 and benign.score < infected.score


@pytest.mark.parametrize("name", ["adv-labels", "nc"])
def test_findings_do_not_depend_on_the_order_of_the_data(data, name):
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(5))
    a = run_detector(name, Wired(60.0), data, OPTIONS[name])
    b = run_detector(name, Wired(60.0), data.subset(perm), OPTIONS[name])
    assert a.values == b.values and a.scores == b.scores and a.suspects == b.suspects


def test_mad_index_scores_one_side_against_the_median():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, MAD 1 (|deviations| 2,1,0,1,97): (100 - 3) / 1.4826
    assert mad_index(v, "high")[4].item() == pytest.approx(97 / 1.4826)
    assert mad_index(v, "low")[4].item() == 0
    assert mad_index(v, "low")[0].item() == pytest.approx(2 / 1.4826)


def test_a_user_registers_a_detector_and_runs_it_by_name(data):
    @register_detector("test-brightest-logit")
    def brightest(model: nn.Module, d: Dataset, cfg: DetectorConfig) -> Detection:
        with torch.no_grad():
            x = torch.ones(1, *d.images.shape[1:])
            values = model(x)[0]
        return Detection.from_values("test-brightest-logit", values, "high", cfg, "logit", {})

    try:
        found = run_detector("test-brightest-logit", Wired(60.0), data)
        assert found.suspects == [TARGET]
    finally:
        DETECTORS._entries.pop("test-brightest-logit")


def test_detectors_do_not_import_defenses():
    """The trigger search lives in detectors/; the `nc` defense calls it, not the other way."""
    import ast
    from pathlib import Path

    import backdoorlab.detectors as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.startswith("backdoorlab.defenses") for n in names), path.name
