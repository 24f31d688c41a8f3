"""Run every benchmark and write the ratios (ours / reference) as JSON.

    python bench/run.py [--quick] --json FILE [--device cpu|cuda]

Keys: pipeline_vs_art (throughput, higher is better), pgd_time_vs_torchattacks (worst of L_inf
and L_2), pgd_ra_minus_torchattacks (points, worst), at_epoch_over_floor, cat_epoch_over_floor;
`details` holds every measured number and `machine` where it ran.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import epochs
import pgd
import pipeline
from common import machine, print_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes: a few minutes on 2 cores"
    )
    parser.add_argument("--json", required=True, help="file to write the ratios to")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of the AT/CAT epochs")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows_a = pipeline.bench(args.quick, args.device)
    print_rows("(a) poisoned-data pipeline vs ART", rows_a)
    rows_b, pgd_numbers = pgd.bench(args.quick, args.device)
    print_rows("(b) PGD vs torchattacks and ART", rows_b)
    rows_cd, epoch_numbers = epochs.bench(args.quick, args.device, args.steps)
    print_rows("(c, d) AT and CAT epochs vs their floors", rows_cd)
    result = {
        "pipeline_vs_art": rows_a[0].ratio,
        "pgd_time_vs_torchattacks": max(
            pgd_numbers[f"{n}_time_vs_torchattacks"] for n in pgd.SETTINGS
        ),
        "pgd_ra_minus_torchattacks": max(
            pgd_numbers[f"{n}_ra_minus_torchattacks"] for n in pgd.SETTINGS
        ),
        "at_epoch_over_floor": epoch_numbers["at_epoch_over_floor"],
        "cat_epoch_over_floor": epoch_numbers["cat_epoch_over_floor"],
        "details": {
            "pipeline": [r.__dict__ for r in rows_a],
            "pgd": pgd_numbers,
            "epochs": epoch_numbers,
            "quick": args.quick,
            "pgd_steps_in_epochs": args.steps,
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "machine": machine(),
        "device": args.device,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("details",)}, indent=2))


if __name__ == "__main__":
    main()
