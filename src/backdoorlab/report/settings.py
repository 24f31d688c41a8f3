"""The calibrated scan's settings scored on a zoo from the values its cells kept: every subset of
the probes with every evidence (raw values, within-model index, class-profile residual), and
how many benign and infected models each flags at a range of floors under the threshold; then
the rule that picks one setting (configs/results/detection-dev-2.yaml, written down before that
zoo ran): keep the settings that flag no benign model at some floor; among them take the
highest target accuracy, then the most infected models flagged at the lowest floor that flags
no benign model, then the fewest probes, then the evidence in the order profile, values, index.
The floor is that lowest floor. No model runs: each scan is calibrated again from its record.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from backdoorlab.detectors.calibrate import EVIDENCE
from backdoorlab.detectors.scan import CalibrationConfig, recalibrated_detection
from backdoorlab.metrics.detection import separation
from backdoorlab.report.zoo import Member

FLOORS = (0.0, 5.0, 8.0, 10.0, 12.0, 15.0)
PREFERRED = ("profile", "values", "index")  # the rule's order of evidence


@dataclass(frozen=True)
class Pick:
    """The rule's choice: the probes, the evidence and the floor under the threshold."""

    detectors: tuple[str, ...]
    evidence: str
    floor: float

    def __str__(self) -> str:
        return (
            f"probes {' + '.join(self.detectors)}, evidence {self.evidence}, floor {self.floor:g}"
        )


def _scored(member: Member, detectors: tuple[str, ...], evidence: str) -> tuple[float, int, float]:
    """(score, most suspicious class, threshold without a floor) of one model under a setting."""
    cfg = CalibrationConfig(detectors=list(detectors), evidence=evidence, min_threshold=0.0)
    d = recalibrated_detection(member.detections, cfg)
    top = max(range(len(d["values"])), key=d["values"].__getitem__)
    return d["score"], top, d["details"]["threshold"]


def settings_rows(
    benign: list[Member], infected: list[Member], floors: tuple[float, ...] = FLOORS
) -> tuple[list[list[str]], Pick | None]:
    """The table (header first) over every setting, and the rule's pick (None where no setting
    flags no benign model at any floor). Every member must hold a calibrated scan."""
    zoo = [*benign, *infected]
    names = sorted(zoo[0].detections["calibrated"]["details"]["reference_values"])
    rows = [
        ["probes", "evidence", "AUROC", "target acc"]
        + [f"flagged B/I at floor {f:g}" for f in floors]
    ]
    candidates = []
    for k in range(1, len(names) + 1):
        for detectors in itertools.combinations(names, k):
            for evidence in EVIDENCE:
                got = [_scored(m, detectors, evidence) for m in zoo]
                sep = separation([0] * len(benign) + [1] * len(infected), [g[0] for g in got])
                hits = sum(
                    g[1] == m.target for g, m in zip(got[len(benign) :], infected, strict=True)
                )
                cells, clear = [], None
                for f in floors:
                    flagged = [g[0] > max(g[2], f) for g in got]
                    fb, fi = sum(flagged[: len(benign)]), sum(flagged[len(benign) :])
                    cells.append(f"{fb}/{fi}")
                    if fb == 0 and clear is None:
                        clear = (f, fi)
                auroc = f"{sep.auroc:.3f}" if sep else "-"
                rows.append([" + ".join(detectors), evidence, auroc, f"{hits}/{len(infected)}",
                             *cells])  # fmt: skip
                if clear is not None:
                    rank = (-hits, -clear[1], len(detectors), PREFERRED.index(evidence))
                    candidates.append((rank, Pick(detectors, evidence, clear[0])))
    if not candidates:
        return rows, None
    return rows, min(candidates, key=lambda c: c[0])[1]
