"""Every defense lowers the ASR of its no-defense twin on the embedded digits, or the test says
why it cannot at this scale.

Post-training repairs start from one infected model per attack, trained once through the stage
cache (the no-defense twin is that model: `metrics.before`). Training-time defenses are
compared with the same config trained without them, seed for seed. The bounds were set from
measurements at seeds 0, 1 and 2 (one CPU thread, PyTorch 2.13.0 on x86-64), given in each
case, with a wide margin; the test runs seed 0.

Each repair is measured on the backdoor where it works at this scale. Measured and left out:
fine-tuning on clean data leaves BadNets, Blended and SIG at 100 (10 epochs, lr 0.05 and 0.1),
as docs/examples/byo-mnist.md found on MNIST; it lowers WaNet, whose warp is learned last.
"""

from __future__ import annotations

import pytest

from backdoorlab.experiment import run

WANET = {"name": "wanet", "target": 0, "s": 2.0}
BLENDED = {"name": "blended", "target": 0, "key": "noise", "alpha": 0.2, "rate": 0.1}
CLEAN = {"clean_share": 0.3}  # the defender's clean data: 30% of the training set

# defense, attack, measured ASR before -> after at seeds 0 / 1 / 2, the least drop asserted
POST_TRAINING = {
    "ft": ({"name": "ft", "epochs": 10, "lr": 0.1}, WANET, "75->47 / 78->26 / 72->50", 10),
    "fp": ({"name": "fp", "epochs": 5}, WANET, "75->31 / 78->4 / 72->20", 20),
    "nad": (
        {"name": "nad", "teacher_epochs": 5, "epochs": 10},
        WANET,
        "75->23 / 78->29 / 72->19",
        25,
    ),
    "nc": (
        {"name": "nc", "steps": 50, "batches_per_step": 4, "epochs": 3},
        None,
        "100->0 / 100->0 / 100->0.3",
        80,
    ),  # fmt: skip
    "aft": ({"name": "aft", "epochs": 5, "eps": 0.2}, BLENDED, "100->0 / 100->0 / 99->0", 80),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("stage-cache")


@pytest.mark.parametrize("name", sorted(POST_TRAINING))
def test_the_repair_lowers_the_infected_models_asr(digits_config, cache, name):
    defense, attack, measured, drop = POST_TRAINING[name]
    if attack is not None:
        digits_config["attack"] = attack
    digits_config["defense"] = {**defense, **CLEAN}
    m = run(digits_config, save=False, progress=False, cache=cache).metrics
    before = m.before
    assert before.asr >= 70, before  # the backdoor is there to remove
    assert m.acc >= 75, m  # (AFT at eps 0.2 on 8x8 digits costs 12-16 points)
    assert m.asr <= before.asr - drop, f"{name}: {before.asr:.2f} -> {m.asr:.2f} ({measured})"


# defense, attack (None: BadNets), model change, measured twin -> defended at seeds 0 / 1 / 2
TRAINING_TIME = {
    "at": (
        {"name": "at", "threat": "linf", "eps": 0.1, "steps": 5},
        BLENDED,
        {},
        "99.7->0.6 / 100->1.3 / 99->1.3",
        80,
    ),  # fmt: skip
    # per-sample gradients need GroupNorm; the twin is the GroupNorm model without DP-SGD
    "dpsgd": ({"name": "dpsgd"}, BLENDED, {"norm": "group"}, "71->9 / 81->9 / 73->6", 30),
    "abl": ({"name": "abl", "isolation_epochs": 3}, None, {}, "100->58 / 100->72 / 100->62", 15),
    "cutmix": ({"name": "cutmix"}, None, {}, "100->77 / 100->81 / 100->80", 10),
}


@pytest.mark.parametrize("name", sorted(TRAINING_TIME))
def test_training_with_the_defense_lowers_asr_against_its_twin(digits_config, name):
    defense, attack, model, measured, drop = TRAINING_TIME[name]
    if attack is not None:
        digits_config["attack"] = attack
    digits_config["model"].update(model)
    twin = run(digits_config, save=False, progress=False).metrics
    digits_config["defense"] = defense
    m = run(digits_config, save=False, progress=False).metrics
    assert twin.asr >= 70, twin
    assert m.acc >= 85, m
    assert m.asr <= twin.asr - drop, f"{name}: {twin.asr:.2f} -> {m.asr:.2f} ({measured})"


def test_mixup_and_random_perturbations_leave_a_patch_backdoor_whole(digits_config):
    """What the papers report and these settings reproduce: mixup does not unlearn a dirty-label
    patch (Gao Table III), and random L_inf noise of AT's budget does not remove a blended key
    (Gao Sec. III-D, beta 0). Their mechanics are tested in test_mixup_cutmix.py and test_at.py;
    this records that their failure to remove is the method's, not a broken run."""
    digits_config["defense"] = {"name": "mixup"}
    assert run(digits_config, save=False, progress=False).metrics.asr >= 90  # measured 100
    digits_config["attack"] = BLENDED
    digits_config["defense"] = {"name": "random", "threat": "linf", "eps": 0.1}
    assert run(digits_config, save=False, progress=False).metrics.asr >= 90  # 99.70
