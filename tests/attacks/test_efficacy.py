"""Every attack plants its backdoor: ASR on the embedded digits above a floor.

Each floor was set from a measurement (seed 0, one CPU thread, PyTorch 2.13.0 on x86-64) with a
wide margin; a model trained without the poisoning scores a few percent on the same triggers, so
an attack whose poisoning stopped working fails here. The measured values are in the table.
Settings below the attacks' defaults keep each run to a few seconds; they are stated per attack.
"""

from __future__ import annotations

import pytest

from backdoorlab.experiment import run

AUX = {"model": {"name": "small_cnn", "width": 8, "stages": 2}, "train": {"epochs": 3}}

# attack settings, measured ASR (seed 0; seeds 1 and 2 where the spread is wide), floor
CASES = {
    "badnets": (
        {
            "name": "badnets",
            "rate": 0.1,
            "rate_of": "dataset",
            "label_mode": "dirty",
            "patch_size": 2,
        },
        "100.00",
        90,
    ),  # fmt: skip
    "blended": ({"name": "blended", "key": "noise", "alpha": 0.2, "rate": 0.1}, "99.70", 90),
    "sig": (
        {"name": "sig", "label_mode": "dirty", "rate_of": "dataset", "delta": 0.2, "rate": 0.1},
        "100.00",
        90,
    ),  # fmt: skip
    "trojan": ({"name": "trojan", "steps": 20, "clean_model": AUX}, "99.70", 90),
    # a smooth warp of 8x8 images is learned more slowly than a patch: 75 after 10 epochs
    "wanet": ({"name": "wanet", "s": 2.0}, "75.00", 50),
    # clean-label: only half of the target class is poisoned, adversarially perturbed first
    "lc": (
        {
            "name": "lc",
            "rate": 0.5,
            "steps": 3,
            "eps": 0.2,
            "alpha": 0.1,
            "surrogate": {**AUX, "at_steps": 1},
        },
        "70.18",
        40,
    ),  # fmt: skip
    # IAD's generator needs more than 10 epochs on 8x8 images at its default mask density
    # (0.032: two pixels), so the test runs the original training-control procedure with a
    # denser mask and 20% of each batch backdoored: 65.66 (seeds 1, 2 at 15 epochs: 32.5, 47.6)
    "iad": (
        {
            "name": "iad",
            "control": "training",
            "rate": 0.2,
            "mask_density": 0.1,
            "mask_epochs": 5,
            "width": 8,
            "batch_size": 64,
        },
        "65.66",
        25,
    ),  # fmt: skip
    # a user's trigger image (a 3x3 white cross, written by the `cross` fixture), stamped whole
    "pattern": ({"name": "pattern", "pattern": "CROSS", "rate": 0.1}, "100.00", 90),
}


@pytest.fixture(scope="module")
def cross(tmp_path_factory) -> str:
    """An 8x8 PNG (the digits' size) with a white 3x3 cross in its top-left corner."""
    import numpy as np
    from PIL import Image

    img = np.zeros((8, 8), np.uint8)
    img[[0, 1, 2, 1, 0, 2], [0, 1, 2, 1, 2, 0]] = 255
    path = tmp_path_factory.mktemp("pattern") / "cross.png"
    Image.fromarray(img).save(path)
    return str(path)


def test_every_attack_has_an_efficacy_case():
    from backdoorlab.attacks import ATTACKS

    assert set(CASES) | {"none"} == set(ATTACKS.names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_attack_plants_its_backdoor(digits_config, cross, name):
    settings, measured, floor = CASES[name]
    settings = {k: cross if v == "CROSS" else v for k, v in settings.items()}
    digits_config["attack"] = {"target": 0, **settings}
    m = run(digits_config, save=False, progress=False).metrics
    assert m.acc >= 85, m  # the backdoor does not cost the model its task
    assert m.asr >= floor, f"{name}: ASR {m.asr:.2f} (measured {measured}), floor {floor}"
