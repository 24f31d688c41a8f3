"""Reports: a results database's sweep (or plain runs) as Markdown + CSV + PNG pages or one HTML
page; a layer above `experiment`, which writes the database."""

from backdoorlab.report.cells import Part, Row, pick
from backdoorlab.report.claims import claims_page
from backdoorlab.report.grid import Grid
from backdoorlab.report.kinds import REPORT_KINDS, draw_aft_curve, report_kind
from backdoorlab.report.page import report

__all__ = [
    "REPORT_KINDS",
    "Grid",
    "Part",
    "Row",
    "claims_page",
    "draw_aft_curve",
    "pick",
    "report",
    "report_kind",
]
