"""The `paired` report kind: two columns of a grid compared seed by seed, with a paired t-test
that says which differences lie within the seeds' spread, from hand-made cells."""

from __future__ import annotations

import pytest
from scipy.stats import ttest_rel

from backdoorlab.errors import ConfigError
from backdoorlab.records.metrics import Metrics
from backdoorlab.report.cells import Row
from backdoorlab.report.paired import paired_p, paired_part

SPEC = {"axes": {"attack": {"badnets": {}, "wanet": {}}, "defense": {}, "seed": {}}}
ENTRY = {"rows": "attack", "columns": "defense", "over": "seed", "pairs": [["aft", "nad"]]}


def cell(attack: str, defense: str, seed: int, acc: float, asr: float) -> Row:
    axes = {"attack": attack, "defense": defense, "seed": str(seed)}
    return Row(f"{attack}-{defense}-{seed}", axes, {}, Metrics(acc=acc, asr=asr))


def test_the_p_value_is_a_paired_t_test():
    a, b = [10.0, 12.0, 7.0], [1.0, 2.0, 4.0]
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    assert paired_p(diffs) == pytest.approx(ttest_rel(a, b).pvalue)
    assert paired_p([0.0, 0.0, 0.0]) == 1.0 and paired_p([2.0, 2.0, 2.0]) == 0.0


def test_a_consistent_gap_is_read_as_one_and_a_noisy_one_as_within_the_spread(tmp_path):
    cells = [
        # badnets: AFT's ASR above NAD's on every seed by about 30 points
        cell("badnets", "aft", 0, 97.0, 31.0), cell("badnets", "nad", 0, 94.0, 1.0),
        cell("badnets", "aft", 1, 97.5, 33.0), cell("badnets", "nad", 1, 94.5, 2.0),
        cell("badnets", "aft", 2, 97.2, 29.0), cell("badnets", "nad", 2, 94.1, 0.5),
        # wanet: one seed each way, far apart
        cell("wanet", "aft", 0, 97.0, 60.0), cell("wanet", "nad", 0, 96.0, 1.0),
        cell("wanet", "aft", 1, 97.0, 1.0), cell("wanet", "nad", 1, 96.0, 50.0),
        cell("wanet", "aft", 2, 97.0, 2.0), cell("wanet", "nad", 2, 96.0, 3.0),
        cell("wanet", "aft", 3, 97.0, 2.0),  # a seed NAD did not run: not paired, left out
    ]  # fmt: skip
    part = paired_part("t", ENTRY, SPEC, cells, tmp_path / "page")
    assert all(isinstance(x, str) for row in part.table for x in row)  # as the page joins them
    rows = {(r[0], r[2]): r for r in part.table[1:]}
    assert rows["badnets", "ASR"][-1] == "aft higher" and rows["badnets", "ACC"][-1] == "aft higher"
    assert rows["badnets", "ASR"][3] == "3" and rows["badnets", "ASR"][6] == "29.83 ± 1.26"
    assert rows["wanet", "ASR"][-1] == "within the seeds' spread" and rows["wanet", "ASR"][3] == "3"
    assert float(rows["wanet", "ASR"][7]) == pytest.approx(ttest_rel([60, 1, 2], [1, 50, 3]).pvalue,
                                                           abs=1e-3)  # fmt: skip
    assert (tmp_path / "page-t.csv").read_text().startswith("row,compared,metric,seeds")


def test_a_paired_report_needs_its_axes_and_pairs(tmp_path):
    with pytest.raises(ConfigError, match="a paired report needs over"):
        paired_part("t", {k: v for k, v in ENTRY.items() if k != "over"}, SPEC, [], tmp_path)
    with pytest.raises(ConfigError, match=r"pairs is a list of \[column, column\]"):
        paired_part("t", {**ENTRY, "pairs": ["aft"]}, SPEC, [], tmp_path)
    one_seed = [cell("badnets", "aft", 0, 97.0, 3.0), cell("badnets", "nad", 0, 94.0, 1.0)]
    assert paired_part("t", ENTRY, SPEC, one_seed, tmp_path).table is None
