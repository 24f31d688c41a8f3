"""The calibrated scan end to end on tiny data: references trained by the scan and kept, the
user's model left as found, MM-BD's margin probe and the L_2 adversarial labels."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.detectors.base import run_detector
from backdoorlab.errors import ConfigError
from backdoorlab.train.config import TrainConfig

TINY = {"count": 3, "train": {"epochs": 1, "batch_size": 32, "eval_every": 0}}
FAST = {"mm-bd": {"starts": 2, "steps": 5}, "adv-labels": {"steps": 2}}


def plain_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )  # fmt: skip


def test_a_second_scan_with_cached_references_trains_nothing(synthetic, tmp_path):
    from backdoorlab.byo.scanning import scan

    data = synthetic(train_size=64).train
    model = plain_net()
    model[0].weight.requires_grad_(False)  # a user's frozen layer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kw = dict(detectors=["mm-bd", "adv-labels"], options=FAST, references=3, device="cpu",
              recipe=TINY, cache=tmp_path / "refs")  # fmt: skip
    first = scan(model, data, **kw)
    assert first.references_trained == 3 and first.probe_images == 32
    # references on 32 images are far below any size measured to hold the stated FPR
    assert first.reference_images == 32 and first.caution.startswith(
        "caution: the references trained on 32 images"
    )
    assert first.calibration.references == 3 and first.infected is not None
    assert len(first.reference_accuracy) == 3 and 0 <= first.accuracy <= 100
    second = scan(model, data, **kw)
    assert second.references_trained == 0
    assert second.calibration.null == first.calibration.null  # the same references, reread
    assert second.score == first.score
    assert [p.requires_grad for p in model.parameters()] == [False] + [True] * 9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    uncalibrated = scan(model, data, **{**kw, "references": None})
    assert uncalibrated.calibration is None and uncalibrated.probe_images == 64
    assert uncalibrated.caution is None  # no references trained, nothing to warn about
    assert "uncalibrated" in uncalibrated.verdict


class Shortcut(nn.Module):
    """Logits from a fixed random linear map; with `target`, a bright top-left corner adds a
    large bonus to that class (a backdoor no natural image of the data triggers)."""

    def __init__(self, target: int | None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(0.01 * torch.randn(4, 3 * 12 * 12, generator=g))
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x.flatten(1) @ self.w.T
        if self.target is not None:
            bonus = torch.zeros_like(logits)
            bonus[:, self.target] = 50 * x[:, :, :3, :3].mean((1, 2, 3))
            logits = logits + bonus
        return logits


def test_mm_bd_finds_the_class_with_a_margin_no_image_of_the_data_gives(synthetic):
    data = synthetic(train_size=32).train
    infected = run_detector("mm-bd", Shortcut(2), data, {"starts": 4, "steps": 50})
    assert max(range(4), key=lambda c: infected.values[c]) == 2
    assert infected.values[2] > 30 and infected.suspects[:1] == [2]
    benign = run_detector("mm-bd", Shortcut(None), data, {"starts": 4, "steps": 50})
    assert max(benign.values) < 10 and infected.details == {"starts": 4, "steps": 50}


def test_adv_labels_l2_is_the_same_probe_in_an_l2_ball(synthetic):
    data = synthetic(train_size=32).train
    found = run_detector("adv-labels-l2", plain_net(), data, {"steps": 2})
    assert found.detector == "adv-labels-l2" and found.details["norm"] == "l2"
    assert found.details["eps"] == 2.0 and len(found.values) == 4
    assert all(0 <= v <= 100 for v in found.values)


def test_mm_bd_for_one_class_is_its_share_of_the_run_for_all(synthetic):
    from backdoorlab.detectors.mm_bd import MMBDConfig, max_margins

    cfg = MMBDConfig(name="mm-bd", starts=3, steps=10)
    model = Shortcut(2)
    every, images = max_margins(model, (3, 12, 12), 4, cfg, torch.device("cpu"))
    one, image = max_margins(model, (3, 12, 12), 4, cfg, torch.device("cpu"), classes=[2])
    assert one.tolist() == pytest.approx(every[2:3].tolist())
    assert torch.allclose(image[0], images[2]) and 0 <= image.min() and image.max() <= 1


def test_the_runner_scans_through_the_same_path_and_keeps_the_references(digits_config, tmp_path):
    from backdoorlab.experiment.runner import run

    cfg = {
        **digits_config,
        "train": {**digits_config["train"], "epochs": 2},
        "detect": {"mm-bd": FAST["mm-bd"]},
        "calibrate": {"references": TINY, "evidence": "profile", "min_threshold": 3.0},
    }
    cache = tmp_path / "cache"
    first = run(cfg, out=tmp_path / "a", add_row=False, cache=cache, progress=False)
    found = first.metrics.detect
    assert set(found) == {"mm-bd", "calibrated"}
    details = found["calibrated"]["details"]
    # each reference trained once, and again per retry where it did not learn (TINY is short)
    attempts = details["reference_attempts"]
    assert details["references_trained"] == sum(a + 1 for a in attempts) and len(attempts) == 3
    assert details["references"] == 3
    assert details["threshold"] >= 3.0 and len(details["reference_values"]["mm-bd"]) == 3
    assert details["probe_images"] == 180  # half of digits' 360 test images; the rest trains
    assert len(details["reference_accuracy"]) == 3 and 0 <= details["accuracy"] <= 100
    second = run(cfg, out=tmp_path / "b", add_row=False, cache=cache, progress=False)
    again = second.metrics.detect["calibrated"]["details"]
    assert again["references_trained"] == 0 and again["null"] == details["null"]
    assert first.config.to_dict()["calibrate"]["evidence"] == "profile"


def test_auto_repair_leaves_a_model_the_scan_clears_unchanged(synthetic, tmp_path):
    from backdoorlab.byo.api import repair

    data = synthetic(train_size=80).train
    model = plain_net().eval()
    fixed, report = repair(model, data, references=3, cache=tmp_path, device="cpu")
    assert report.defense == "auto" and report.steps == []
    assert report.scan_before == report.scan_after and not report.scan_before["infected"]
    assert report.summary.startswith("no backdoor found (score ")
    assert report.summary.endswith("the model is left unchanged") and not report.still_flagged
    pairs = zip(model.state_dict().values(), fixed.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    held = report.held_out
    assert held["images"] == 16 and held["acc_before"] == held["acc_after"]
    assert report.reference_images == 40 and "trained on 40 images" in report.caution
    # the first scan's accuracies on its probe images: `scan`'s, as is its score (below)
    assert len(report.probe_accuracy["references"]) == 3
    # the repair's first scan is `scan`'s on the same data: its references, found in the cache
    from backdoorlab.byo.scanning import scan

    alone = scan(model, data, references=3, cache=tmp_path, device="cpu")
    assert alone.references_trained == 0 and alone.score == report.scan_before["score"]
    assert alone.reference_accuracy == report.probe_accuracy["references"]
    assert report.to_dict()["summary"] == report.summary
    assert "detectors" not in report.options  # unset: the scan's defaults, hashed as before
    # the scan's probes and evidence can be chosen; an unknown probe is one clear error
    _, other = repair(model, data, references=3, cache=tmp_path, device="cpu",
                      scan_detectors=["adv-labels"], scan_evidence="values")  # fmt: skip
    assert other.options["detectors"] == ["adv-labels"] and other.options["evidence"] == "values"
    assert other.scan_before["score"] != report.scan_before["score"]
    with pytest.raises(ConfigError, match="detector bogus"):
        repair(model, data, references=3, cache=tmp_path, device="cpu", scan_detectors=["bogus"])


def test_auto_repair_refuses_a_named_defenses_options(synthetic):
    from backdoorlab.byo.api import repair
    from backdoorlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"auto chooses its own settings; \['eps'\] belong"):
        repair(plain_net(), synthetic(train_size=32).train, eps=0.1)


def test_auto_gives_each_repair_of_its_plan_its_own_settings():
    from backdoorlab.assess.repair import AutoConfig
    from backdoorlab.config_base import validated
    from backdoorlab.defenses.base import DEFENSES

    keyed = AutoConfig(name="auto", options={"nc": {"epochs": 2}, "aft": {"eps": 0.1}})
    assert keyed.step_options("nc") == {"epochs": 2} and keyed.step_options("aft") == {"eps": 0.1}
    one = AutoConfig(name="auto", plan=["ft"], options={"epochs": 1})  # a plan of one: flat
    assert one.step_options("ft") == {"epochs": 1}
    by_name = AutoConfig(name="auto", plan=["ft"], options={"ft": {"epochs": 1}})  # or by name
    assert by_name.step_options("ft") == {"epochs": 1}
    assert AutoConfig(name="auto").step_options("aft") == {}
    # flat settings for two repairs would give NC's `steps` to AFT's PGD too: refused in a line
    with pytest.raises(ConfigError, match=r"the plan \['nc', 'aft'\] has several repairs"):
        validated(DEFENSES, {"name": "auto", "options": {"steps": 60}}, "defense auto")
    with pytest.raises(ConfigError, match=r"plan: \['at', 'bogus'\] are not post-training"):
        validated(DEFENSES, {"name": "auto", "plan": ["nc", "at", "bogus"]}, "defense auto")


def test_repair_takes_auto_s_plan_and_each_repair_s_settings(synthetic, tmp_path):
    from backdoorlab.byo.api import repair

    data = synthetic(train_size=80).train
    kw = dict(references=3, cache=tmp_path, device="cpu")
    _, report = repair(plain_net().eval(), data, plan=["aft", "nc"],
                       plan_options={"aft": {"eps": 0.2}}, **kw)  # fmt: skip
    assert report.options["plan"] == ["aft", "nc"]
    assert report.options["options"] == {"aft": {"eps": 0.2}}
    with pytest.raises(ConfigError, match="plan and plan_options belong to defense auto, not 'ft'"):
        repair(plain_net(), data, defense="ft", plan=["ft"], **kw)
    with pytest.raises(ConfigError, match="several repairs; give each its own settings"):
        repair(plain_net(), data, plan_options={"eps": 0.2}, **kw)


def test_a_repair_that_unlearned_no_trigger_still_reports_the_flagged_class_s_one(synthetic):
    """Where auto's steps unlearned no reversed trigger (AFT cleared the class, or a named
    defense with evidence), the flagged class's trigger is searched on the model before the
    repair, so the report still holds a reversed-trigger ASR."""
    from backdoorlab.assess.repair import AutoConfig, evidence_trigger, reversed_trigger_asr

    data = synthetic(train_size=48).train
    options = {"nc": {"steps": 40, "batch_size": 16}, "aft": {"steps": 3}}
    cfg = AutoConfig(name="auto", plan=["aft", "nc"], options=options)
    trigger = evidence_trigger(Shortcut(2), data, 2, cfg, seed=0)
    mask, pattern, norm = trigger
    assert mask.shape == (1, 1, 12, 12) and pattern.shape == (1, 3, 12, 12) and norm > 0
    assert reversed_trigger_asr(Shortcut(2), data, trigger, 2) >= 90  # it sends images to 2
    assert reversed_trigger_asr(Shortcut(None), data, trigger, 2) < 90  # the backdoor's, not 2's


def test_the_evidence_trigger_searches_at_the_plan_s_nc_settings_only(monkeypatch, synthetic):
    import backdoorlab.assess.repair as repair_module

    seen = []
    monkeypatch.setattr(repair_module, "reverse_trigger",
                        lambda model, data, target, cfg, seed: seen.append(cfg))  # fmt: skip
    data = synthetic(train_size=16).train
    keyed = repair_module.AutoConfig(name="auto", plan=["aft", "nc"],
                                     options={"nc": {"steps": 7, "epochs": 1},
                                              "aft": {"steps": 3}})  # fmt: skip
    repair_module.evidence_trigger(Shortcut(2), data, 2, keyed, seed=0)
    flat = repair_module.AutoConfig(name="auto", plan=["aft"], options={"steps": 3})
    repair_module.evidence_trigger(Shortcut(2), data, 2, flat, seed=0)  # AFT's steps are not NC's
    assert [c.steps for c in seen] == [7, repair_module.TriggerSearch().steps]


def _scan(z: list[float], threshold: float = 10.0) -> dict:
    top = max(range(len(z)), key=lambda k: z[k])
    infected = z[top] > threshold
    return {"score": z[top], "threshold": threshold, "target": top if infected else None,
            "infected": infected, "p_empirical": 0.11, "class_z": z}  # fmt: skip


def test_the_repair_summary_follows_the_class_the_first_scan_flagged():
    from backdoorlab.byo.api import RepairReport

    before = _scan([1.0, 2.0, 40.0, 3.0])
    steps = [{"defense": "nc", "options": {"target": 2}, "scan": {}}]

    def report(after):
        return RepairReport("auto", {}, 100, {}, scan_before=before, scan_after=after, steps=steps)

    cleared = report(_scan([1.0, 2.0, -5.0, 3.0]))
    assert cleared.summary.startswith("repaired by nc: the rescan finds no backdoor (class 2: z ")
    assert not cleared.still_flagged
    kept = report(_scan([1.0, 2.0, 30.0, 3.0]))
    assert kept.summary.startswith("STILL FLAGGED after nc: the rescan still finds class 2")
    assert kept.still_flagged
    moved = report(_scan([25.0, 2.0, -5.0, 3.0]))
    assert moved.still_flagged and "class 2 is cleared" in moved.summary
    assert "but class 0 stands out (z 1.00 before the repair, 25.00 after)" in moved.summary


def test_the_held_out_line_says_what_the_trigger_free_evidence_measured():
    from backdoorlab.byo.api import RepairReport

    bare = {"images": 80, "acc_before": 98.75, "acc_after": 97.5}
    assert RepairReport("auto", {}, 400, {}).held_out_line is None  # no scan, no evidence
    line = RepairReport("auto", {}, 400, {}, held_out=bare).held_out_line
    assert line == "held-out clean data (80 images): ACC 98.75 -> 97.50"
    searched = {
        **bare, "reversed_trigger_target": 5, "reversed_trigger_unlearned": False,
        "reversed_trigger_asr_before": 97.2, "reversed_trigger_asr_after": 0.0,
        "reversed_trigger_norm_before": 0.92, "reversed_trigger_norm_after": 51.8,
    }  # fmt: skip
    line = RepairReport("auto", {}, 400, {}, held_out=searched).held_out_line
    assert "reversed trigger of class 5: ASR 97.20 -> 0.00 (searched for evidence; no step" in line
    assert line.endswith("smallest trigger found for it: mask L1 0.9 before, 51.8 after "
                         "(searched again)")  # fmt: skip
    unlearned = {**searched, "reversed_trigger_unlearned": True}
    line = RepairReport("auto", {}, 400, {}, held_out=unlearned).held_out_line
    assert line.endswith("mask L1 0.9 when unlearned, 51.8 after (searched again)")


def test_a_config_that_calibrates_nothing_is_one_clear_error(digits_config):
    from backdoorlab.errors import ConfigError
    from backdoorlab.experiment.config import load_config

    with pytest.raises(ConfigError, match="calibrate needs detectors to calibrate"):
        load_config({**digits_config, "calibrate": {}})
    with pytest.raises(ConfigError, match=r"calibrate.detectors \['nc'\] are not in detect"):
        load_config({**digits_config, "detect": {"mm-bd": {}}, "calibrate": {"detectors": ["nc"]}})


def test_a_named_defense_with_evidence_runs_even_where_the_scan_finds_nothing(synthetic, tmp_path):
    from backdoorlab.byo.api import repair

    data = synthetic(train_size=80).train
    model = plain_net().eval()
    plain, bare = repair(model, data, "ft", device="cpu", epochs=1)
    assert bare.scan_before is None and "evidence=True" in bare.summary
    fixed, report = repair(
        model, data, "ft", references=3, cache=tmp_path, device="cpu", evidence=True, epochs=1
    )
    assert report.defense == "ft" and report.options["epochs"] == 1
    assert [s["defense"] for s in report.steps] == ["ft"] and not report.scan_before["infected"]
    assert report.summary.startswith("ft ran although the scan found no backdoor before it")
    changed = zip(model.state_dict().values(), fixed.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in changed)  # the user forced a repair: it ran
    assert report.held_out["images"] == 16 and "reversed_trigger_asr_after" not in report.held_out


def test_defense_auto_runs_in_a_config_and_keeps_its_references_in_the_stage_cache(
    digits_config, tmp_path
):
    from backdoorlab.experiment.runner import run

    cfg = {
        **digits_config,
        "train": {**digits_config["train"], "epochs": 2},
        "defense": {"name": "auto", "clean_share": 0.2, "references": 3, "rounds": 1},
    }
    cache = tmp_path / "cache"
    first = run(cfg, out=tmp_path / "a", add_row=False, cache=cache, progress=False)
    m = first.metrics
    assert None not in (m.scan_before, m.scan_after, m.steps, m.held_out)
    assert m.before.asr is not None and m.der is not None
    held = m.held_out
    assert held["images"] > 0 and held["acc_before"] >= 0
    if m.scan_before["infected"]:  # the plan's first step, on the class the scan flagged
        assert m.steps[0]["defense"] == "nc"
        assert m.steps[0]["options"]["target"] == m.scan_before["target"]
    else:
        assert m.steps == [] and m.scan_after == m.scan_before
    kept = list((cache / "auxiliary").iterdir())
    assert len(kept) >= 3  # the scan's references are kept beside the infected model


def test_the_caution_names_sizes_below_the_smallest_measured_to_hold_the_fpr():
    from backdoorlab.detectors.scan import HELD_FPR_IMAGES, reference_caution

    assert reference_caution(0) is None  # references given by the user: nothing trained here
    assert reference_caution(HELD_FPR_IMAGES) is None
    below = reference_caution(HELD_FPR_IMAGES - 1)
    assert below is not None and f"trained on {HELD_FPR_IMAGES - 1} images" in below


def test_the_caution_names_references_that_did_not_learn_the_task():
    from backdoorlab.detectors.scan import accuracy_caution, scan_caution

    assert accuracy_caution(None, [10.0]) is None  # not calibrated: nothing compared
    assert accuracy_caution(94.0, [90.0, 85.5, 47.5]) is None  # half the model's or more
    two = accuracy_caution(94.3, [13.6, 90.0, 13.6, 20.25])
    assert two.startswith("caution: 3 of 4 references reach 13.6-20.2% accuracy")
    assert "the model's 94.3%" in two
    assert "references reach 13.6% accuracy" in accuracy_caution(94.3, [13.6, 90.0])
    both = scan_caution(160, 94.3, [13.6, 90.0]).split("\n")
    assert both[0].startswith("caution: the references trained on 160 images")
    assert both[1].startswith("caution: 1 of 2 references reach 13.6%")
    assert scan_caution(0, 94.3, [90.0]) is None


def test_the_note_names_the_references_trained_again_and_how():
    from backdoorlab.detectors.scan import retry_note, scan_caution

    assert retry_note([]) is None and retry_note([0, 0, 0]) is None
    note = retry_note([0, 2, 0, 1])
    assert note.startswith("note: 2 of 4 references (number 2, 4) did not learn the task")
    assert "rate divided and the epochs multiplied by 4, 2 " in note
    lines = scan_caution(160, 94.3, [13.6, 90.0], [3, 0]).split("\n")
    assert [w.split(":")[0] for w in lines] == ["caution", "caution", "note"]


class Nearest(nn.Module):
    """Sends an image to the labels of the stored images nearest to it (a soft 1-NN): 100% on
    the images it stores with their labels, chance with the labels shuffled."""

    def __init__(self, data: Dataset, labels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("keys", data.floats(torch.arange(len(data))).flatten(1))
        self.register_buffer("onehot", torch.nn.functional.one_hot(labels, 4).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        near = -(torch.cdist(x.flatten(1), self.keys) ** 2) / 0.1
        return torch.logsumexp(near[:, :, None] + self.onehot.log()[None], dim=1)


def test_a_scan_against_references_that_learned_nothing_says_so(synthetic):
    from backdoorlab.byo.scanning import scan

    data = synthetic(train_size=48).train
    g = torch.Generator().manual_seed(0)
    refs = [Nearest(data, data.labels[torch.randperm(len(data), generator=g)]) for _ in range(3)]
    probe = {"mm-bd": FAST["mm-bd"]}
    result = scan(Nearest(data, data.labels), data, detectors=["mm-bd"], options=probe,
                  references=refs, device="cpu")  # fmt: skip
    assert result.accuracy == 100.0 and max(result.reference_accuracy) < 50
    assert result.caution.startswith("caution: 3 of 3 references reach ")
    assert "did not learn the task" in result.caution and result.to_dict()["caution"]
    from backdoorlab.byo.scanning import scan_page

    page = scan_page(result)
    assert "*caution: 3 of 3 references reach " in page and "the task, so the verdict" in page


def test_calibrating_a_detector_that_does_not_run_is_one_error_before_any_work():
    from backdoorlab.detectors.base import DETECTORS
    from backdoorlab.detectors.scan import CalibrationConfig, scan_model

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    images, labels = torch.zeros(20, 1, 8, 8, dtype=torch.uint8), torch.arange(20) % 10
    data = Dataset("toy", images, labels, [str(c) for c in range(10)], (0.5,), (0.5,))
    detectors = {"mm-bd": DETECTORS.validate({"name": "mm-bd"})}
    with pytest.raises(ConfigError, match=r"calibrate.detectors: \['nc'\] do not run"):
        scan_model(model, data, detectors, CalibrationConfig(detectors=["nc"]))


def test_a_kept_scan_recalibrates_to_what_a_scan_at_those_settings_gives(synthetic):
    from backdoorlab.detectors.base import DETECTORS
    from backdoorlab.detectors.scan import (
        CalibrationConfig,
        calibrated_detection,
        recalibrated_detection,
        scan_model,
    )

    data = synthetic(train_size=32).train
    probes = {n: DETECTORS.validate({"name": n, **o}) for n, o in FAST.items()}
    refs = []
    for seed in range(4):
        torch.manual_seed(seed)
        refs.append(plain_net())
        refs[-1].load_state_dict({k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                                  for k, v in refs[-1].state_dict().items()})  # fmt: skip

    def record(cal: CalibrationConfig) -> dict:
        outcome = scan_model(plain_net(), data, probes, cal, references=refs)
        found = {n: d.to_dict() for n, d in outcome.detections.items()}
        return {**found, "calibrated": calibrated_detection(outcome)}

    both = CalibrationConfig(evidence="values", min_threshold=0.0)
    kept = record(both)
    again = recalibrated_detection(kept, both)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in kept["calibrated"].items() if k != "seconds"
    }
    one = CalibrationConfig(detectors=["adv-labels"], evidence="index", min_threshold=0.0)
    fresh = record(one)["calibrated"]
    moved = recalibrated_detection(kept, one)
    assert moved["values"] == fresh["values"] and moved["score"] == fresh["score"]
    assert moved["details"]["null"] == fresh["details"]["null"]
    assert list(moved["details"]["z"]) == ["adv-labels"]
    with pytest.raises(ConfigError, match="keeps no references' values"):
        recalibrated_detection({n: kept[n] for n in probes}, both)
    with pytest.raises(ConfigError, match=r"\['nc'\] were not run"):
        recalibrated_detection(kept, CalibrationConfig(detectors=["nc"]))


def test_auto_s_rescans_screen_the_class_its_first_scan_flagged(monkeypatch, synthetic):
    """With a screen, the first scan searches the probes' top classes; each rescan after a repair
    searches the class the first scan flagged, on the model and the repaired references."""
    import backdoorlab.assess.repair as repair_module
    from backdoorlab.detectors.calibrate import Calibration
    from backdoorlab.detectors.scan import ScanOutcome

    data = synthetic(train_size=40).train
    calls = []

    def fake(model, clean, detectors, calibration, refs=None, store=None, progress=False,
             screen_classes=None, reference_keys=None):  # fmt: skip
        calls.append((refs is None, screen_classes, calibration.screen.classes))
        flagged = refs is None  # the first scan flags class 2; the rescan clears it
        z = [0.0] * 4
        z[2] = 20.0 if flagged else 1.0
        c = Calibration(max(z), 2 if flagged else None, 0.01, 0.1, flagged, 10.0, 0.05, 3,
                        {"mm-bd": z}, [1.0, 2.0, 3.0])  # fmt: skip
        return ScanOutcome({}, c, 0, len(clean), accuracy=90.0, reference_accuracy=[90.0] * 3,
                           references=[plain_net() for _ in range(3)],
                           reference_attempts=[0, 0, 0])  # fmt: skip

    monkeypatch.setattr(repair_module, "scan_model", fake)
    blank = (torch.zeros(1, 1, 12, 12), torch.zeros(1, 3, 12, 12), 1.0)
    monkeypatch.setattr(repair_module, "evidence_trigger", lambda *a: blank)
    cfg = repair_module.AutoConfig(name="auto", screen=2, plan=["ft"], options={"epochs": 1})
    _, evidence = repair_module.auto_repair(
        plain_net(), data, TrainConfig(eval_every=0), torch.device("cpu"), cfg, 0, None
    )
    assert calls == [(True, None, 2), (False, [2], 2)]
    assert [s["defense"] for s in evidence["steps"]] == ["ft"]


def test_auto_keeps_references_repaired_alike_and_a_second_repair_repairs_none(
    monkeypatch, synthetic, tmp_path
):
    """A repair that does not read the suspect (no `repeat` of its own) gives every suspect the
    same repaired references: they are kept, and the next repair on the same data and
    references reuses them; Neural Cleanse's, which unlearns the suspect's triggers, is not."""
    import backdoorlab.assess.repair as repair_module
    from backdoorlab.config_base import validated
    from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, build_defense
    from backdoorlab.detectors.calibrate import Calibration
    from backdoorlab.detectors.scan import ScanOutcome
    from backdoorlab.experiment.cache import StageCache

    data = synthetic(train_size=40).train
    refs = []
    for i in range(3):
        torch.manual_seed(i + 1)
        refs.append(nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 4)))
    rescans = []

    def fake(model, clean, detectors, calibration, given=None, store=None, progress=False,
             screen_classes=None, reference_keys=None):  # fmt: skip
        if given is not None:
            rescans.append(([r.state_dict() for r in given], reference_keys))
        z = [0.0, 0.0, 20.0 if given is None else 1.0, 0.0]  # class 2 flagged, then cleared
        c = Calibration(max(z), 2 if given is None else None, 0.01, 0.1, given is None, 10.0,
                        0.05, 3, {"mm-bd": z}, [1.0, 2.0, 3.0])  # fmt: skip
        return ScanOutcome({}, c, 0, len(clean), accuracy=90.0, reference_accuracy=[90.0] * 3,
                           references=[copy.deepcopy(r) for r in refs],
                           reference_attempts=[0, 0, 0],
                           reference_keys=["ref-a", "ref-b", "ref-c"])  # fmt: skip

    repeats = []
    real = Defense.repeat

    def counted(self, model, ctx):
        repeats.append(self.cfg.name)
        return real(self, model, ctx)

    monkeypatch.setattr(repair_module, "scan_model", fake)
    monkeypatch.setattr(Defense, "repeat", counted)
    blank = (torch.zeros(1, 1, 12, 12), torch.zeros(1, 3, 12, 12), 1.0)
    monkeypatch.setattr(repair_module, "evidence_trigger", lambda *a: blank)
    cfg = repair_module.AutoConfig(name="auto", plan=["ft"], options={"epochs": 1})
    store = StageCache(tmp_path / "cache")

    def repair() -> None:
        torch.manual_seed(0)
        suspect = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 4))
        repair_module.auto_repair(
            suspect, data, TrainConfig(eval_every=0), torch.device("cpu"), cfg, 0, store
        )

    repair()
    assert repeats == ["ft"] * 3  # each reference repaired once
    ((first, keys),) = rescans
    assert len(set(keys)) == 3 and not set(keys) & {"ref-a", "ref-b", "ref-c"}
    assert any(not torch.equal(first[0][k], refs[0].state_dict()[k]) for k in first[0])
    repeats.clear()
    repair()
    assert repeats == []  # the second repair found all three kept
    second, again = rescans[1]
    assert again == keys
    for a, b in zip(first, second, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    nc = build_defense(validated(DEFENSES, {"name": "nc"}, "defense nc"))
    ctx = DefenseContext(train=data, train_config=TrainConfig(), device=torch.device("cpu"), seed=0)
    assert repair_module.repaired_keys(["ref-a"], nc, ctx) == []


def test_a_repaired_reference_whose_layers_changed_is_not_kept(synthetic, tmp_path):
    import backdoorlab.assess.repair as repair_module
    from backdoorlab.defenses.base import DefenseContext
    from backdoorlab.experiment.cache import StageCache

    class Grows:  # a user's repair that adds a layer
        def repeat(self, model, ctx):
            return nn.Sequential(model, nn.Linear(4, 4))

    data = synthetic(train_size=8).train
    ctx = DefenseContext(train=data, train_config=TrainConfig(), device=torch.device("cpu"), seed=0)
    store = StageCache(tmp_path / "cache")
    ref = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 4))
    grown = repair_module._repeated(Grows(), ref, ctx, 0, "key", store)
    assert len(grown) == 2 and store.get_state("key") is None


@pytest.mark.parametrize(
    ("unlearn_small", "screen_z", "steps"),
    [(True, 30.0, ["ft", "nc"]), (False, 30.0, ["ft"]), (True, 2.0, ["ft"])],
)
def test_auto_unlearns_a_small_trigger_the_rescan_cleared_only_when_asked(
    monkeypatch, synthetic, unlearn_small, screen_z, steps
):
    """With `unlearn_small`, a first scan whose trigger search found a small trigger for the
    flagged class (screen z above the threshold) still runs the plan's nc after a step that
    cleared the rescan; without it, or without such a trigger, the plan stops at the clearing."""
    import backdoorlab.assess.repair as repair_module
    from backdoorlab.detectors.calibrate import Calibration
    from backdoorlab.detectors.scan import ScanOutcome

    data = synthetic(train_size=40).train

    def fake(model, clean, detectors, calibration, refs=None, store=None, progress=False,
             screen_classes=None, reference_keys=None):  # fmt: skip
        first = refs is None  # the first scan flags class 2; every rescan clears it
        z = [0.0] * 4
        z[2] = 20.0 if first else 1.0
        screen = {"classes": [2, 3], "z": [screen_z, 0.0]} if first else None
        c = Calibration(max(z), 2 if first else None, 0.01, 0.1, first, 10.0, 0.05, 3,
                        {"mm-bd": z}, [1.0, 2.0, 3.0], screen)  # fmt: skip
        return ScanOutcome({}, c, 0, len(clean), accuracy=90.0, reference_accuracy=[90.0] * 3,
                           references=[plain_net() for _ in range(3)],
                           reference_attempts=[0, 0, 0])  # fmt: skip

    monkeypatch.setattr(repair_module, "scan_model", fake)
    blank = (torch.zeros(1, 1, 12, 12), torch.zeros(1, 3, 12, 12), 1.0)
    monkeypatch.setattr(repair_module, "evidence_trigger", lambda *a: blank)
    options = {"ft": {"epochs": 1}, "nc": {"steps": 2, "batches_per_step": 1, "epochs": 1}}
    cfg = repair_module.AutoConfig(name="auto", screen=2, plan=["ft", "nc"], options=options,
                                   unlearn_small=unlearn_small)  # fmt: skip
    _, evidence = repair_module.auto_repair(
        plain_net(), data, TrainConfig(eval_every=0), torch.device("cpu"), cfg, 0, None
    )
    assert [s["defense"] for s in evidence["steps"]] == steps
    assert ("why" in evidence["steps"][-1]) == (steps == ["ft", "nc"])
    assert evidence["held_out"]["reversed_trigger_unlearned"] == ("nc" in steps)


def test_unlearn_small_leaves_earlier_configs_and_their_hashes_alone():
    from backdoorlab.assess.repair import AutoConfig

    assert "unlearn_small" not in AutoConfig(name="auto").model_dump()
    on = AutoConfig(name="auto", screen=3, unlearn_small=True)
    assert on.model_dump()["unlearn_small"] is True


@pytest.mark.parametrize(
    "given",
    [{}, {"screen": 3, "plan": ["aft"], "options": {"epochs": 1}},
     {"screen": 3, "plan": ["aft", "nc"], "rounds": 1}],
)  # fmt: skip
def test_unlearn_small_without_a_screen_or_an_nc_step_is_refused(given):
    from pydantic import ValidationError

    from backdoorlab.assess.repair import AutoConfig

    with pytest.raises(ValidationError, match="unlearn_small: needs a screen"):
        AutoConfig(name="auto", unlearn_small=True, **given)


def test_a_screen_given_as_a_bool_in_a_config_is_refused_not_read_as_one_class():
    from pydantic import ValidationError

    from backdoorlab.assess.repair import AutoConfig
    from backdoorlab.detectors.scan import CalibrationConfig

    with pytest.raises(ValidationError, match="screen"):
        AutoConfig(name="auto", screen=True)
    with pytest.raises(ValidationError, match="classes"):
        CalibrationConfig(screen={"classes": True})
    assert AutoConfig(name="auto", screen=3).screen == 3
    assert CalibrationConfig(screen={"classes": 2}).screen.classes == 2


def test_auto_unlearns_for_its_own_epochs_unless_options_are_given():
    """auto's nc step fine-tunes UNLEARN_EPOCHS (chosen on the development zoos) where a config
    gives no options; the setting shows in the config, so a cell that ran before it (options {})
    keeps its own key, and a config that gave options keeps its key and its meaning."""
    from backdoorlab.assess.repair import UNLEARN_EPOCHS, AutoConfig
    from backdoorlab.defenses.nc import NCConfig

    assert UNLEARN_EPOCHS != NCConfig.model_fields["epochs"].default
    assert AutoConfig(name="auto").step_options("nc") == {"epochs": UNLEARN_EPOCHS}
    assert AutoConfig(name="auto").step_options("aft") == {}
    assert AutoConfig(name="auto", plan=["nc"]).step_options("nc") == {"epochs": UNLEARN_EPOCHS}
    assert AutoConfig(name="auto", plan=["aft", "nc"]).step_options("nc") == {
        "epochs": UNLEARN_EPOCHS
    }
    # no nc within the plan's rounds: nothing to set
    assert AutoConfig(name="auto", plan=["aft"]).options == {}
    assert AutoConfig(name="auto", plan=["aft", "nc"], rounds=1).options == {}
    given = {"aft": {"eps": 0.2}}
    mine = AutoConfig(name="auto", plan=["aft", "nc"], options=given)
    assert mine.options == given and mine.step_options("nc") == {}
    assert AutoConfig(name="auto", options={}).model_dump()["options"] == {}
    assert AutoConfig(name="auto").model_dump()["options"] == {"nc": {"epochs": UNLEARN_EPOCHS}}
