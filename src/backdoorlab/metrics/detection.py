"""Detection metrics: the MAD anomaly index of per-class values, and how well model-level scores
separate infected from benign models (the Trojan Detection Challenge's AUROC, AUPR and FPR at
95% TPR), with 95% intervals (a stratified bootstrap for AUROC, Wilson's for shares)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# scipy.stats and sklearn.metrics are imported where they are used: together they take longer to
# import than the rest of backdoorlab, and only reports use them

MAD_CONSISTENCY = 1.4826  # makes the MAD a consistent estimator of a normal's std


def mad_index(values: torch.Tensor, side: str = "high") -> torch.Tensor:
    """Signed-side anomaly index (v - median) / (1.4826 * MAD) per class (NC Sec. IV-C); `side`
    'low' scores small values (NC's trigger norms), 'high' large ones (adversarial-label shares);
    the other side scores 0."""
    values = values.double()
    median = values.median()
    mad = MAD_CONSISTENCY * (values - median).abs().median()
    dev = values - median if side == "high" else median - values
    return (dev / mad.clamp_min(1e-12)).clamp_min(0)


@dataclass(frozen=True)
class Separation:
    """Detector scores of benign (label 0) and infected (label 1) models, summarised."""

    auroc: float
    aupr: float
    fpr_at_95: float
    benign: int
    infected: int


def separation(labels: Sequence[int], scores: Sequence[float]) -> Separation | None:
    """AUROC, AUPR (average precision) and the false-positive rate at the first threshold whose
    true-positive rate reaches 95%; None unless both kinds of model are present."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return None
    fpr, tpr, _ = roc_curve(y, s)
    return Separation(
        float(roc_auc_score(y, s)),
        float(average_precision_score(y, s)),
        float(fpr[np.argmax(tpr >= 0.95)]),
        len(y) - n_pos,
        n_pos,
    )


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) of the ROC curve."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(labels, dtype=int), np.asarray(scores, dtype=float))
    return fpr, tpr


def auroc_interval(
    labels: Sequence[int],
    scores: Sequence[float],
    level: float = 0.95,
    draws: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the AUROC, resampling benign and infected models
    separately (fixed seed); None unless both kinds are present. A zoo that separates perfectly
    gives [1, 1]: the interval says nothing about models the zoo lacks."""
    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    benign, infected = s[y == 0], s[y == 1]
    if not len(benign) or not len(infected):
        return None
    rng = np.random.default_rng(seed)
    # scipy.stats.bootstrap refuses a family of one model, which a zoo's rows can have
    b = benign[rng.integers(0, len(benign), (draws, len(benign)))][:, :, None]
    i = infected[rng.integers(0, len(infected), (draws, len(infected)))][:, None, :]
    aurocs = (i > b).mean(axis=(1, 2)) + 0.5 * (i == b).mean(axis=(1, 2))  # Mann-Whitney form
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(aurocs, [tail, 100 - tail])
    return float(low), float(high)


def share_interval(hits: int, total: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of the share hits / total (in [0, 1]); None when total is 0."""
    if total == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(hits, total).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
