"""Two columns of a grid compared seed by seed (report kind `paired`): per row, the mean of the
per-seed differences, their spread and a paired t-test, so that a page says which differences
lie within the seeds' spread and which do not.

Cells of one seed are paired: a post-training defense repairs that seed's infected model, a
training-time defense trains on that seed's split and poisoned set. The test is two-sided, on
the n per-seed differences with n - 1 degrees of freedom; with three seeds only a large and
consistent difference reaches p < 0.05, so "within the seeds' spread" means the seeds cannot
tell the two columns apart, not that they are equal.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.report.cells import Part, Row, order, select, write_csv

HEADER = ["row", "compared", "metric", "seeds", "a", "b", "a - b", "p", "reading"]


def paired_p(differences: list[float]) -> float:
    """Two-sided p of a paired t-test that the mean of `differences` is 0 (at least two)."""
    from scipy.stats import ttest_1samp  # imported here: the CLI starts without scipy

    if statistics.pstdev(differences) == 0:  # every seed moved alike: no spread to weigh against
        return 1.0 if differences[0] == 0 else 0.0
    return float(ttest_1samp(differences, 0.0).pvalue)


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def paired_part(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """Per row of `rows` and pair [a, b] of `columns` labels: each of `metrics` (default asr,
    acc) over the `over` labels both columns ran, a - b, and the paired test at `alpha`."""
    try:
        rows, cols, over, pairs = entry["rows"], entry["columns"], entry["over"], entry["pairs"]
    except KeyError as exc:
        raise ConfigError(f"report {rid}: a paired report needs {exc.args[0]}") from None
    if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ConfigError(f"report {rid}: pairs is a list of [column, column]")
    metrics, alpha = entry.get("metrics", ["asr", "acc"]), float(entry.get("alpha", 0.05))
    chosen = select(entry, cells)
    by = {(c.value(rows), c.value(cols), c.value(over)): c for c in chosen}
    table: list[list[Any]] = [HEADER]
    for r in order(spec, rows, chosen, entry):
        for a, b in pairs:
            seeds = sorted(
                s for (rr, cc, s) in by if rr == r and cc == a and (r, b, s) in by
            )  # fmt: skip
            for m in metrics:
                va = [by[r, a, s].metrics.named(m) for s in seeds]
                vb = [by[r, b, s].metrics.named(m) for s in seeds]
                if len(seeds) < 2 or None in va or None in vb:
                    continue
                diff = [x - y for x, y in zip(va, vb, strict=True)]
                p = paired_p(diff)
                reading = (
                    "within the seeds' spread"
                    if p >= alpha
                    else f"{a} {'lower' if statistics.fmean(diff) < 0 else 'higher'}"
                )
                table.append([r, f"{a} - {b}", m.upper(), str(len(seeds)), _mean_sd(va),
                              _mean_sd(vb), _mean_sd(diff), f"{p:.3f}", reading])  # fmt: skip
    title = entry.get("title", rid)
    if len(table) == 1:
        return Part(rid, title, notes=["No pair has run on two seeds or more yet."])
    write_csv(out, rid, table)
    notes = [
        f"a and b: mean ± sample standard deviation over the `{over}` axis; a - b: the same of "
        "the per-seed differences. p: two-sided paired t-test on those differences (seeds - 1 "
        f"degrees of freedom). Reading: a difference with p >= {alpha:g} lies within the seeds' "
        "spread (the seeds cannot tell the two apart, which is not the same as equal); below "
        "it, which column is lower or higher."
    ]
    return Part(rid, title, table=table, notes=notes)
