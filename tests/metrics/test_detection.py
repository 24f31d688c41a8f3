"""Detection metrics' intervals: the bootstrap AUROC interval and Wilson's interval of a share."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from backdoorlab.metrics.detection import auroc_interval, share_interval


def test_auroc_interval_brackets_the_point_estimate_and_is_reproducible():
    rng = np.random.default_rng(3)
    scores = [*rng.normal(0, 1, 24), *rng.normal(1, 1, 24)]
    labels = [0] * 24 + [1] * 24
    low, high = auroc_interval(labels, scores)
    assert low < roc_auc_score(labels, scores) < high
    assert 0.15 < high - low < 0.4  # 24 + 24 models: a wide interval, not a point
    assert auroc_interval(labels, scores) == (low, high)  # fixed seed


def test_auroc_interval_narrows_with_more_models():
    rng = np.random.default_rng(4)
    few = auroc_interval([0] * 10 + [1] * 10, [*rng.normal(0, 1, 10), *rng.normal(1, 1, 10)])
    many = auroc_interval([0] * 200 + [1] * 200, [*rng.normal(0, 1, 200), *rng.normal(1, 1, 200)])
    assert many[1] - many[0] < few[1] - few[0]


def test_auroc_interval_of_edge_cases():
    assert auroc_interval([0, 0, 1, 1], [0.0, 1.0, 2.0, 3.0]) == (1.0, 1.0)  # perfect: [1, 1]
    assert auroc_interval([0, 0], [0.0, 1.0]) is None  # no infected model
    assert auroc_interval([0, 0, 1], [0.0, 2.0, 1.0]) == pytest.approx((0.0, 1.0))  # one infected


def test_share_interval_is_wilsons():
    low, high = share_interval(2, 6)
    # Wilson: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.96
    z, n, p = 1.959964, 6, 2 / 6
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx(
        ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)), abs=1e-6
    )
    assert share_interval(0, 24)[0] == 0.0 and share_interval(0, 24)[1] == pytest.approx(
        0.138, abs=1e-3
    )
    assert share_interval(0, 0) is None
