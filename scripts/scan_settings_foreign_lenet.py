"""The calibrated scan of issue 26's SGD LeNet (tests/byo/foreign_mnist.py:sgd_lenet: a 4x4 patch
sent to class 3, trained by a plain PyTorch script) on its 500 clean images, at the first
development zoo's settings (the defaults) and at the second round's pick (adv-labels-l2 + mm-bd
on raw values; configs/results/detection-dev-2.yaml). Before the raw values' scale was floored
at a share's step (100 / probe images), the pick's z-scores degenerated here (commit 50685da).

    .venv/bin/python -m scripts.scan_settings_foreign_lenet [--mnist ../shared/data/mnist]
                                                            [--repair]

(run from the repository's root; a few minutes on 2 CPU cores, the references are cached).
`--repair` also repairs the model with `repair`'s default `auto` at each setting (its scan's
`detectors` and `evidence`), the true trigger used only to measure ASR.
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
    parser.add_argument("--repair", action="store_true", help="also repair at each setting")
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
    if args.repair:
        repairs(case, args.cache)


def repairs(case: dict, cache: str) -> None:
    """`repair` (auto) at each setting: ACC/ASR before and after, the scans, the steps."""
    print("\n| settings | ACC before | ACC after | ASR before | ASR after | first scan | "
          "rescan | steps |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for label, (detectors, evidence) in SETTINGS.items():
        torch.manual_seed(0)
        _, report = backdoorlab.repair(case["model"], case["clean"], test=case["test"],
                                       scan_detectors=detectors, scan_evidence=evidence,
                                       cache=cache,
                                       device="cpu", **case["trigger"])  # fmt: skip
        b, a = report.before, report.after

        def scan(s: dict) -> str:
            return f"{s['score']:.4g} / {s['threshold']:.4g}, target {s['target']}"

        steps = ", ".join(s["defense"] for s in report.steps) or "none"
        print(f"| {label} | {b['acc']:.2f} | {a['acc']:.2f} | {b['asr']:.2f} | {a['asr']:.2f} "
              f"| {scan(report.scan_before)} | {scan(report.scan_after)} | {steps} |")  # fmt: skip


if __name__ == "__main__":
    main()
