"""How the calibrated scan's settings were chosen: every evidence (raw values, within-model
index, class-profile residual), every subset of the probes and a floor under the threshold,
scored on the development zoo (configs/results/detection-dev.yaml) from the values its runs
stored (the suspect's and each reference's per-class values), so nothing is rerun.

    .venv/bin/python scripts/calibration_choices.py [--work runs/results/detection-dev]

Run `make results-pages PAGES=detection-dev` first (it trains the zoo and its references).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from backdoorlab.detectors.base import Detection
from backdoorlab.detectors.calibrate import EVIDENCE, calibrate
from backdoorlab.limits import read_json
from backdoorlab.metrics.detection import separation

FLOORS = (0.0, 5.0, 8.0, 10.0, 12.0, 15.0)


def members(work: Path) -> list[dict]:
    """Each run of the zoo: infected or not, its target, the suspect's and references' values."""
    out = []
    for path in sorted(work.glob("cells/*/result.json")):
        record = read_json(path)
        found = record["metrics"]["detect"]
        details = found["calibrated"]["details"]
        attack = record["config"]["attack"]
        out.append(
            {
                "name": record["config"]["name"],
                "infected": attack["name"] != "none",
                "target": attack.get("target") if attack["name"] != "none" else None,
                "suspect": {n: found[n] for n in details["reference_values"]},
                "references": details["reference_values"],
            }
        )
    return out


def _detection(n: str, like: dict, values: list[float]) -> Detection:
    return Detection(n, values, [0.0] * len(values), [], 0.0, "", side=like["side"],
                     scale=like.get("scale", "linear"))  # fmt: skip


def score(member: dict, detectors: tuple[str, ...], evidence: str, floor: float) -> tuple:
    """(score, most suspicious class, threshold) of one member under one setting."""
    sus = {
        n: _detection(n, member["suspect"][n], member["suspect"][n]["values"]) for n in detectors
    }
    count = len(member["references"][detectors[0]])
    refs = [
        {n: _detection(n, member["suspect"][n], member["references"][n][i]) for n in detectors}
        for i in range(count)
    ]
    c = calibrate(sus, refs, 0.05, floor=0.5, evidence=evidence, min_threshold=floor)
    top = max(range(len(c.z[detectors[0]])), key=lambda k: max(c.z[n][k] for n in detectors))
    return c.score, top, c.threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/results/detection-dev", help="the zoo's folder")
    args = parser.parse_args()
    zoo = members(Path(args.work))
    benign = sum(not m["infected"] for m in zoo)
    infected = len(zoo) - benign
    names = list(zoo[0]["references"])
    print(f"{len(zoo)} models ({benign} benign, {infected} infected)\n")
    print("| probes | evidence | AUROC | target acc | " +
          " | ".join(f"flagged B/I at floor {f:g}" for f in FLOORS) + " |")  # fmt: skip
    print("| --- | --- | ---: | ---: |" + " ---: |" * len(FLOORS))
    rows = []
    for k in range(1, len(names) + 1):
        for detectors in itertools.combinations(names, k):
            for evidence in EVIDENCE:
                got = [score(m, detectors, evidence, 0.0) for m in zoo]
                sep = separation([int(m["infected"]) for m in zoo], [g[0] for g in got])
                hits = sum(
                    g[1] == m["target"] for g, m in zip(got, zoo, strict=True) if m["infected"]
                )
                cells = []
                for f in FLOORS:
                    flagged = [g[0] > max(g[2], f) for g in got]
                    fb = sum(x for x, m in zip(flagged, zoo, strict=True) if not m["infected"])
                    fi = sum(x for x, m in zip(flagged, zoo, strict=True) if m["infected"])
                    cells.append(f"{fb}/{fi}")
                auroc = f"{sep.auroc:.3f}" if sep else "-"
                head = f"| {' + '.join(detectors)} | {evidence} | {auroc} | {hits}/{infected} | "
                rows.append(head + " | ".join(cells) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
