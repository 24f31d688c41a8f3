"""How long a repair with trigger-free evidence takes once another repair on the same data ran:
the references repaired alike kept (assess.repair.repaired_keys) against repaired again.

    python bench/repair.py --json docs/performance/repair-cpu.json [--threads 2]

The suspect is a small CNN (width 32) trained on 8,000 MNIST images (8 epochs); the defender
holds 400 of the test images (a repair zoo's 5%). Each repair is AFT at the MNIST settings of
docs/results/repair-zoo.md with the calibrated scan before and after
(`repair(model, clean, "aft", evidence=True)`): its references are trained, scanned, repaired by
the same AFT and scanned again. The first repair keeps all of it; the reference run is a second
repair that finds the references kept but repairs them again (as every repair did before the
repaired references were kept), measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from common import Row, machine, mnist_or_digits, print_rows, small_cnn

import backdoorlab.assess.repair as repair_module
from backdoorlab.byo.api import repair
from backdoorlab.train import TrainConfig, fit

# the `aft` column of docs/results/repair-zoo.md (configs/mnist-badnets-aft.yaml)
AFT = {"data": "clean", "eps": 0.2, "steps": 7, "epochs": 20, "lr": 0.001, "clean_epochs": 5}


def bench(threads: int) -> tuple[list[Row], dict[str, float | str]]:
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    splits, name = mnist_or_digits(8000, 2000, device)
    model = small_cnn(splits.train, device)
    fit(model, splits.train, TrainConfig(epochs=8, batch_size=128, lr=0.05, crop_padding=2,
                                         eval_every=0), progress=False)  # fmt: skip
    model.eval()
    clean = splits.test.subset(torch.arange(400, device=device))

    def timed_repair(cache: str) -> tuple[float, object]:
        t0 = time.perf_counter()
        _, report = repair(model, clean, "aft", evidence=True, cache=cache, device="cpu", **AFT)
        return time.perf_counter() - t0, report

    with tempfile.TemporaryDirectory() as cache:
        first_s, first = timed_repair(cache)
        with mock.patch.object(repair_module, "repaired_keys", lambda *a: []):
            again_s, again = timed_repair(cache)  # references kept, repaired again
        kept_s, kept = timed_repair(cache)
    same = kept.scan_after == again.scan_after == first.scan_after
    assert same, "the kept references gave another rescan"
    rows = [
        Row("repair + evidence, repaired references kept", kept_s, again_s, "s",
            kept_s / again_s, "-"),
    ]  # fmt: skip
    numbers = {
        "data": name,
        "threads": threads,
        "defender_images": len(clean),
        "first_repair_s": round(first_s, 2),
        "references_repaired_again_s": round(again_s, 2),
        "repaired_references_kept_s": round(kept_s, 2),
        "summary": kept.summary,
    }
    return rows, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="file to write the numbers to")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the issue's 2 cores)")
    args = parser.parse_args()
    rows, numbers = bench(args.threads)
    print_rows("repair with evidence: references repaired alike, kept or repaired again", rows)
    result = {"kept_over_repaired_again": rows[0].ratio, "details": numbers, "machine": machine()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
