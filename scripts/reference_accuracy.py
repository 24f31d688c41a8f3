"""How well the scan's own references learned the task: the accuracy on the probe images of
issue 26's SGD LeNet (tests/byo/foreign_mnist.py:sgd_lenet, trained by a plain PyTorch script)
and of each reference the default scan trains beside it on the user's 500 clean images (half
each): first as the recipe trains them, then as the scan keeps them (a reference below half the
model's accuracy is trained again, references.retry_recipe), with the scan's caution and note
lines (detectors/scan.py, UNLEARNED_SHARE).

    .venv/bin/python -m scripts.reference_accuracy [--mnist ../shared/data/mnist]

(run from the repository's root; about a minute on 2 CPU cores with the references cached in
runs/scan-settings-lenet, which scripts/scan_settings_foreign_lenet shares).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import backdoorlab
from backdoorlab.byo.api import fitted_data, placed_model
from backdoorlab.detectors.references import ReferenceRecipe, split_clean, train_references
from backdoorlab.metrics.core import accuracy
from tests.byo.foreign_mnist import sgd_lenet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default="../shared/data/mnist")
    parser.add_argument("--cache", default="runs/scan-settings-lenet", help="references' cache")
    args = parser.parse_args()
    torch.set_num_threads(2)
    case = sgd_lenet(Path(args.mnist))
    model = placed_model(case["model"], None, None, torch.device("cpu"))
    clean, _ = fitted_data(model, case["clean"], "test", torch.device("cpu"), "data")
    own, probe = split_clean(clean, ReferenceRecipe().train_share)
    first = train_references(model, own, ReferenceRecipe(), progress=False).models
    print("as the recipe trains them (no retry): "
          + ", ".join(f"{accuracy(r, probe):.2f}" for r in first))  # fmt: skip
    result = backdoorlab.scan(case["model"], case["clean"], cache=args.cache)
    refs = ", ".join(f"{a:.2f}" for a in result.reference_accuracy)
    print(f"probe images: {result.probe_images}; references trained on {result.reference_images}")
    print(f"the model: {result.accuracy:.2f}%; its {len(result.reference_accuracy)} references: "
          f"{refs}")  # fmt: skip
    print(f"attempt each was kept from: {result.reference_attempts}")
    print(result.verdict)
    print(result.caution or "no caution")


if __name__ == "__main__":
    main()
