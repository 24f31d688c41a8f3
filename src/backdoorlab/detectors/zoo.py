"""A model zoo's detection results as the Trojan Detection Challenge reports them: per detector
and per attack, AUROC, AUPR, FPR at 95% TPR, target-label accuracy and seconds per model, with
ROC curves.

Every infected model is scored against every benign model; an attack's row uses the benign
models and that attack's infected models only. A model trained on poisoned data whose backdoor
did not take (ASR below `planted`) is neither benign nor infected: it is listed, not scored.
"""

from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import dataclass
from typing import Any

from backdoorlab.metrics.detection import roc_points, separation
from backdoorlab.plotting import pyplot

ALL = "all attacks"
HEADER = [
    "detector",
    "attack",
    "benign",
    "infected",
    "AUROC",
    "AUPR",
    "FPR@95TPR",
    "target acc %",
    "flagged benign %",
    "flagged infected %",
    "s / model",
]


@dataclass
class Member:
    """One model of the zoo: its attack family (None: benign), target, ASR and detections."""

    name: str
    group: str | None
    target: int | None
    asr: float | None
    detections: dict[str, dict[str, Any]]


def _top(d: dict[str, Any]) -> int:
    """The class the detector finds most anomalous."""
    return max(range(len(d["scores"])), key=lambda c: d["scores"][c])


def _row(detector: str, group: str, benign: list[Member], infected: list[Member]) -> list[str]:
    found = [m.detections[detector] for m in (*benign, *infected)]
    labels = [0] * len(benign) + [1] * len(infected)
    sep = separation(labels, [d["score"] for d in found])
    hits = [_top(m.detections[detector]) == m.target for m in infected]

    def share(ms: list[Member]) -> str:
        flagged = [bool(m.detections[detector]["suspects"]) for m in ms]
        return f"{100 * sum(flagged) / len(flagged):.1f}" if flagged else "-"

    return [
        detector,
        group,
        str(len(benign)),
        str(len(infected)),
        "-" if sep is None else f"{sep.auroc:.3f}",
        "-" if sep is None else f"{sep.aupr:.3f}",
        "-" if sep is None else f"{sep.fpr_at_95:.3f}",
        f"{100 * sum(hits) / len(hits):.1f}" if hits else "-",
        share(benign),
        share(infected),
        f"{sum(d['seconds'] for d in found) / len(found):.1f}",
    ]


def split(members: list[Member], planted: float) -> tuple[list[Member], list[Member], list[Member]]:
    """(benign, infected, not planted): attacked models below `planted` % ASR are set apart."""
    benign = [m for m in members if m.group is None]
    infected = [m for m in members if m.group is not None and (m.asr or 0) >= planted]
    failed = [m for m in members if m.group is not None and (m.asr or 0) < planted]
    return benign, infected, failed


def detection_rows(
    benign: list[Member], infected: list[Member], detectors: list[str], groups: list[str]
) -> list[list[str]]:
    """The table (HEADER first): per detector, all attacks together, then each attack."""
    rows = [HEADER]
    for det in detectors:
        rows.append(_row(det, ALL, benign, infected))
        for g in groups:
            rows.append(_row(det, g, benign, [m for m in infected if m.group == g]))
    return rows


def per_model_csv(members: list[Member], detectors: list[str]) -> str:
    """One line per model and detector: its score, top class, suspects and the ground truth."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "attack", "target", "asr", "detector", "score", "top", "suspects", "s"])
    for m in members:
        for det in detectors:
            d = m.detections[det]
            asr = "" if m.asr is None else round(m.asr, 2)
            suspects = " ".join(map(str, d["suspects"]))
            target = "" if m.target is None else m.target
            row = [m.name, m.group or "benign", target, asr, det, d["score"], _top(d), suspects]
            w.writerow([*row, d["seconds"]])
    return buf.getvalue()


def roc_figure(
    benign: list[Member],
    infected: list[Member],
    detectors: list[str],
    groups: list[str],
    title: str,
):
    """One panel per detector: the ROC of all infected models (black) and of each attack's."""
    plt = pyplot()
    width = max(6.0, 4.2 * len(detectors))
    fig, axes = plt.subplots(1, len(detectors), figsize=(width, 4.4), squeeze=False)
    for ax, det in zip(axes[0], detectors, strict=True):
        for g, colour, lw in [(ALL, "black", 2.2)] + [(g, None, 1.2) for g in groups]:
            chosen = infected if g == ALL else [m for m in infected if m.group == g]
            if not benign or not chosen:
                continue
            labels = [0] * len(benign) + [1] * len(chosen)
            scores = [m.detections[det]["score"] for m in (*benign, *chosen)]
            fpr, tpr = roc_points(labels, scores)
            ax.plot(fpr, tpr, c=colour, lw=lw, label=g)
        ax.plot([0, 1], [0, 1], ":", c="grey", lw=1)
        ax.set_title(det, fontsize=10)
        ax.set_xlabel("false-positive rate (benign models flagged)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("true-positive rate (infected models flagged)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(textwrap.fill(title, int(width * 11)), fontsize=10)
    fig.tight_layout()
    return fig
