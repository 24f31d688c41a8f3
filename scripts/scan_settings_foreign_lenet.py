"""The calibrated scan of issue 26's SGD LeNet (tests/byo/foreign_mnist.py:sgd_lenet: a 4x4 patch
sent to class 3, trained by a plain PyTorch script) on its 500 clean images, at the first
development zoo's settings (the defaults) and at the second round's pick (adv-labels-l2 + mm-bd
on raw values; configs/results/detection-dev-2.yaml). Before the raw values' scale was floored
at a share's step (100 / probe images), the pick's z-scores degenerated here (commit 50685da).

    .venv/bin/python -m scripts.scan_settings_foreign_lenet [--mnist ../shared/data/mnist]

(run from the repository's root; a few minutes on 2 CPU cores, the references are cached).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import backdoorlab
from tests.byo.foreign_mnist import LENET_TARGET, sgd_lenet

SETTINGS = {
    "first zoo (default)": (["mm-bd"], "profile"),
    "second round's pick": (["adv-labels-l2", "mm-bd"], "values"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default="../shared/data/mnist")
    parser.add_argument("--cache", default="runs/scan-settings-lenet", help="references' cache")
    args = parser.parse_args()
    torch.set_num_threads(2)
    case = sgd_lenet(Path(args.mnist))
    print(f"SGD LeNet, backdoor target {LENET_TARGET}; 500 clean images (references on half)\n")
    print("| settings | score | threshold | references' scores | flagged | target | "
          "largest z per detector |")  # fmt: skip
    print("| --- | ---: | ---: | --- | --- | --- | --- |")
    for label, (detectors, evidence) in SETTINGS.items():
        found = backdoorlab.scan(case["model"], case["clean"], detectors=detectors,
                                 evidence=evidence, device="cpu", cache=args.cache)  # fmt: skip
        c = found.calibration
        tops = ", ".join(f"{d}: {max(z):.4g} (class {z.index(max(z))})" for d, z in c.z.items())
        null = f"{min(c.null):.4g} to {max(c.null):.4g}"
        print(f"| {label} | {c.score:.4g} | {c.threshold:.4g} | {null} "
              f"| {'yes' if c.infected else 'no'} | {c.target if c.target is not None else '-'} "
              f"| {tops} |")  # fmt: skip
    ref = found.detections["adv-labels-l2"]
    print(f"\nThe suspect's adv-labels-l2 shares (%, {ref.details['images']} probe images): "
          f"{ref.values}")  # fmt: skip


if __name__ == "__main__":
    main()
