"""How a kept zoo's benign models compare with their references on one probe's raw values: the
median over the classes of the model's value and of the references' per-class medians, and on
how many classes the model's value is the larger (from the values the cells kept).

    .venv/bin/python -m scripts.reference_margins ZOO [--probe mm-bd]
"""

from __future__ import annotations

import argparse
import statistics

from scripts.calibration_choices import members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo")
    parser.add_argument("--probe", default="mm-bd")
    args = parser.parse_args()
    print(f"| {args.zoo} benign model | model's median | references' median | classes above |")
    print("| --- | ---: | ---: | ---: |")
    for m in members(args.zoo)[0]:  # the benign models
        own = m.detections[args.probe]["values"]
        refs = m.detections["calibrated"]["details"]["reference_values"][args.probe]
        typical = [statistics.median(r[k] for r in refs) for k in range(len(own))]
        above = sum(v > t for v, t in zip(own, typical, strict=True))
        print(f"| {m.name} | {statistics.median(own):.2f} | {statistics.median(typical):.2f} "
              f"| {above} of {len(own)} |")  # fmt: skip


if __name__ == "__main__":
    main()
