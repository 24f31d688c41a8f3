"""Analyses of trained models (AFT paper Fig. 1 / Table I, CAT paper Fig. 5): numbers + PNGs."""

from backdoorlab.analysis.curve import aft_curve
from backdoorlab.analysis.distance import feature_distances
from backdoorlab.analysis.kinds import ANALYSES, analyze
from backdoorlab.analysis.labels import adversarial_labels
from backdoorlab.analysis.tsne import feature_tsne

__all__ = [
    "ANALYSES",
    "adversarial_labels",
    "aft_curve",
    "analyze",
    "feature_distances",
    "feature_tsne",
]
