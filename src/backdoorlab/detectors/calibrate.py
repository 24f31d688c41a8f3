"""Detector evidence calibrated against benign reference models of the suspect's architecture.

A MAD index over the classes of one model cannot tell a property of the data (every benign
MNIST model's adversarial examples pile up on 8) from a backdoor. Here each class's evidence is
a robust z-score against the same class on the references: (e - median) / (1.4826 * MAD). The
scale is floored at a share of the median and at a share of the classes' median spread, so that
a class the few references happen to agree on does not divide by almost nothing; raw values also
at the probe's step (`Detection.resolution`: a share over n images moves by 100/n). The evidence
(`transform`) is the raw value, the anomaly index within the model, or the class-profile
residual: the model's values minus their least-squares fit to the references' median profile
(a model sharper on every class, as one trained on more data is, is not an outlier).

The model's score is the largest z over classes and detectors, its target the class where it
occurs. The references' own leave-one-out scores (each against the others) are the null. A
normal fitted to them gives the threshold at the stated false-positive rate, never below
`min_threshold` (references agree with each other more than with a suspect trained on other
data by another recipe), and the fitted p-value. The empirical p-value, (1 + #null >= score) /
(R + 1), is kept beside it; with R references it cannot go below 1/(R+1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist, fmean, stdev
from typing import Any

import torch

from backdoorlab.detectors.base import Detection
from backdoorlab.errors import ConfigError
from backdoorlab.metrics.detection import MAD_CONSISTENCY

MIN_REFERENCES = 3


def robust_z(
    values: torch.Tensor,
    references: torch.Tensor,
    side: str,
    rel_floor: float = 0.05,
    abs_floor: float = 1e-6,
    spread_floor: float = 0.0,
) -> torch.Tensor:
    """Per-class z [K] of `values` [K] against `references` [R,K], positive on `side` ('high':
    larger than the references is suspicious, 'low': smaller)."""
    refs = references.double()
    median = refs.quantile(0.5, dim=0)
    mad = MAD_CONSISTENCY * (refs - median).abs().quantile(0.5, dim=0)
    scale = torch.maximum(mad, rel_floor * median.abs())
    # a class the few references happen to agree on closely is judged on the typical spread
    scale = torch.maximum(scale, spread_floor * mad.median()).clamp_min(abs_floor)
    z = (values.double() - median) / scale
    return z if side == "high" else -z


@dataclass
class Calibration:
    """A model's calibrated scan: its score, the class it points at, the p-value and verdict at
    `fpr`, and the evidence (per-detector z per class, the references' null scores)."""

    score: float
    target: int | None
    p_value: float  # from the normal fitted to the null
    p_empirical: float  # (1 + #null >= score) / (R + 1): valid, and never below 1 / (R + 1)
    infected: bool
    threshold: float
    fpr: float
    references: int
    z: dict[str, list[float]]
    null: list[float]
    # the trigger search's second look at the probes' top classes (`screened`); None: no screen
    screen: dict[str, Any] | None = None

    def class_z(self) -> list[float]:
        """Per class, the largest z over the detectors (and the screen, where it searched)."""
        per_class = torch.tensor(list(self.z.values())).amax(0).tolist()
        if self.screen is not None:
            for c, z in zip(self.screen["classes"], self.screen["z"], strict=True):
                per_class[c] = max(per_class[c], z)
        return per_class

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EVIDENCE = ("values", "index", "profile")


def within_index(values: torch.Tensor, side: str) -> torch.Tensor:
    """Each row's signed anomaly index over its classes (positive on `side`), the scale at
    least 1% of the row's largest value so that a row whose classes mostly tie stays finite."""
    rows = values.double().reshape(-1, values.shape[-1])
    median = rows.median(1, keepdim=True).values
    mad = MAD_CONSISTENCY * (rows - median).abs().median(1, keepdim=True).values
    floor = (0.01 * rows.abs().amax(1, keepdim=True)).clamp_min(1e-6)
    index = (rows - median) / torch.maximum(mad, floor)
    return (index if side == "high" else -index).reshape(values.shape)


def _suspicious_up(values: torch.Tensor, side: str, scale: str) -> torch.Tensor:
    """Values where larger is more suspicious, on the detector's `scale`: 'log' (log1p; shares
    and norms, whose profiles scale multiplicatively) or 'linear' (margins)."""
    v = values.double()
    if scale == "log":
        v = torch.log1p(v.clamp_min(0))
    return -v if side == "low" else v


def _residual(row: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
    """`row` [K] minus its least-squares fit a + b * `profile` over the classes: what the
    references' class profile, scaled to this model, does not explain. The fit in closed form
    (b = cov / var; b = 0 for a flat profile), so that the same numbers give the same residual."""
    x, y = profile.double(), row.double()
    dx, dy = x - x.mean(), y - y.mean()
    var = float((dx * dx).sum())
    slope = float((dx * dy).sum()) / var if var > 1e-12 else 0.0
    return dy - slope * dx


def transform(
    suspect: torch.Tensor, refs: torch.Tensor, side: str, evidence: str, scale: str = "linear"
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The suspect's [K] and the references' [R,K] evidence, and the side it is suspicious on:
    raw `values`; the within-model anomaly `index`; or the `profile` residual (each model's
    class profile fitted to the median profile of the references, itself excluded)."""
    if evidence == "values":
        return suspect.double(), refs.double(), side
    if evidence == "index":
        return within_index(suspect, side), within_index(refs, side), "high"
    if evidence == "profile":
        s, r = _suspicious_up(suspect, side, scale), _suspicious_up(refs, side, scale)
        mine = _residual(s, r.median(0).values)
        theirs = torch.stack(
            [
                _residual(r[i], torch.cat([r[:i], r[i + 1 :]]).median(0).values)
                for i in range(len(r))
            ]
        )
        return mine, theirs, "high"
    raise ConfigError(f"evidence: one of {', '.join(EVIDENCE)}, not {evidence!r}")


def _z_all(
    suspect: dict[str, torch.Tensor],
    refs: dict[str, torch.Tensor],
    kinds: dict[str, tuple[str, str, float]],
    evidence: str,
    floor: float,
) -> dict[str, torch.Tensor]:
    out = {}
    for d, v in suspect.items():
        side, scale, resolution = kinds[d]
        mine, theirs, side = transform(v, refs[d], side, evidence, scale)
        # raw values never differ by less than the probe can show (a share over n images moves
        # in steps of 100/n): where the references agree exactly, that step is the scale
        least = max(resolution, 1e-6) if evidence == "values" else 1e-6
        out[d] = robust_z(mine, theirs, side, abs_floor=least, spread_floor=floor)
    return out


def _top(z: dict[str, torch.Tensor]) -> tuple[float, int]:
    best, target = -float("inf"), 0
    for values in z.values():
        k = int(values.argmax())
        if float(values[k]) > best:
            best, target = float(values[k]), k
    return best, target


def calibrate(
    suspect: dict[str, Detection],
    references: list[dict[str, Detection]],
    fpr: float = 0.05,
    floor: float = 0.0,
    evidence: str = "values",
    min_threshold: float = 0.0,
) -> Calibration:
    """The suspect's detections scored against each reference's detections of the same
    detectors (see the module's docstring) on the `evidence` of `transform`; a class's spread
    over the references counts as at least `floor` times the median spread of the classes; the
    threshold is never below `min_threshold` (a few references agree more with each other than
    with a suspect trained on other data by another recipe)."""
    if len(references) < MIN_REFERENCES:
        raise ConfigError(
            f"references: {len(references)} given, calibration needs at least {MIN_REFERENCES}"
        )
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr: a false-positive rate in (0, 1), not {fpr}")
    kinds = {d: (det.side, det.scale, det.resolution) for d, det in suspect.items()}
    values = {d: torch.tensor(det.values) for d, det in suspect.items()}
    ref_values = {d: torch.tensor([r[d].values for r in references]) for d in suspect}
    z = _z_all(values, ref_values, kinds, evidence, floor)
    score, target = _top(z)
    null = []
    for i in range(len(references)):
        others = {d: torch.cat([t[:i], t[i + 1 :]]) for d, t in ref_values.items()}
        own = {d: t[i] for d, t in ref_values.items()}
        null.append(_top(_z_all(own, others, kinds, evidence, floor))[0])
    threshold, p_value, p_empirical = _verdict(score, null, fpr, min_threshold)
    infected = score > threshold
    return Calibration(
        round(score, 4),
        target if infected else None,
        p_value,
        p_empirical,
        infected,
        round(threshold, 4),
        fpr,
        len(references),
        {d: [round(float(v), 4) for v in t] for d, t in z.items()},
        [round(s, 4) for s in null],
    )


def _verdict(score: float, null: list[float], fpr: float, least: float) -> tuple[float, ...]:
    """(threshold, fitted p-value, empirical p-value) of `score` against the `null` scores: the
    threshold at `fpr` of a normal fitted to the null, never below `least`."""
    fitted = NormalDist(fmean(null), max(stdev(null), 1e-6))
    threshold = max(fitted.inv_cdf(1 - fpr), least)
    p_empirical = (1 + sum(s >= score for s in null)) / (len(null) + 1)
    return threshold, 1 - fitted.cdf(score), p_empirical


def screened(
    c: Calibration,
    classes: list[int],
    norms: list[float],
    reference_norms: list[list[float]],
    floor: float = 0.0,
    min_threshold: float = 0.0,
) -> Calibration:
    """`c` with a trigger search's evidence on `classes` joined: per class, the log of the
    smallest trigger's mask norm (NC Eq. 2-3) z-scored on the small side against the
    references' norms for the same class [R][k]; the score, target, null and verdict over the
    probes and the screen together (a reference's null score is its largest z of either, each
    against the other references)."""
    if len(reference_norms) != len(c.null):
        raise ConfigError(
            f"screen: {len(reference_norms)} references' norms for {len(c.null)} references"
        )
    mine = torch.tensor([math.log(max(n, 1e-6)) for n in norms])
    theirs = torch.tensor(reference_norms, dtype=torch.float64).clamp_min(1e-6).log()
    # rel_floor 0: a share of a log's median has no meaning; the classes' spread floors it
    z = robust_z(mine, theirs, "low", rel_floor=0.0, spread_floor=floor)
    own = [
        float(robust_z(theirs[i], torch.cat([theirs[:i], theirs[i + 1 :]]), "low", 0.0,
                       spread_floor=floor).max())
        for i in range(len(theirs))
    ]  # fmt: skip
    null = [max(a, b) for a, b in zip(c.null, own, strict=True)]
    screen = {
        "classes": list(classes),
        "z": [round(float(v), 4) for v in z],
        "norms": [round(n, 4) for n in norms],
        "reference_norms": [[round(n, 4) for n in row] for row in reference_norms],
        "null": [round(s, 4) for s in own],
        "probes_score": c.score,
    }
    joined = replace(c, screen=screen)
    per_class = joined.class_z()
    target = max(range(len(per_class)), key=per_class.__getitem__)
    score = per_class[target]
    threshold, p_value, p_empirical = _verdict(score, null, c.fpr, min_threshold)
    infected = score > threshold
    return replace(
        joined,
        score=round(score, 4),
        target=target if infected else None,
        p_value=p_value,
        p_empirical=p_empirical,
        infected=infected,
        threshold=round(threshold, 4),
        null=[round(s, 4) for s in null],
    )
