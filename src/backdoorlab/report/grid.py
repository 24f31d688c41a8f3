"""The attack x defense table: ACC/ASR per cell, Avg. Drop and DER against a baseline column, the
published numbers beside ours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backdoorlab.metrics.core import der, pct
from backdoorlab.records.metrics import Metrics

DROP = "Avg. Drop"
DER_ROW = "Avg. DER"


def _numbers(m: Metrics | None) -> tuple[float, float] | None:
    """(ACC, ASR) of a cell with an ASR, else None."""
    return None if m is None or m.asr is None else (m.acc, m.asr)


@dataclass
class Grid:
    """ACC/ASR per (row, column) label, with the baseline column and published numbers."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Metrics]
    baseline: str | None = None
    paper: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # cells repeated over seeds: (ACC sd, ASR sd, number of repeats) beside the means in `cells`
    spread: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    # a cell repeated over fewer seeds than its baseline is compared with the baseline's mean
    # over its own seeds (None: no seed in common); other cells with the whole baseline cell
    base: dict[tuple[str, str], Metrics | None] = field(default_factory=dict)

    def _paper(self, r: str, c: str) -> list[float] | None:
        return self.paper.get(r, {}).get(c)

    def _drop(self, c: str, numbers, base) -> tuple[float, float] | None:
        pairs = [(base(r, c), numbers(r, c)) for r in self.rows]
        pairs = [(b, m) for b, m in pairs if b is not None and m is not None]
        if not pairs or c == self.baseline:
            return None
        n = len(pairs)
        return sum(b[0] - m[0] for b, m in pairs) / n, sum(b[1] - m[1] for b, m in pairs) / n

    def _ours(self, r: str, c: str) -> tuple[float, float] | None:
        return _numbers(self.cells.get((r, c)))

    def _base(self, r: str, c: str) -> Metrics | None:
        """The baseline cell (r, c) is compared with: over (r, c)'s seeds where they differ."""
        return self.base[(r, c)] if (r, c) in self.base else self.cells.get((r, self.baseline))

    def _base_numbers(self, r: str, c: str) -> tuple[float, float] | None:
        return _numbers(self._base(r, c))

    def drop(self, c: str) -> tuple[float, float] | None:
        """Mean (ACC, ASR) drop of column `c` against the baseline column."""
        return None if self.baseline is None else self._drop(c, self._ours, self._base_numbers)

    def cell_der(self, r: str, c: str) -> float | None:
        """Defense effectiveness rating of cell (r, c) against row r's baseline cell."""
        if self.baseline is None or c == self.baseline:
            return None
        base, cell = self._base(r, c), self.cells.get((r, c))
        if base is None or cell is None:
            return None
        return der(base, cell)

    def mean_der(self, c: str) -> float | None:
        """Mean DER of column `c` over the rows that have it and their baseline."""
        values = [v for v in (self.cell_der(r, c) for r in self.rows) if v is not None]
        return sum(values) / len(values) if values else None

    def paper_drop(self, c: str) -> tuple[float, float] | None:
        """The same from the published numbers."""
        if self.baseline is None or not self.paper:
            return None
        return self._drop(c, self._paper, lambda r, _: self._paper(r, self.baseline))

    def pairs(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Each row (then Avg. Drop) as (label, [(ACC, ASR) text per column])."""

        def text(
            ours: tuple[float, float] | None, paper: Any, sd: tuple | None = None
        ) -> tuple[str, str]:
            out = ["-", "-"] if ours is None else [pct(ours[0]), pct(ours[1])]
            if ours is not None and sd is not None and sd[2] > 1:
                out = [f"{o} ± {d:.2f}" for o, d in zip(out, sd[:2], strict=True)]
            if paper is not None:
                out = [f"{o} ({p:.2f})" for o, p in zip(out, paper, strict=True)]
            return out[0], out[1]

        lines = [
            (
                r,
                [
                    text(self._ours(r, c), self._paper(r, c), self.spread.get((r, c)))
                    for c in self.columns
                ],
            )  # fmt: skip
            for r in self.rows
        ]
        if self.baseline is not None:
            lines.append((DROP, [text(self.drop(c), self.paper_drop(c)) for c in self.columns]))
            ders = [self.mean_der(c) for c in self.columns]
            lines.append((DER_ROW, [("-" if d is None else f"{d:.3f}", "") for d in ders]))
        return lines

    def markdown(
        self, corner: str = "", links: dict[tuple[str, str], str] | None = None
    ) -> list[str]:
        """The table as Markdown lines; with `links`, a cell's numbers link to its anchor."""
        lines = [
            f"| {corner} | " + " | ".join(f"{c} ACC | {c} ASR" for c in self.columns) + " |",
            "| --- | " + " | ".join("---: | ---:" for _ in self.columns) + " |",
        ]
        for label, cells in self.pairs():
            anchors = [(links or {}).get((label, c)) for c in self.columns]
            cells = [
                (a, s) if k is None else (f"[{a}](#{k})", f"[{s}](#{k})")
                for (a, s), k in zip(cells, anchors, strict=True)
            ]
            label = f"**{label}**" if label in (DROP, DER_ROW) else label
            lines.append(f"| {label} | " + " | ".join(f"{a} | {s}" for a, s in cells) + " |")
        return lines

    def table(self) -> list[list[Any]]:
        """One line per (row, column), header first: ours and the published ACC/ASR, DER."""
        head = ["row", "column", "acc", "asr", "paper_acc", "paper_asr", "der"]
        lines: list[list[Any]] = [head + (["acc_sd", "asr_sd", "n"] if self.spread else [])]
        for r in self.rows:
            for c in self.columns:
                ours, paper = self._ours(r, c) or ("", ""), self._paper(r, c) or ("", "")
                d = self.cell_der(r, c)
                line = [r, c, *ours, *paper, "" if d is None else round(d, 4)]
                if self.spread:
                    sd = self.spread.get((r, c))
                    line += (
                        ["", "", ""] if sd is None else [round(sd[0], 4), round(sd[1], 4), sd[2]]
                    )
                lines.append(line)
        return lines

    def missing(self) -> list[tuple[str, str]]:
        """(row, column) pairs without a result."""
        return [(r, c) for r in self.rows for c in self.columns if (r, c) not in self.cells]
