"""Detector evidence calibrated against benign reference models: robust z per class, the
references' leave-one-out null, one target or none."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from backdoorlab.detectors.base import Detection
from backdoorlab.detectors.calibrate import calibrate, robust_z
from backdoorlab.detectors.scan import ScreenConfig
from backdoorlab.errors import ConfigError


def det(values, side="high", name="adv-labels") -> Detection:
    return Detection(name, list(values), [0.0] * len(values), [], 0.0, "v", side=side)


def shares(seed: int, **override: float) -> list[float]:
    """Adversarial-label shares of a benign model: class 8 always high (a property of the
    data, as on MNIST), the rest a few percent, varying by model."""
    g = torch.Generator().manual_seed(seed)
    v = (5 + 2 * torch.rand(10, generator=g)).tolist()
    v[8] = 40 + 5 * float(torch.rand(1, generator=g))
    for k, x in override.items():
        v[int(k[1:])] = x
    return v


REFERENCES = [{"adv-labels": det(shares(s))} for s in range(1, 9)]


def test_robust_z_is_the_median_and_mad_score_on_its_side():
    refs = torch.tensor([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0], [5.0, 10.0]])
    z = robust_z(torch.tensor([8.0, 10.0]), refs, "high")
    assert z[0].item() == pytest.approx((8 - 3) / (1.4826 * 1.0))
    assert z[1].item() == 0  # the floor (5% of 10) keeps an exact agreement finite
    assert robust_z(torch.tensor([0.0, 9.0]), refs, "low")[1].item() == pytest.approx(1 / 0.5)


def test_a_class_every_reference_also_favours_is_not_flagged():
    c = calibrate({"adv-labels": det(shares(0))}, REFERENCES)  # class 8 at 40-45, like them all
    assert not c.infected and c.target is None and c.p_value > 0.05 and c.p_empirical > 0.05
    assert c.references == 8 and len(c.null) == 8


def test_a_class_no_reference_favours_is_the_target():
    c = calibrate({"adv-labels": det(shares(0, c3=60.0))}, REFERENCES)
    assert c.infected and c.target == 3 and c.p_value < 1e-3 and c.score > c.threshold
    assert c.p_empirical == 1 / 9  # no reference reaches it; 8 references cannot say less
    assert max(range(10), key=lambda k: c.z["adv-labels"][k]) == 3


def test_a_small_trigger_norm_counts_on_the_low_side():
    norms = [{"nc": det([40.0 + s + k for k in range(10)], "low", "nc")} for s in range(6)]
    suspect = {"nc": det([42.0 + k if k != 5 else 4.0 for k in range(10)], "low", "nc")}
    c = calibrate(suspect, norms)
    assert c.infected and c.target == 5


def test_too_few_references_or_a_bad_rate_is_one_clear_error():
    with pytest.raises(ConfigError, match="at least 3"):
        calibrate({"adv-labels": det(shares(0))}, REFERENCES[:2])
    with pytest.raises(ConfigError, match="fpr"):
        calibrate({"adv-labels": det(shares(0))}, REFERENCES, fpr=1.5)


@pytest.mark.parametrize(
    ("screen", "words"),
    [(True, "a number of classes"), ("3", "a number of classes"), (0, "screen.classes"),
     ({"classes": 2, "search": {"steps": 0}}, "screen.search.steps")],
)  # fmt: skip
def test_a_bad_screen_is_one_clear_error(synthetic, screen, words):
    from backdoorlab.byo.scanning import scan

    data = synthetic(train_size=32, test_size=16).train
    refs = [Wired(data, s, patch=False) for s in range(1, 4)]
    with pytest.raises(ConfigError, match=words):
        scan(Wired(data, 0, patch=False), data, detectors=["mm-bd"], references=refs,
             device="cpu", screen=screen)  # fmt: skip


class Wired(nn.Module):
    """A nearest-class-mean classifier (what training on the data would roughly give), its means
    jittered by `seed`; with `patch`, a bright top-left 3x3 corner sends any image to class 3."""

    def __init__(self, data, seed: int, patch: bool) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        x = data.floats()
        means = torch.stack([x[data.labels == c].mean(0) for c in range(data.num_classes)])
        self.means = nn.Parameter(means + 0.02 * torch.randn(means.shape, generator=g))
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = -((x[:, None] - self.means[None]) ** 2).flatten(2).sum(2)
        if self.patch:
            corner = x[:, :, :3, :3].mean((1, 2, 3))
            logits[:, 3] = logits[:, 3] + 200 * corner
        return logits


def test_a_wired_backdoor_is_flagged_with_its_target_beside_wired_references(synthetic):
    from backdoorlab.byo.scanning import scan

    data = synthetic(train_size=64, test_size=16).train
    # at eps 0.3 every model sends most adversarial examples to class 0 (a property of the data)
    options = {"adv-labels": {"eps": 0.3, "steps": 10, "limit": 64}}
    refs = [Wired(data, s, patch=False) for s in range(1, 7)]
    infected = scan(Wired(data, 0, patch=True), data, detectors=["adv-labels"], options=options,
                    references=refs, device="cpu")  # fmt: skip
    assert infected.calibration.infected and infected.calibration.target == 3
    assert infected.verdict.startswith("backdoor suspected: target class 3 (")
    assert "calibrated by 6 references" in infected.verdict
    benign = scan(Wired(data, 0, patch=False), data, detectors=["adv-labels"], options=options,
                  references=refs, device="cpu")  # fmt: skip
    assert not benign.calibration.infected and benign.verdict.startswith("no backdoor found (")
    assert benign.detections["adv-labels"].values[0] > 50  # class 0 dominates, as for them all
    assert 0 in benign.detections["adv-labels"].suspects  # which the uncalibrated index flags


def test_profile_evidence_forgives_a_model_that_is_sharper_everywhere_not_one_class():
    """A suspect whose class profile is the references' scaled up (a stronger model trained on
    more data) is not flagged on profile evidence, though raw values flag class 8; one class
    above the scaled profile is."""
    refs = [{"mm-bd": det(shares(s))} for s in range(1, 9)]
    median = torch.tensor([shares(s) for s in range(1, 9)]).median(0).values
    own = torch.tensor(shares(0)) - median  # a model's own deviations, as large as theirs
    sharper = (2 * median + own).tolist()  # the references' profile at twice the margin
    assert calibrate({"mm-bd": det(sharper)}, refs, evidence="values").infected
    calm = calibrate({"mm-bd": det(sharper)}, refs, evidence="profile", floor=0.5)
    assert not calm.infected
    shortcut = list(sharper)
    shortcut[4] = 60.0
    c = calibrate({"mm-bd": det(shortcut)}, refs, evidence="profile", floor=0.5)
    assert c.infected and c.target == 4


def test_the_threshold_never_falls_below_its_floor():
    c = calibrate({"adv-labels": det(shares(0, c3=60.0))}, REFERENCES, min_threshold=1e3)
    assert c.threshold == 1e3 and not c.infected and c.target is None


def test_raw_shares_where_every_reference_gives_zero_are_scaled_by_the_probe_s_step():
    """Issue 26's SGD LeNet: references on 250 images gave most classes a share of exactly 0,
    and a scale of 1e-6 made z-scores of 1e7 for the suspect and the references alike."""

    def zeros_but(seed: int, k: int) -> Detection:
        v = [0.0] * 10
        v[k] = 30.0 + seed  # adversarial labels pile up on one class, the rest get none
        return Detection("adv-labels-l2", v, [0.0] * 10, [], 0.0, "v", resolution=0.4)

    refs = [{"adv-labels-l2": zeros_but(s, 8)} for s in range(8)]
    suspect = zeros_but(0, 8)
    suspect.values[3] = 12.0  # a share no reference gives class 3
    found = calibrate({"adv-labels-l2": suspect}, refs, evidence="values", floor=0.5)
    assert found.z["adv-labels-l2"][3] == pytest.approx(12.0 / 0.4)  # the step, not 1e-6
    assert found.target == 3 and found.infected and max(found.null) < 5
    continuous = replace(suspect, resolution=0.0)
    refs0 = [{"adv-labels-l2": replace(r["adv-labels-l2"], resolution=0.0)} for r in refs]
    assert calibrate({"adv-labels-l2": continuous}, refs0, evidence="values").score > 1e6


def _norms(seed: int, k: int = 3) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (60 + 20 * torch.rand(k, generator=g)).tolist()


def test_a_screen_s_tiny_trigger_flags_a_class_the_probes_alone_do_not():
    from backdoorlab.detectors.calibrate import screened

    probes = calibrate({"adv-labels": det(shares(0))}, REFERENCES, min_threshold=10)
    assert not probes.infected
    refs = [_norms(s) for s in range(1, 9)]
    c = screened(probes, [2, 5, 8], [70.0, 6.0, 65.0], refs, floor=0.5, min_threshold=10)
    assert c.infected and c.target == 5 and c.score > 10
    assert c.screen["probes_score"] == probes.score and c.screen["classes"] == [2, 5, 8]
    per_class = c.class_z()
    assert per_class[5] == c.score  # the screened class carries the score
    assert per_class[3] == probes.class_z()[3]  # a class not searched keeps the probes' z
    # each reference's null score is its largest z of either kind against the others
    assert all(n >= p for n, p in zip(c.null, probes.null, strict=True))
    assert len(c.screen["null"]) == 8


def test_a_small_trigger_every_reference_also_has_is_not_flagged():
    from backdoorlab.detectors.calibrate import screened

    probes = calibrate({"adv-labels": det(shares(0))}, REFERENCES, min_threshold=10)
    refs = [[8.0 + s / 10, 70.0 + s, 66.0 - s] for s in range(8)]  # class 2 is easy for all
    c = screened(probes, [2, 5, 8], [8.2, 69.0, 64.0], refs, floor=0.5, min_threshold=10)
    assert not c.infected and c.target is None and c.score < 3
    with pytest.raises(ConfigError, match="3 references' norms for 8"):
        screened(probes, [2, 5, 8], [8.2, 69.0, 64.0], refs[:3])


def test_a_screen_finds_the_wired_patch_and_searches_a_kept_reference_once(
    synthetic, tmp_path, monkeypatch
):
    """End to end: Neural Cleanse's search on the probes' top classes of a wired backdoor
    against trained references; a second scan searches only the suspect's classes again."""
    import backdoorlab.detectors.scan as scan_module
    from backdoorlab.byo.scanning import scan

    data = synthetic(train_size=128, test_size=16).train
    options = {"mm-bd": {"starts": 2, "steps": 20}}
    refs = [Wired(data, s, patch=False) for s in range(1, 7)]
    # a partial search budget keeps the screen's other settings (its batch size of 128)
    budget = ScreenConfig(classes=2, search={"steps": 20, "batches_per_step": 1})
    assert budget.search.batch_size == 128
    infected = scan(Wired(data, 0, patch=True), data, detectors=["mm-bd"], options=options,
                    references=refs, device="cpu", screen=budget)  # fmt: skip
    screen = infected.calibration.screen
    assert 3 in screen["classes"] and len(screen["classes"]) == 2
    k = screen["classes"].index(3)
    # the patch's trigger is a few pixels; no wired reference has one for class 3
    assert screen["norms"][k] < min(row[k] for row in screen["reference_norms"]) / 3
    assert infected.calibration.infected and infected.calibration.target == 3
    from backdoorlab.byo.scanning import scan_page

    (row,) = [line for line in scan_page(infected).splitlines() if line.startswith("| screen")]
    cells = row.strip("|").split("|")[1:]
    assert [c.strip() == "-" for c in cells] == [c not in screen["classes"] for c in range(4)]

    searched = []
    real = scan_module.reverse_trigger

    def counted(m, d, t, cfg, seed):
        searched.append(t)
        return real(m, d, t, cfg, seed)

    monkeypatch.setattr(scan_module, "reverse_trigger", counted)
    model = plain_net_for(data)
    kw = dict(detectors=["mm-bd"], options=options, references=3, device="cpu",
              screen=budget.model_dump(),
              recipe={"count": 3, "train": {"epochs": 1, "batch_size": 32, "eval_every": 0}},
              cache=tmp_path / "refs")  # fmt: skip
    first = scan(model, data, **kw)
    assert len(searched) == 2 * (1 + 3)  # the suspect's two classes, and each reference's
    searched.clear()
    second = scan(model, data, **kw)
    assert len(searched) == 2

    def found(scan) -> dict:
        return {k: v for k, v in scan.calibration.screen.items() if k != "seconds"}

    assert found(second) == found(first)  # the same norms, the references' reread
    assert first.calibration.screen["seconds"] > 0


def plain_net_for(data) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(data.channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(8 * 16, data.num_classes),
    )  # fmt: skip
